"""Generators of hostile and unusual input files, written by the tests themselves.

Every generator takes a directory and writes one file (or tree) into it,
returning its path. Nothing is downloaded; everything is small, so the whole
corpus builds in well under a second. ``tests/test_hostile.py`` pins what the
command line does with each of them.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

# -- raw PNG / TIFF writers (for files Pillow would refuse to write) ---------------


def png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def raw_png(
    width: int,
    height: int,
    *,
    bitdepth: int = 8,
    colour: int = 2,
    idat: bytes | None = None,
    extra: bytes = b"",
) -> bytes:
    """A PNG with the given IHDR; ``idat`` (raw, before compression) defaults to one row."""
    ihdr = struct.pack(">IIBBBBB", width, height, bitdepth, colour, 0, 0, 0)
    if idat is None:
        idat = b"\x00" * 16
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + extra
        + png_chunk(b"IDAT", zlib.compress(idat))
        + png_chunk(b"IEND", b"")
    )


def raw_tiff(width: int, height: int, *, bits: int = 32, sample_format: int = 3) -> bytes:
    """A little-endian gray TIFF declaring ``width`` x ``height`` with 16 bytes of data."""
    entries = [
        (256, 4, 1, width),  # ImageWidth, LONG
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, bits),  # BitsPerSample, SHORT
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: min-is-black
        (273, 4, 1, 8),  # StripOffsets
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, 16),  # StripByteCounts (a lie)
        (339, 3, 1, sample_format),  # SampleFormat: 3 = IEEE float
    ]
    data = b"\x00" * 16
    ifd_offset = 8 + len(data)
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        packed = struct.pack("<H", value) + b"\x00\x00" if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", ifd_offset) + data + ifd


def lzw_literals(data: bytes) -> bytes:
    """``data`` as a TIFF LZW stream of literal codes only: a ClearCode before
    every 250 bytes keeps the table, hence the code width (9 bits), from
    growing. Valid LZW that every decoder reads, without an encoder."""
    codes: list[int] = []
    for i in range(0, len(data), 250):
        codes += [256, *data[i : i + 250]]
    codes.append(257)  # EndOfInformation
    bits = "".join(f"{c:09b}" for c in codes)
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def tiff_file(a: np.ndarray, *, lzw: bool = True) -> bytes:
    """A little-endian one-strip TIFF of ``a`` (H x W gray or H x W x 3 RGB;
    uint8, uint16 or float32), LZW-compressed unless ``lzw`` is false. For
    files Pillow cannot write and tifffile writes LZW of only with imagecodecs."""
    h, w = a.shape[:2]
    c = 1 if a.ndim == 2 else a.shape[2]
    bits, kind = a.dtype.itemsize * 8, {"u": 1, "i": 2, "f": 3}[a.dtype.kind]
    data = np.ascontiguousarray(a, a.dtype.newbyteorder("<")).tobytes()
    if lzw:
        data = lzw_literals(data)
    short, long = 3, 4
    entries = [
        (256, long, [w]),  # ImageWidth
        (257, long, [h]),  # ImageLength
        (258, short, [bits] * c),  # BitsPerSample
        (259, short, [5 if lzw else 1]),  # Compression
        (262, short, [1 if c == 1 else 2]),  # Photometric: min-is-black / RGB
        (273, long, [8]),  # StripOffsets: right after the header
        (277, short, [c]),  # SamplesPerPixel
        (278, long, [h]),  # RowsPerStrip
        (279, long, [len(data)]),  # StripByteCounts
        (284, short, [1]),  # PlanarConfiguration: chunky
        (339, short, [kind] * c),  # SampleFormat
    ]
    extra = b""  # values over 4 bytes, after the strip
    base = 8 + len(data) + len(data) % 2
    ifd = struct.pack("<H", len(entries))
    tail_start = base + 2 + 12 * len(entries) + 4
    for tag, typ, values in entries:
        packed = struct.pack(f"<{len(values)}{'H' if typ == short else 'I'}", *values)
        if len(packed) <= 4:
            field = packed.ljust(4, b"\x00")
        else:
            field = struct.pack("<I", tail_start + len(extra))
            extra += packed
        ifd += struct.pack("<HHI", tag, typ, len(values)) + field
    ifd += struct.pack("<I", 0)
    pad = b"\x00" * (len(data) % 2)
    return b"II*\x00" + struct.pack("<I", base) + data + pad + ifd + extra


# -- pixels ---------------------------------------------------------------------------


def pattern(h: int, w: int, c: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus a little noise: not symmetric, so flips show."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = [
        (x / max(w - 1, 1)) * 200 + 20,
        (y / max(h - 1, 1)) * 180 + 40,
        ((x + 2 * y) % 37) * 5 + 30,
        np.full((h, w), 200.0),
    ]
    a = np.stack(planes[:c], axis=2) + rng.normal(0, 6, (h, w, c))
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def save(img: PILImage.Image, path: Path, **kw) -> Path:
    img.save(path, **kw)
    return path


def encoded(img: PILImage.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


# -- EXIF orientation -----------------------------------------------------------------

# What Pillow's exif_transpose applies for each orientation, and its inverse.
_INVERSE = {
    2: PILImage.Transpose.FLIP_LEFT_RIGHT,
    3: PILImage.Transpose.ROTATE_180,
    4: PILImage.Transpose.FLIP_TOP_BOTTOM,
    5: PILImage.Transpose.TRANSPOSE,
    6: PILImage.Transpose.ROTATE_90,
    7: PILImage.Transpose.TRANSVERSE,
    8: PILImage.Transpose.ROTATE_270,
}
UPRIGHT_SHAPE = (20, 36)  # H x W of the upright picture the orientation cases show


def upright() -> PILImage.Image:
    return PILImage.fromarray(pattern(*UPRIGHT_SHAPE, seed=7))


def oriented(orientation: int) -> Callable[[Path], Path]:
    """A PNG whose stored pixels, turned per its EXIF ``orientation``, give upright()."""

    def make(d: Path) -> Path:
        stored = upright().transpose(_INVERSE[orientation])
        exif = PILImage.Exif()
        exif[0x0112] = orientation
        return save(stored, d / f"orient{orientation}.png", exif=exif.tobytes())

    return make


# -- the per-file corpus --------------------------------------------------------------


def zero_bytes(d: Path) -> Path:
    p = d / "empty.png"
    p.write_bytes(b"")
    return p


def truncated_png(d: Path) -> Path:
    data = encoded(PILImage.fromarray(pattern(64, 64)), "PNG")
    p = d / "truncated.png"
    p.write_bytes(data[: len(data) // 2])
    return p


def truncated_jpeg(d: Path) -> Path:
    data = encoded(PILImage.fromarray(pattern(64, 64)), "JPEG", quality=90)
    p = d / "truncated.jpg"
    p.write_bytes(data[: len(data) // 2])
    return p


def bad_crc_png(d: Path) -> Path:
    data = bytearray(encoded(PILImage.fromarray(pattern(16, 16)), "PNG"))
    data[29] ^= 0xFF  # last byte of IHDR's CRC
    p = d / "badcrc.png"
    p.write_bytes(bytes(data))
    return p


def text_as_png(d: Path) -> Path:
    p = d / "notes.png"
    p.write_text("this is not an image\n" * 20)
    return p


def html_as_jpg(d: Path) -> Path:
    p = d / "page.jpg"
    p.write_text("<!doctype html><title>404</title>")
    return p


def zero_width_png(d: Path) -> Path:
    p = d / "zerowidth.png"
    p.write_bytes(raw_png(0, 16))
    return p


def bomb_png(d: Path) -> Path:
    """IHDR declares 100000 x 100000 RGB (30 GB decoded); the file is 80 bytes."""
    p = d / "bomb.png"
    p.write_bytes(raw_png(100_000, 100_000))
    return p


def bomb_png16(d: Path) -> Path:
    """A 16-bit bomb: would take the pypng path if Pillow did not refuse first."""
    p = d / "bomb16.png"
    p.write_bytes(raw_png(100_000, 100_000, bitdepth=16))
    return p


def bomb_tiff(d: Path) -> Path:
    """A float TIFF declaring 100000 x 100000 (40 GB): read by tifffile, not Pillow."""
    p = d / "bomb.tif"
    p.write_bytes(raw_tiff(100_000, 100_000))
    return p


def bomb_gif(d: Path) -> Path:
    """A GIF whose logical screen and frame are 65535 x 65535."""
    head = b"GIF89a" + struct.pack("<HHBBB", 65535, 65535, 0, 0, 0)
    frame = b"," + struct.pack("<HHHHB", 0, 0, 65535, 65535, 0) + b"\x02\x02\x44\x01\x00"
    p = d / "bomb.gif"
    p.write_bytes(head + frame + b";")
    return p


def one_by_one(d: Path) -> Path:
    return save(PILImage.fromarray(pattern(1, 1)), d / "1x1.png")


def three_by_two(d: Path) -> Path:
    return save(PILImage.fromarray(pattern(2, 3)), d / "3x2.png")


def wide_thin(d: Path) -> Path:
    return save(PILImage.fromarray(pattern(3, 2000)), d / "wide2000x3.png")


def tall_thin(d: Path) -> Path:
    return save(PILImage.fromarray(pattern(700, 1)), d / "tall1x700.png")


def cmyk_jpeg(d: Path) -> Path:
    return save(PILImage.fromarray(pattern(24, 32)).convert("CMYK"), d / "cmyk.jpg", quality=95)


def palette_transparent(d: Path) -> Path:
    im = PILImage.fromarray(pattern(24, 32)).quantize(16)
    return save(im, d / "palette.png", transparency=0)


def gray_alpha(d: Path) -> Path:
    gray = pattern(24, 32, 1)
    alpha = np.full_like(gray, 255)
    alpha[:, :8] = 0  # a fully transparent strip
    return save(PILImage.fromarray(np.concatenate([gray, alpha], axis=2), "LA"), d / "la.png")


def gray16(d: Path) -> Path:
    a = pattern(24, 32, 1)[:, :, 0].astype(np.uint16) * 257 + 3
    return save(PILImage.fromarray(a), d / "gray16.png")


def float_tiff(d: Path) -> Path:
    import tifffile

    a = pattern(24, 32).astype(np.float32) / 255.0
    p = d / "float32.tif"
    tifffile.imwrite(p, a, photometric="rgb")
    return p


def float_tiff_nan(d: Path) -> Path:
    """Float TIFF with NaN, +inf, -inf and values outside [0, 1]."""
    import tifffile

    a = pattern(24, 32).astype(np.float32) / 255.0
    a[0, 0], a[1, 1], a[2, 2], a[3, 3], a[4, 4] = np.nan, np.inf, -np.inf, 7.5, -3.0
    p = d / "float_nan.tif"
    tifffile.imwrite(p, a, photometric="rgb")
    return p


def multipage_tiff(d: Path) -> Path:
    import tifffile

    p = d / "pages.tif"
    with tifffile.TiffWriter(p) as tw:
        for i in range(3):
            tw.write(pattern(16, 24, seed=i), photometric="rgb")
    return p


def _frames(n: int) -> list[PILImage.Image]:
    """Frames that differ grossly (shifted, every other one inverted)."""
    out = []
    for i in range(n):
        a = np.roll(pattern(20, 28, seed=i), 9 * i, axis=1)
        out.append(PILImage.fromarray(255 - a if i % 2 else a))
    return out


def _gif_bytes() -> bytes:
    f = _frames(3)
    return encoded(f[0], "GIF", save_all=True, append_images=f[1:], duration=80, loop=0)


def animated_gif(d: Path) -> Path:
    p = d / "anim.gif"
    p.write_bytes(_gif_bytes())
    return p


def gif_first_frame(d: Path) -> Path:
    """The first frame of animated_gif's file, decoded by Pillow, as a still PNG."""
    with PILImage.open(io.BytesIO(_gif_bytes())) as im:
        im.seek(0)
        still = im.convert("RGBA" if "transparency" in im.info else "RGB")
    return save(still, d / "gif_frame0.png")


def animated_webp(d: Path) -> Path:
    f = _frames(3)
    p = d / "anim.webp"
    f[0].save(p, save_all=True, append_images=f[1:], duration=80, loop=0, lossless=True)
    return p


def webp_first_frame(d: Path) -> Path:
    return save(_frames(1)[0], d / "webp_frame0.png")


def srgb_icc_png(d: Path) -> Path:
    """A valid ICC profile: kept."""
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return save(PILImage.fromarray(pattern(16, 24)), d / "srgb.png", icc_profile=icc)


def garbage_icc_png(d: Path) -> Path:
    """An iCCP chunk that decompresses to bytes that are no ICC profile."""
    return save(PILImage.fromarray(pattern(16, 24)), d / "iccgarbage.png",
                icc_profile=b"this is not an ICC profile" * 4)  # fmt: skip


def broken_zlib_icc_png(d: Path) -> Path:
    """An iCCP chunk whose compressed stream is not zlib at all."""
    data = encoded(PILImage.fromarray(pattern(16, 24)), "PNG")
    iccp = png_chunk(b"iCCP", b"broken\x00\x00" + b"\xde\xad\xbe\xef" * 8)
    p = d / "icczlib.png"
    p.write_bytes(data[:33] + iccp + data[33:])  # right after IHDR
    return p


def garbage_icc_jpeg(d: Path) -> Path:
    return save(PILImage.fromarray(pattern(16, 24)), d / "iccgarbage.jpg", quality=95,
                icc_profile=b"\x00\x01garbage" * 10)  # fmt: skip


def jpeg_named_png(d: Path) -> Path:
    p = d / "actually_jpeg.png"
    p.write_bytes(encoded(PILImage.fromarray(pattern(16, 24)), "JPEG", quality=90))
    return p


def unicode_space_name(d: Path) -> Path:
    sub = d / "dossier été ünï 写真"
    sub.mkdir(exist_ok=True)
    return save(PILImage.fromarray(pattern(16, 24)), sub / "photo à la plage 1.png")


def newline_name(d: Path) -> Path:
    """A file name with a newline in it (broken, so it must be reported)."""
    p = d / "evil\nerror: fake.png"
    p.write_text("not an image")
    return p


def non_utf8_name(d: Path) -> Path:
    name = os.fsdecode(b"latin1-\xe9t\xe9.png")
    return save(PILImage.fromarray(pattern(16, 24)), d / name)


def long_name(d: Path) -> Path:
    """245 characters: the output name (+ "_x2") still fits in 255 bytes."""
    return save(PILImage.fromarray(pattern(16, 24)), d / ("L" * 241 + ".png"))


def dangling_symlink(d: Path) -> Path:
    p = d / "dangling.png"
    p.symlink_to(d / "does-not-exist.png")
    return p


def fifo_png(d: Path) -> Path:
    p = d / "fifo.png"
    os.mkfifo(p)
    return p


def directory_named_png(d: Path) -> Path:
    p = d / "folder.png"
    p.mkdir()
    return p


def plain_rgb(d: Path) -> Path:
    return save(PILImage.fromarray(pattern(24, 32)), d / "plain.png")


def rgba(d: Path) -> Path:
    return save(PILImage.fromarray(pattern(24, 32, 4), "RGBA"), d / "rgba.png")


def rgb48_png(d: Path) -> Path:
    import png

    a = pattern(12, 20).astype(np.uint16) * 257
    p = d / "rgb48.png"
    with open(p, "wb") as f:
        png.Writer(20, 12, greyscale=False, bitdepth=16).write_array(f, a.reshape(-1))
    return p


def bilevel(d: Path) -> Path:
    return save(PILImage.fromarray(pattern(16, 24)).convert("1"), d / "bilevel.png")


def bmp(d: Path) -> Path:
    return save(PILImage.fromarray(pattern(16, 24)), d / "plain.bmp")


def ppm(d: Path) -> Path:
    """A format scnrestore reads (via Pillow) but does not write: PNG output."""
    return save(PILImage.fromarray(pattern(16, 24)), d / "plain.ppm")


def upright_png(d: Path) -> Path:
    """What every oriented() file shows, stored upright without EXIF."""
    return save(upright(), d / "upright.png")


# -- formats whose metadata or decoding needs care --------------------------------------


def camera_exif(orientation: int = 1) -> bytes:
    """EXIF as a camera writes it: IFD0 tags, an EXIF sub-IFD, a GPS sub-IFD."""
    exif = PILImage.Exif()
    exif[0x010F] = "HostileCam"  # Make
    exif[0x8298] = "(c) the tests"  # Copyright
    exif[0x0112] = orientation
    exif[0x8769] = {0x9003: "2021:06:01 12:00:00", 0xA002: 999, 0xA003: 999}  # + stale size
    exif[0x8825] = {1: "N", 2: (48.0, 51.0, 30.0)}  # GPSLatitudeRef, GPSLatitude
    return exif.tobytes()


def make_only_exif() -> bytes:
    """EXIF of IFD0 tags only (no sub-IFDs)."""
    exif = PILImage.Exif()
    exif[0x010F] = "HostileCam"
    exif[0x8298] = "(c) the tests"
    return exif.tobytes()


def palette_tiff(d: Path, exif: bytes | None = None) -> Path:
    """A palette TIFF (Pillow decodes it, not tifffile) with a camera's EXIF."""
    im = PILImage.fromarray(pattern(24, 32)).quantize(64)
    return save(im, d / "palette.tif", exif=camera_exif() if exif is None else exif)


def cmyk_tiff(d: Path, exif: bytes | None = None) -> Path:
    im = PILImage.fromarray(pattern(24, 32)).convert("CMYK")
    return save(im, d / "cmyk.tif", exif=camera_exif() if exif is None else exif)


def lzw_tiff(d: Path) -> Path:
    """8-bit RGB, LZW: tifffile needs imagecodecs for it, Pillow does not."""
    return save(PILImage.fromarray(pattern(24, 32)), d / "lzw.tif", compression="tiff_lzw")


def lzw_tiff16(d: Path) -> Path:
    """16-bit RGB, LZW: Pillow would read it as 8-bit."""
    p = d / "lzw16.tif"
    p.write_bytes(tiff_file(pattern(24, 32).astype(np.uint16) * 257 + 3))
    return p


def mpo(d: Path, quality: int = 30) -> Path:
    """A phone camera's JPEG: MPO, the photo plus a second image."""
    f = _frames(2)
    return save(f[0], d / "phone.jpg", format="MPO", save_all=True, append_images=f[1:],
                quality=quality)  # fmt: skip


def rgb_colour_key(d: Path) -> Path:
    """RGB with a tRNS colour key: the key's pixels (a black square) are transparent."""
    a = pattern(24, 32)
    a[a.sum(axis=2) == 0] = 1  # no accidental key pixels
    a[:8, :8] = 0
    return save(PILImage.fromarray(a), d / "rgbkey.png", transparency=(0, 0, 0))


def gray_colour_key(d: Path) -> Path:
    a = pattern(24, 32, 1)[:, :, 0]
    a[a == 7] = 8
    a[:8, :8] = 7
    return save(PILImage.fromarray(a, "L"), d / "graykey.png", transparency=7)


def dpi_png(d: Path) -> Path:
    return save(PILImage.fromarray(pattern(24, 32)), d / "dpi300.png", dpi=(300, 150))


def long_4byte_name(d: Path) -> Path:
    """62 emoji (248 bytes): the name with "_x2.bmp" is 255 bytes, the limit."""
    gray = pattern(24, 32, 1)
    alpha = np.full_like(gray, 255)
    alpha[:, :8] = 0
    la = PILImage.fromarray(np.concatenate([gray, alpha], axis=2), "LA")
    return save(la, d / ("\U0001f600" * 62 + ".png"))


def garbage_exif_png(d: Path) -> Path:
    """An eXIf chunk holding no TIFF structure at all."""
    data = encoded(PILImage.fromarray(pattern(16, 24)), "PNG")
    p = d / "exifgarbage.png"
    p.write_bytes(data[:33] + png_chunk(b"eXIf", b"this is not EXIF" * 4) + data[33:])
    return p


def truncated_exif_png(d: Path) -> Path:
    """An eXIf chunk whose IFD0 announces 5 entries and holds part of one."""
    data = encoded(PILImage.fromarray(pattern(16, 24)), "PNG")
    exif = png_chunk(b"eXIf", b"MM\x00*\x00\x00\x00\x08\x00\x05\x01\x0f\x00\x02")
    p = d / "exiftruncated.png"
    p.write_bytes(data[:33] + exif + data[33:])  # right after IHDR
    return p
