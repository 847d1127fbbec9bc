"""What a batch does with its files: :class:`BatchOptions` (the planner and the
runner read it alike) and :class:`Encoding` (how its outputs are encoded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

__all__ = ["BatchOptions", "Encoding"]


class Encoding(NamedTuple):
    """How output files are encoded (JPEG / WebP quality, PNG zlib level)."""

    jpeg_quality: int
    png_compression: int


@dataclass(frozen=True)
class BatchOptions:
    """What a batch does with its files (the model is the caller's).

    ``level``: sigma (denoise) or JPEG quality (dejpeg), "auto" to estimate
    it per file, None for upscale. ``fmt``: the output format (None: from
    each output's extension). ``jpeg_quality`` / ``png_compression``: how
    outputs are encoded. ``overwrite`` / ``skip_existing``: what to do with
    an output that exists (neither: that file fails).
    """

    task: str
    level: float | str | None = None
    scale: int = 1
    output: Path | None = None
    recursive: bool = False
    fmt: str | None = None
    jpeg_quality: int = 95
    png_compression: int = 6
    overwrite: bool = False
    skip_existing: bool = False

    @property
    def encoding(self) -> Encoding:
        return Encoding(self.jpeg_quality, self.png_compression)
