"""The package version, in one place (pyproject.toml reads it; nothing imports the package root for it)."""

__version__ = "0.1.0"
