"""Sweep jobs: sampling, early termination and the driver that runs trials through the runner."""
