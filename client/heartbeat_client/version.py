"""The package version, kept beside the code so the User-Agent can name it without metadata."""

__version__ = "0.2.0"
