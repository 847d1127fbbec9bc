"""Image files in and out, faithfully.

Reading gives an :class:`Image`: pixels as H x W x C numpy (C = 1 gray, 2 gray +
alpha, 3 RGB, 4 RGBA; dtype uint8, uint16 or float32) with EXIF orientation
applied, plus the ICC profile, EXIF (orientation reset to 1) and resolution to
carry over.

Pillow does most formats. Two gaps are filled by small, well-kept libraries:
16-bit colour PNG (Pillow 13 reads it as 8-bit and cannot write it) by pypng,
a pure-Python codec (measured here: 2 MP of 16-bit RGB noise read in 0.21 s,
written in 0.55 s; opencv-python-headless would be faster but is a 61 MB
wheel with its own libpng); and 16-bit / float TIFF by tifffile. tifffile
decodes LZW and JPEG only with the optional imagecodecs package: without it
such TIFFs go to Pillow where that loses nothing (8 bits a sample, gray
16 / 32 bits), and deeper colour ones are refused with a reason saying so.

Writes go to a temporary file beside the target, then are renamed into place,
so a crash or kill never leaves a partial image. On Linux the temporary file is
anonymous (``O_TMPFILE``) until it is complete, so even ``kill -9`` leaves no
``.part`` file behind.

Hostile files are refused with a one-line reason (:class:`ImageReadError`):
anything declaring more than :data:`MAX_PIXELS` pixels is refused from its
header, before any pixel memory is allocated.
"""

from __future__ import annotations

from ..errors import ImageReadError
from .formats import (
    FORMATS,
    IMAGE_EXTS,
    INPUT_EXTS,
    MAX_PIXELS,
    MODES,
    Image,
    extension_for,
    format_for_path,
)
from .read import probe_image, read_image
from .write import write_image

__all__ = [
    "Image",
    "ImageReadError",
    "read_image",
    "probe_image",
    "write_image",
    "FORMATS",
    "IMAGE_EXTS",
    "INPUT_EXTS",
    "MODES",
    "format_for_path",
    "extension_for",
    "MAX_PIXELS",
]
