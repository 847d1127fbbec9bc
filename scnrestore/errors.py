"""The exception types of scnrestore, in one place (no imports, so any module may use them)."""

from __future__ import annotations

__all__ = ["RegistryError", "DownloadError", "CheckpointError", "ImageReadError"]


class RegistryError(ValueError):
    """A malformed registry, an unknown model, or a file that is missing."""


class DownloadError(RegistryError):
    """A model file that cannot be had: offline, unreachable, or corrupt."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (unreadable, unsafe, not an SCN)."""


class ImageReadError(ValueError):
    """An input file that is not a readable image (the message says why)."""
