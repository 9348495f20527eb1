"""mljob: a language server and a runner for Azure ML CLI v2 job files."""

__version__ = "0.1.0"
