"""The image formats scnrestore reads and writes: one list of extensions, the
:class:`Image` type both directions share, and the EXIF tags worth carrying."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

__all__ = [
    "Image",
    "FORMATS",
    "IMAGE_EXTS",
    "INPUT_EXTS",
    "MODES",
    "MAX_PIXELS",
    "format_for_path",
    "extension_for",
]

# Extension -> Pillow format name.
FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
_EXT_FOR = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp"}
_ORIENTATION = 0x0112
# The EXIF worth carrying: descriptive IFD0 tags and the EXIF and GPS sub-IFDs.
# Never the rest of IFD0: for a TIFF, Pillow's getexif() is the file's whole
# main IFD (ImageWidth, StripOffsets, ColorMap, Photometric...), which written
# into an output describes another image and makes a TIFF unreadable.
_EXIF_BASE_TAGS = (
    0x010E,  # ImageDescription
    0x010F,  # Make
    0x0110,  # Model
    0x0131,  # Software
    0x0132,  # DateTime
    0x013B,  # Artist
    0x013C,  # HostComputer
    0x8298,  # Copyright
)
_EXIF_IFD, _GPS_IFD, _INTEROP_IFD = 0x8769, 0x8825, 0xA005
_EXIF_SIZE_TAGS = (0xA002, 0xA003)  # PixelX/YDimension: stale once upscaled
# Resolutions outside this (dots per inch) are taken for junk and dropped.
_DPI_RANGE = (1e-3, 1e6)
MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
# Larger images are refused as decompression bombs (Pillow's own hard limit,
# applied to every reader, tifffile and pypng included): ~179 MP.
MAX_PIXELS = 2 * (PILImage.MAX_IMAGE_PIXELS or 89_478_485)
# Magic numbers, to tell "corrupt PNG" from "not an image".
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"BM": "BMP",
}
# The extensions written (and read from folders and globs).
IMAGE_EXTS = frozenset(FORMATS)
# Read (directories, -r) but not written: their outputs are PNG.
INPUT_EXTS = IMAGE_EXTS | {".gif"}


@dataclass
class Image:
    """Decoded pixels plus the metadata worth carrying into the output."""

    pixels: np.ndarray
    icc_profile: bytes | None = None
    exif: bytes | None = None
    format: str | None = None
    frames: int = 1
    info: dict[str, object] = field(default_factory=dict)
    # Resolution in dots per inch (x, y), None when the file gives none.
    dpi: tuple[float, float] | None = None

    @property
    def mode(self) -> str:
        return MODES[self.pixels.shape[2]]

    @property
    def has_alpha(self) -> bool:
        return self.pixels.shape[2] in (2, 4)

    def with_pixels(self, pixels: np.ndarray) -> Image:
        return replace(self, pixels=pixels)


def format_for_path(path: str | os.PathLike[str], override: str | None = None) -> str:
    """Output format from ``override`` (png, jpeg, ...) or the file extension."""
    if override:
        key = "." + override.lower().lstrip(".")
        if key not in FORMATS:
            raise ValueError(f"unknown format {override!r} (use png, jpg, webp, tif or bmp)")
        return FORMATS[key]
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise ValueError(f"{path}: unknown image extension {ext!r}")
    return FORMATS[ext]


def extension_for(fmt: str) -> str:
    return _EXT_FOR[fmt]
