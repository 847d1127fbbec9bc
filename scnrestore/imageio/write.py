"""Writing image files atomically, keeping what metadata the format holds
(see :mod:`scnrestore.imageio`)."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image as PILImage
from PIL import ImageFile

from ..files import atomic_output
from .formats import (
    _EXIF_BASE_TAGS,
    _EXIF_IFD,
    _GPS_IFD,
    _ORIENTATION,
    MODES,
    Image,
    format_for_path,
)

__all__ = ["write_image"]


def write_image(
    path: str | os.PathLike[str],
    image: Image,
    fmt: str | None = None,
    quality: int = 95,
    *,
    png_compression: int = 6,
    before_commit: Callable[[], None] | None = None,
) -> None:
    """Encode ``image`` to ``path`` atomically. ``fmt`` defaults to the extension.

    16-bit and float pixels stay 16-bit in PNG and 16-bit / float in TIFF;
    other formats get 8 bits. JPEG drops alpha; BMP gets gray + alpha as RGBA.
    ICC, EXIF and ``image.dpi`` are kept where the format holds them (a TIFF
    keeps EXIF's IFD0 tags, not its sub-IFDs, which libtiff cannot write).
    ``quality``: JPEG / WebP; ``png_compression``: the zlib level (0-9) of
    PNG files. ``before_commit`` is called once the file is encoded, just
    before it is put into place: raising there abandons it (nothing is left
    behind).
    """
    fmt = fmt or format_for_path(path)
    with atomic_output(path) as tmp:
        _encode(tmp, image, fmt, quality, png_compression)
        if before_commit is not None:
            before_commit()


def _to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.uint16:
        return ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)


def _to_uint16(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint16:
        return a
    if a.dtype == np.uint8:
        return a.astype(np.uint16) * 257
    return np.clip(np.rint(a * 65535.0), 0, 65535).astype(np.uint16)


def _encode(path: Path, image: Image, fmt: str, quality: int, png_compression: int) -> None:
    a = image.pixels
    deep = a.dtype != np.uint8
    dpi = image.dpi
    if fmt == "TIFF" and deep:
        _write_tiff(path, a, image.icc_profile, dpi)
        return
    if fmt == "PNG" and deep:
        _write_png16(path, _to_uint16(a), image.icc_profile, image.exif, png_compression, dpi)
        return
    a8 = _to_uint8(a)
    if fmt == "JPEG" and a8.shape[2] in (2, 4):
        a8 = a8[:, :, :-1]
    if fmt == "BMP" and a8.shape[2] == 2:  # BMP holds no gray + alpha; Pillow writes RGBA
        a8 = np.concatenate([np.repeat(a8[:, :, :1], 3, axis=2), a8[:, :, 1:]], axis=2)
    mode = MODES[a8.shape[2]]
    pil = PILImage.fromarray(a8[:, :, 0] if mode == "L" else a8, mode)
    kwargs: dict[str, object] = {}
    if image.icc_profile and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        kwargs["icc_profile"] = image.icc_profile
    exif = _tiff_safe_exif(image.exif) if fmt == "TIFF" else image.exif
    if exif and fmt in ("PNG", "JPEG", "WEBP", "TIFF"):
        kwargs["exif"] = exif
    # WebP holds no resolution; JPEG's JFIF density is a whole number of 16 bits.
    if dpi and (fmt in ("PNG", "TIFF", "BMP") or (fmt == "JPEG" and _jfif_dpi(dpi))):
        kwargs["dpi"] = dpi
    if fmt == "WEBP" and image.info.get("lossless"):
        kwargs.update(lossless=True, exact=True)  # a lossless input stays lossless, every value
    elif fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = int(quality)
    if fmt == "PNG":
        kwargs["compress_level"] = int(png_compression)
    if fmt == "TIFF":
        kwargs["compression"] = "tiff_adobe_deflate"
    pil.save(path, format=fmt, **kwargs)


def _jfif_dpi(dpi: tuple[float, float]) -> bool:
    return all(1 <= round(v) <= 65535 for v in dpi)


def _tiff_safe_exif(exif: bytes | None) -> bytes | None:
    """``exif`` without its EXIF and GPS sub-IFDs: libtiff, which writes
    Pillow's compressed TIFFs, cannot store them (Pillow fails with "Error
    setting from dictionary"). The descriptive IFD0 tags stay."""
    if not exif:
        return exif
    parsed = PILImage.Exif()
    parsed.load(exif)
    if _EXIF_IFD not in parsed and _GPS_IFD not in parsed:
        return exif
    base = PILImage.Exif()
    for tag in (*_EXIF_BASE_TAGS, _ORIENTATION):
        if tag in parsed:
            base[tag] = parsed[tag]
    return base.tobytes() if len(base) else None


def _write_tiff(
    path: Path, a: np.ndarray, icc: bytes | None, dpi: tuple[float, float] | None
) -> None:
    import tifffile

    c = a.shape[2]
    data = a[:, :, 0] if c == 1 else a
    extratags = [(34675, "B", len(icc), icc, True)] if icc else []
    resolution = {"resolution": dpi, "resolutionunit": "INCH"} if dpi else {}
    # An open file, not the path: tifffile resolves paths, and atomic_output's
    # path is a /proc/self/fd link to an anonymous file.
    with open(path, "wb") as f:
        tifffile.imwrite(
            f,
            data,
            photometric="minisblack" if c in (1, 2) else "rgb",
            extrasamples=("unassalpha",) if c in (2, 4) else None,
            compression="zlib",
            extratags=extratags,
            **resolution,
        )


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def _write_png16(
    path: Path,
    a: np.ndarray,
    icc: bytes | None,
    exif: bytes | None,
    level: int,
    dpi: tuple[float, float] | None = None,
) -> None:
    import png

    h, w, c = a.shape
    grey, alpha = c in (1, 2), c in (2, 4)
    phys: dict[str, object] = {}
    if dpi:  # pHYs: pixels per metre, as Pillow writes it
        x, y = (max(1, int(v / 0.0254 + 0.5)) for v in dpi)
        phys = {"x_pixels_per_unit": x, "y_pixels_per_unit": y, "unit_is_meter": True}
    writer = png.Writer(w, h, greyscale=grey, alpha=alpha, bitdepth=16, compression=level, **phys)
    with open(path, "wb") as f:
        writer.write_array(f, a.reshape(-1))
    if not (icc or exif):
        return
    # pypng writes no iCCP / eXIf: splice them in right after IHDR.
    data = path.read_bytes()
    ihdr_end = 8 + 8 + 13 + 4
    extra = b""
    if icc:
        extra += _png_chunk(b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))
    if exif:
        extra += _png_chunk(b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif)
    path.write_bytes(data[:ihdr_end] + extra + data[ihdr_end:])


# Truncated files are errors, never silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False
