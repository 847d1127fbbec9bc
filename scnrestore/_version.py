"""The package version (a leaf: download's User-Agent needs it too)."""

__version__ = "0.1.0"
