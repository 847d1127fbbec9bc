"""Reading image files faithfully (see :mod:`scnrestore.imageio`)."""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from ..errors import ImageReadError, first_line
from .formats import (
    _DPI_RANGE,
    _EXIF_BASE_TAGS,
    _EXIF_IFD,
    _EXIF_SIZE_TAGS,
    _GPS_IFD,
    _INTEROP_IFD,
    _ORIENTATION,
    _SIGNATURES,
    MAX_PIXELS,
    Image,
)

__all__ = ["read_image", "probe_image"]


def read_image(path: str | os.PathLike[str]) -> Image:
    """Decode an image file. Raises ImageReadError with a one-line reason."""
    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            # Between Pillow's warning and hard limits: allowed, and no
            # multi-line Python warning in the middle of a batch's output.
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            if _is_tiff(path):
                # tifffile first: Pillow cannot open float or 16-bit colour TIFF.
                deep = _read_tiff(path)
                if deep is not None:
                    return deep
            # A file object, not the path: Pillow 13 memory-maps uncompressed
            # files it opens by name, and for a TIFF with orientation 5-8 it
            # maps them with the turned size (palette, CMYK: scrambled pixels).
            with open(path, "rb") as f, PILImage.open(f) as im:
                return _decode(path, im)
    except ImageReadError:
        raise
    except PILImage.DecompressionBombError as exc:
        raise ImageReadError(f"refused: {exc}") from None
    except PILImage.UnidentifiedImageError:
        kind = _sniff(path)
        raise ImageReadError(
            f"corrupt {kind} file (its header cannot be decoded)"
            if kind
            else "not an image file Pillow can identify"
        ) from None
    except (OSError, SyntaxError, ValueError, struct.error, EOFError, zlib.error) as exc:
        msg = str(exc).strip() or type(exc).__name__
        if "truncated" in msg.lower() or isinstance(exc, EOFError):
            msg = f"truncated or corrupt image data ({msg})"
        raise ImageReadError(msg) from None
    except MemoryError:
        raise ImageReadError("not enough memory to decode it") from None


def probe_image(path: str | os.PathLike[str]) -> str | None:
    """The format of an image file from its header alone (no pixels decoded):
    Pillow's name for it ("JPEG", "PNG", "WEBP"...), None when only decoding
    can tell. Raises ImageReadError, with the reason :func:`read_image` would
    give, for what the header already shows: no such file, not a regular
    file, an empty file, not an image at all."""
    path = Path(path)
    _check_file(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with open(path, "rb") as f, PILImage.open(f) as im:
                return "JPEG" if im.format == "MPO" else im.format  # as read_image says
    except PILImage.UnidentifiedImageError:
        kind = _sniff(path)
        if kind is None:
            raise ImageReadError("not an image file Pillow can identify") from None
        if kind != "TIFF":  # (tifffile may still read a TIFF)
            raise ImageReadError(f"corrupt {kind} file (its header cannot be decoded)") from None
        return kind
    except Exception:  # a bomb, a corrupt header...: decoding says what is wrong
        return None


def _check_file(path: Path) -> None:
    """Refuse what is no image file before opening it (a FIFO would block)."""
    if path.is_dir():
        raise ImageReadError("is a directory")
    try:
        st = path.stat()
    except OSError as exc:
        raise ImageReadError(exc.strerror or str(exc)) from None
    if not stat.S_ISREG(st.st_mode):
        raise ImageReadError("not a regular file")  # a FIFO or device would block or never end
    if st.st_size == 0:
        raise ImageReadError("empty file (0 bytes)")


def _sniff(path: Path) -> str | None:
    """The format a file's magic number claims, if any."""
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    return next((fmt for sig, fmt in _SIGNATURES.items() if head.startswith(sig)), None)


def _webp_lossless(path: Path) -> bool:
    """Whether a WebP file's image is stored lossless (a VP8L chunk, not VP8)."""
    with open(path, "rb") as f:
        head = f.read(12)
        for _ in range(64):  # VP8X files: ICCP / ANIM / EXIF... chunks come first
            chunk = f.read(8)
            if len(chunk) < 8:
                return False
            kind, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if kind in (b"VP8L", b"VP8 "):
                return kind == b"VP8L" and head[8:12] == b"WEBP"
            f.seek(size + (size & 1), os.SEEK_CUR)
    return False


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise ImageReadError(
            f"refused: {width} x {height} = {width * height} pixels exceeds the limit of "
            f"{MAX_PIXELS} (decompression bomb?)"
        )


def _checked_icc(icc: bytes | None, info: dict[str, object]) -> bytes | None:
    """``icc`` if it parses as an ICC profile; else None, with a note."""
    if not icc:
        return None
    try:
        from PIL import ImageCms
    except ImportError:  # pragma: no cover - Pillow built without littlecms
        return icc
    try:
        ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        _note(info, "its ICC profile is corrupt and was dropped")
        return None
    return icc


def _note(info: dict[str, object], note: str) -> None:
    notes = info.setdefault("notes", [])
    assert isinstance(notes, list)
    notes.append(note)


def _read_exif(im: PILImage.Image, info: dict[str, object]) -> PILImage.Exif:
    """``im.getexif()``; EXIF it cannot parse is dropped with a note (the image
    is still restored), and its warnings are not printed in a batch's output."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Corrupt EXIF data": what it read is kept
            return im.getexif()
    except Exception:  # SyntaxError "not a TIFF file", struct.error, ...
        _note(info, "its EXIF data is corrupt and was dropped")
        return PILImage.Exif()


def _orientation(exif: PILImage.Exif) -> int:
    """The EXIF orientation 1-8 (1 where it is missing or junk)."""
    try:
        value = int(exif.get(_ORIENTATION, 1) or 1)
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def _clean_exif(src: PILImage.Exif, info: dict[str, object]) -> bytes | None:
    """The metadata of ``src`` worth carrying (see _EXIF_BASE_TAGS), orientation 1.

    Reads the sub-IFDs, so for a TIFF call it while the file is open. EXIF that
    cannot be parsed is dropped with a note; the image is still restored.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # partly corrupt: what can be read is kept
            out = PILImage.Exif()
            for tag in _EXIF_BASE_TAGS:
                if tag in src:
                    out[tag] = src[tag]
            for tag in (_EXIF_IFD, _GPS_IFD):
                ifd = dict(src.get_ifd(tag)) if tag in src else {}
                if tag == _EXIF_IFD:
                    for stale in _EXIF_SIZE_TAGS:
                        ifd.pop(stale, None)
                    if _INTEROP_IFD in ifd:
                        interop = dict(src.get_ifd(_INTEROP_IFD))
                        if interop:
                            ifd[_INTEROP_IFD] = interop
                        else:
                            del ifd[_INTEROP_IFD]
                if ifd:
                    out[tag] = ifd
            if not len(out) and _ORIENTATION not in src:
                return None
            out[_ORIENTATION] = 1
            data = out.tobytes()
            PILImage.Exif().load(data)  # what a reader of the output will do
            return data
    except Exception:  # any parse error: metadata is not worth failing the image for
        _note(info, "its EXIF data is corrupt and was dropped")
        return None


def _valid_dpi(dpi: object) -> tuple[float, float] | None:
    try:
        x, y = (float(v) for v in dpi)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        return None
    lo, hi = _DPI_RANGE
    return (x, y) if lo <= x <= hi and lo <= y <= hi else None


def _ratio(value: object) -> float:
    """A TIFF RATIONAL as tifffile ((num, den)) or Pillow (IFDRational) gives it."""
    if isinstance(value, tuple | list) and len(value) == 2:
        num, den = (float(v) for v in value)
        return num / den if den else float("nan")
    return float(value)  # type: ignore[arg-type]


def _tiff_dpi(xres: object, yres: object, unit: object) -> tuple[float, float] | None:
    """DPI from a TIFF's XResolution, YResolution and ResolutionUnit tags."""
    if xres is None or yres is None:
        return None
    try:
        x, y, u = _ratio(xres), _ratio(yres), int(unit or 2)  # type: ignore[call-overload]
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if u == 3:  # per centimetre
        return _valid_dpi((x * 2.54, y * 2.54))
    return _valid_dpi((x, y)) if u == 2 else None  # 1: no absolute unit


def _resolution(
    im: PILImage.Image, fmt: str | None, exif: PILImage.Exif
) -> tuple[float, float] | None:
    """The DPI a file states. Not Pillow's info["dpi"] for TIFF and JPEG: that
    says 1 x 1 for a TIFF without resolution tags and 72 x 72 for a JPEG
    whose EXIF has none."""
    if fmt == "TIFF":
        tags = getattr(im, "tag_v2", {})
        return _tiff_dpi(tags.get(282), tags.get(283), tags.get(296))
    if fmt == "JPEG":
        unit, density = im.info.get("jfif_unit"), im.info.get("jfif_density")
        if unit in (1, 2) and isinstance(density, tuple):  # JFIF: per inch, per cm
            return _valid_dpi(tuple(d * (2.54 if unit == 2 else 1) for d in density))
        return _tiff_dpi(exif.get(0x011A), exif.get(0x011B), exif.get(0x0128))
    return _valid_dpi(im.info.get("dpi"))


def _decode(path: Path, im: PILImage.Image) -> Image:
    fmt = im.format
    frames = int(getattr(im, "n_frames", 1) or 1)
    if fmt == "MPO":
        # A phone or camera JPEG with secondary images (a stereo pair, depth
        # map, preview): its first image is the photo, an ordinary JPEG with
        # its own quantisation tables; the others are no frames to note.
        fmt, frames = "JPEG", 1
    info: dict[str, object] = {}
    icc = im.info.get("icc_profile") or None
    if fmt == "PNG" and "exif" not in im.info:
        im.load()  # as getexif() does: an eXIf chunk may follow the pixels
    exif = _read_exif(im, info)
    orientation = _orientation(exif)
    exif_bytes = _clean_exif(exif, info)  # before load(): it reads a TIFF's sub-IFDs
    dpi = _turned(_resolution(im, fmt, exif), orientation)
    pixels: np.ndarray | None = None
    upright = False
    if fmt == "PNG" and _png_bitdepth(path) == 16 and im.mode not in ("I", "I;16", "I;16B"):
        pixels = _read_png16(path)  # tRNS included: pypng's asDirect() gives it as alpha
    if pixels is None:
        im.load()
        # Pillow turns a TIFF upright as it loads it, and then drops the tag
        # from its EXIF (``exif`` is that object): not to be turned twice.
        upright = orientation != 1 and _ORIENTATION not in exif
        pixels = _colour_key_alpha(_pil_to_array(im), im)
        if im.mode == "CMYK":
            icc = None  # a CMYK profile does not describe the RGB we produce
    if not upright:
        pixels = _orient(pixels, orientation)
    info["orientation"] = orientation
    icc = _checked_icc(icc, info)
    if fmt == "WEBP" and _webp_lossless(path):
        info["lossless"] = True  # written back lossless (see _encode)
    if fmt == "JPEG" and getattr(im, "quantization", None):
        info["quantization"] = {k: list(v) for k, v in im.quantization.items()}
    return Image(pixels, icc, exif_bytes, fmt, frames, info, dpi)


def _colour_key_alpha(a: np.ndarray, im: PILImage.Image) -> np.ndarray:
    """Gray or RGB with a colour key (PNG tRNS): the key's pixels made transparent."""
    key = im.info.get("transparency")
    if key is None or im.mode not in ("1", "L", "I", "I;16", "I;16B", "RGB"):
        return a
    if a.dtype.kind != "u" or isinstance(key, bytes | str):
        return a
    k = np.asarray(key if isinstance(key, tuple) else (key,), np.int64)
    if k.shape != (a.shape[2],):
        return a
    alpha = np.full(a.shape[:2] + (1,), np.iinfo(a.dtype).max, a.dtype)
    alpha[(a == k).all(axis=2)] = 0
    return np.concatenate([a, alpha], axis=2)


def _pil_to_array(im: PILImage.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        a = np.asarray(im).astype(np.uint16)
    elif mode == "I":
        a = np.asarray(im)
        if a.min() >= 0 and a.max() <= 65535:
            a = a.astype(np.uint16)
        else:
            lo, hi = float(a.min()), float(a.max())
            a = ((a - lo) / max(hi - lo, 1.0)).astype(np.float32)
    elif mode == "F":
        a = np.asarray(im).astype(np.float32)
    elif mode in ("L", "LA", "RGB", "RGBA"):
        a = np.asarray(im)
    elif mode == "1":
        a = np.asarray(im.convert("L"))
    elif mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        a = np.asarray(im.convert("RGBA" if has_alpha else "RGB"))
    elif mode == "La":
        a = np.asarray(im.convert("LA"))
    elif mode == "RGBa":
        a = np.asarray(im.convert("RGBA"))
    else:  # CMYK, YCbCr, LAB, HSV, ...
        a = np.asarray(im.convert("RGB"))
    if a.ndim == 2:
        a = a[:, :, None]
    return np.ascontiguousarray(a)


def _png_bitdepth(path: Path) -> int:
    with open(path, "rb") as f:
        head = f.read(29)
    if len(head) < 25 or head[12:16] != b"IHDR":
        return 0
    return head[24]


def _read_png16(path: Path) -> np.ndarray:
    import png

    try:
        w, h, rows, info = png.Reader(filename=str(path)).asDirect()
        a = np.vstack([np.asarray(r, np.uint16) for r in rows])
    except png.Error as exc:
        raise ImageReadError(f"corrupt PNG: {exc}") from None
    planes = int(info["planes"])
    if a.shape != (h, w * planes):
        raise ImageReadError("truncated PNG data")
    return a.reshape(h, w, planes)


def _is_tiff(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(4) in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def _read_tiff(path: Path) -> Image | None:
    """tifffile for gray/RGB(A) TIFF of any depth; None lets Pillow convert."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            page = tf.pages[0]
            photometric = getattr(page.photometric, "name", str(page.photometric))
            if photometric not in ("MINISBLACK", "RGB"):
                return None
            # Refuse from the header: asarray() would allocate the declared size.
            _check_size(int(page.imagewidth), int(page.imagelength))
            missing = _missing_codec(page)
            if missing is not None:
                return _without_codec(page, missing)
            try:
                a = page.asarray()
            except Exception as exc:  # a codec our check did not foresee
                if "imagecodecs" not in str(exc):
                    raise
                return _without_codec(page, first_line(exc))
            frames = len(tf.pages)
            tags = page.tags
            icc_tag = tags.get(34675)
            icc = bytes(icc_tag.value) if icc_tag is not None else None
            orient_tag = tags.get(274)
            orientation = int(orient_tag.value) if orient_tag is not None else 1
            dpi = _tiff_dpi(*(tags[t].value if t in tags else None for t in (282, 283, 296)))
    except ImageReadError:
        raise
    except Exception as exc:
        raise ImageReadError(f"corrupt TIFF: {first_line(exc)}") from None
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        return None
    if a.dtype.kind == "f":
        a = a.astype(np.float32)
    elif a.dtype.kind in "ui" and a.dtype not in (np.uint8, np.uint16):
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0 and hi <= 65535:
            a = a.astype(np.uint16)
        else:
            a = ((a - lo) / max(hi - lo, 1.0)).astype(np.float32)
    elif a.dtype.kind not in "ui":
        return None
    a = _orient(np.ascontiguousarray(a), orientation)
    dpi = _turned(dpi, orientation)
    info: dict[str, object] = {"orientation": orientation}
    exif = _tiff_exif(path, info)
    return Image(a, _checked_icc(icc, info), exif, "TIFF", frames, info, dpi)


def _missing_codec(page: object) -> str | None:
    """What tifffile lacks to decode ``page`` (LZW, JPEG, the float predictor
    need the imagecodecs package), or None."""
    from tifffile import TIFF

    compression, predictor = page.compression, page.predictor  # type: ignore[attr-defined]
    if compression not in TIFF.DECOMPRESSORS:
        return f"{getattr(compression, 'name', compression)} compression"
    if predictor != 1 and predictor not in TIFF.UNPREDICTORS:
        return f"the {getattr(predictor, 'name', predictor)} predictor"
    return None


def _without_codec(page: object, missing: str) -> None:
    """None (Pillow reads the file) where Pillow keeps every bit: 8 bits a
    sample, or one gray sample of 16 / 32 bits. Else a reason: Pillow would
    silently cut 16-bit or float colour to 8 bits."""
    bits = int(page.bitspersample)  # type: ignore[attr-defined]
    samples = int(page.samplesperpixel)  # type: ignore[attr-defined]
    kind = int(page.sampleformat)  # type: ignore[attr-defined] # 1 uint, 2 int, 3 float
    if (bits <= 8 and kind == 1) or (samples == 1 and (bits, kind) in _PIL_GRAY):
        return None
    what = {1: "gray", 2: "gray + alpha", 3: "RGB", 4: "RGBA"}.get(samples, f"{samples}-sample")
    depth = f"{bits}-bit{' float' if kind == 3 else ''}"
    raise ImageReadError(
        f"{depth} {what} TIFF with {missing}: reading it without losing precision "
        "needs the imagecodecs package (pip install imagecodecs)"
    )


# One-sample TIFFs Pillow reads without losing precision: (bits, SampleFormat)
# -> I;16, I;16S, I (32-bit int), F (32-bit float).
_PIL_GRAY = {(16, 1), (16, 2), (32, 1), (32, 2), (32, 3)}


def _tiff_exif(path: Path, info: dict[str, object]) -> bytes | None:
    """The EXIF worth carrying from a TIFF read by tifffile: its IFD, parsed by
    Pillow (the same filter as every other format; no pixels are decoded)."""
    try:
        with open(path, "rb") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exif = PILImage.Exif()
            exif.load_from_fp(f)
            return _clean_exif(exif, info)
    except Exception:  # an IFD Pillow cannot parse (tifffile could): no EXIF
        return None


def _turned(dpi: tuple[float, float] | None, orientation: int) -> tuple[float, float] | None:
    """The (x, y) resolution of the upright image: swapped where it turns by 90°."""
    return (dpi[1], dpi[0]) if dpi and 5 <= orientation <= 8 else dpi


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1-8 (as ImageOps.exif_transpose does)."""
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: x.transpose(1, 0, 2),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: x[::-1, ::-1].transpose(1, 0, 2),
        8: lambda x: np.rot90(x, 1),
    }
    if orientation in ops:
        a = np.ascontiguousarray(ops[orientation](a))
    return a
