"""Bundled JSON Schemas for job files and the catalog that maps `$schema` URLs to them."""
