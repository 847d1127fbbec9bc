"""Image files: bit depth, orientation, ICC/EXIF, modes, atomic writes."""

from __future__ import annotations

import importlib.util
import io
import os
import struct

import hostile as H
import numpy as np
import png
import pytest
import tifffile
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from scnrestore.estimate import estimate_jpeg_quality
from scnrestore.imageio import Image, ImageReadError, format_for_path, read_image, write_image

SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def _rgb16(h=20, w=30):
    rng = np.random.default_rng(0)
    return rng.integers(0, 65536, (h, w, 3), dtype=np.uint16)


def test_16bit_rgb_png_roundtrip(tmp_path):
    a = _rgb16()
    src = tmp_path / "in.png"
    png.Writer(30, 20, greyscale=False, bitdepth=16).write(src.open("wb"), a.reshape(20, -1))
    img = read_image(src)
    assert img.pixels.dtype == np.uint16 and np.array_equal(img.pixels, a)
    write_image(tmp_path / "out.png", img)
    _, _, rows, info = png.Reader(filename=str(tmp_path / "out.png")).asDirect()
    assert info["bitdepth"] == 16
    assert np.array_equal(np.vstack([np.asarray(r) for r in rows]).reshape(20, 30, 3), a)


def test_16bit_rgba_png_keeps_icc_and_exif(tmp_path):
    a = np.concatenate([_rgb16(), np.full((20, 30, 1), 40000, np.uint16)], axis=2)
    exif = PILImage.Exif()
    exif[0x010F] = "TestCam"
    img = Image(a, icc_profile=SRGB, exif=exif.tobytes())
    write_image(tmp_path / "o.png", img)
    back = read_image(tmp_path / "o.png")
    assert np.array_equal(back.pixels, a)
    assert back.icc_profile == SRGB
    with PILImage.open(tmp_path / "o.png") as im:
        assert im.getexif()[0x010F] == "TestCam"


def test_16bit_gray_png(tmp_path):
    a = np.random.default_rng(1).integers(0, 65536, (17, 23), dtype=np.uint16)
    PILImage.fromarray(a).save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.pixels.shape == (17, 23, 1) and img.pixels.dtype == np.uint16
    assert np.array_equal(img.pixels[:, :, 0], a)
    write_image(tmp_path / "g2.png", img)
    assert np.array_equal(read_image(tmp_path / "g2.png").pixels[:, :, 0], a)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_deep_tiff_roundtrip(tmp_path, dtype):
    a = _rgb16().astype(dtype) / (65535.0 if dtype == np.float32 else 1)
    a = a.astype(dtype)
    tifffile.imwrite(tmp_path / "t.tif", a, photometric="rgb")
    img = read_image(tmp_path / "t.tif")
    assert img.pixels.dtype == dtype and np.array_equal(img.pixels, a)
    write_image(tmp_path / "o.tiff", img)
    assert np.array_equal(tifffile.imread(tmp_path / "o.tiff"), a)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_and_reset(tmp_path, orientation):
    rng = np.random.default_rng(orientation)
    a = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    PILImage.fromarray(a).save(tmp_path / "o.png", exif=exif.tobytes())
    img = read_image(tmp_path / "o.png")
    with PILImage.open(tmp_path / "o.png") as im:
        expected = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert np.array_equal(img.pixels, expected)
    write_image(tmp_path / "out.jpg", img)
    with PILImage.open(tmp_path / "out.jpg") as im:
        assert im.getexif().get(0x0112) == 1
        assert im.size == (expected.shape[1], expected.shape[0])


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".tif"])
def test_icc_profile_carried(tmp_path, ext):
    a = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    PILImage.fromarray(a).save(tmp_path / f"i{ext}", icc_profile=SRGB)
    img = read_image(tmp_path / f"i{ext}")
    assert img.icc_profile == SRGB
    write_image(tmp_path / f"o{ext}", img)
    with PILImage.open(tmp_path / f"o{ext}") as im:
        assert im.info.get("icc_profile") == SRGB


def test_palette_with_transparency_becomes_rgba(tmp_path):
    im = PILImage.new("P", (8, 6))
    im.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    im.putpixel((1, 1), 1)
    im.info["transparency"] = 0
    im.save(tmp_path / "p.png", transparency=0)
    img = read_image(tmp_path / "p.png")
    assert img.mode == "RGBA"
    assert tuple(img.pixels[1, 1]) == (255, 0, 0, 255) and img.pixels[0, 0, 3] == 0


def test_cmyk_jpeg_becomes_rgb_without_cmyk_profile(tmp_path):
    PILImage.new("CMYK", (10, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg")
    img = read_image(tmp_path / "c.jpg")
    assert img.mode == "RGB" and img.icc_profile is None
    r, g, b = img.pixels[4, 4]
    assert r > 200 and g < 60 and b < 60


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "1"])
def test_modes(tmp_path, mode):
    PILImage.new(mode, (5, 4)).save(tmp_path / "m.png")
    img = read_image(tmp_path / "m.png")
    assert img.pixels.shape[2] == {"L": 1, "1": 1, "LA": 2, "RGBA": 4}[mode]


def test_unreadable_files_give_one_line_reasons(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, I am not a picture\n")
    buf = io.BytesIO()
    PILImage.new("RGB", (64, 64), (9, 9, 9)).save(buf, "PNG")
    (tmp_path / "trunc.png").write_bytes(buf.getvalue()[:60])
    cases = [("empty.png", "empty"), ("text.png", "identify"), ("trunc.png", "truncated|corrupt")]
    for name, pattern in cases:
        with pytest.raises(ImageReadError, match=pattern) as exc:
            read_image(tmp_path / name)
        assert "\n" not in str(exc.value)


def test_format_for_path():
    assert format_for_path("a.JPEG") == "JPEG"
    assert format_for_path("a.png", "webp") == "WEBP"
    with pytest.raises(ValueError):
        format_for_path("a.xyz")


def test_failed_write_leaves_nothing(tmp_path):
    img = Image(np.zeros((4, 4, 5), np.uint8))  # 5 channels: no such mode
    with pytest.raises(KeyError):
        write_image(tmp_path / "x.png", img)
    assert list(tmp_path.iterdir()) == []


def test_written_file_is_readable_by_others(tmp_path):
    write_image(tmp_path / "x.png", Image(np.zeros((4, 4, 3), np.uint8)))
    assert (tmp_path / "x.png").stat().st_mode & 0o044 == 0o044


# -- metadata: only real EXIF, resolution ------------------------------------------------

# Tags describing a TIFF's layout (ImageWidth ... ColorMap, InkSet): never carried.
STRUCTURAL = {256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 320, 332}


def _exif_of(data: bytes | None) -> PILImage.Exif:
    exif = PILImage.Exif()
    if data:
        exif.load(data)
    return exif


@pytest.mark.parametrize("ext", [".tif", ".png", ".jpg", ".webp"])
@pytest.mark.parametrize("exif", ["camera", "ifd0_only"])
@pytest.mark.parametrize("make", [H.palette_tiff, H.cmyk_tiff], ids=["palette", "cmyk"])
def test_pillow_decoded_tiff_carries_only_real_exif(tmp_path, make, exif, ext):
    """Pillow's getexif() of a TIFF is its whole main IFD: written into an
    output, its StripOffsets / ColorMap made the TIFF unreadable (with IFD0
    tags only, it was even reported ok)."""
    src = make(tmp_path, H.make_only_exif() if exif == "ifd0_only" else None)
    img = read_image(src)
    carried = _exif_of(img.exif)
    assert carried[0x010F] == "HostileCam" and not set(carried) & STRUCTURAL
    out = tmp_path / f"out{ext}"
    write_image(out, img)
    with PILImage.open(out) as im:
        im.load()
        assert im.size == (32, 24) and im.mode == "RGB"
        if ext == ".tif":  # lossless: the very pixels
            np.testing.assert_array_equal(np.asarray(im), img.pixels)
        exif_out = im.getexif()
        assert exif_out[0x010F] == "HostileCam" and exif_out[0x8298] == "(c) the tests"
        if ext == ".tif":
            assert im.tag_v2[262] == 2 and 320 not in im.tag_v2  # RGB, no stale ColorMap
        else:
            assert not set(exif_out) & STRUCTURAL
            if exif == "camera":
                assert exif_out.get_ifd(0x8769)[0x9003] == "2021:06:01 12:00:00"
                assert exif_out.get_ifd(0x8825)[1] == "N"


@pytest.mark.parametrize("make", [H.garbage_exif_png, H.truncated_exif_png])
def test_corrupt_exif_costs_the_exif_not_the_image(tmp_path, recwarn, make):
    """EXIF Pillow cannot parse failed the image ("not a TIFF file"); EXIF it
    can only partly parse printed Python warnings into a batch's output."""
    img = read_image(make(tmp_path))
    assert img.pixels.shape == (16, 24, 3) and img.exif is None
    if make is H.garbage_exif_png:
        assert img.info["notes"] == ["its EXIF data is corrupt and was dropped"]
    assert not recwarn.list
    write_image(tmp_path / "o.png", img)


@pytest.mark.parametrize("ext", [".tif", ".png", ".jpg", ".webp"])
def test_camera_exif_into_every_format(tmp_path, ext):
    """A camera JPEG's EXIF (with EXIF and GPS sub-IFDs): a TIFF output used to
    fail ("Error setting from dictionary": libtiff cannot store the sub-IFDs),
    now it keeps the IFD0 tags; the others keep everything but the stale size."""
    src = tmp_path / "cam.jpg"
    PILImage.fromarray(H.pattern(24, 32)).save(src, exif=H.camera_exif(), quality=90)
    write_image(tmp_path / f"o{ext}", read_image(src))
    with PILImage.open(tmp_path / f"o{ext}") as im:
        im.load()
        exif = im.getexif()
        assert exif[0x010F] == "HostileCam" and exif[0x0112] == 1
        if ext != ".tif":
            sub = exif.get_ifd(0x8769)
            assert sub[0x9003] == "2021:06:01 12:00:00" and 0xA002 not in sub
            assert exif.get_ifd(0x8825)[1] == "N"


def test_exif_of_tiff_read_by_tifffile(tmp_path):
    """8-bit RGB and 16-bit TIFFs (tifffile reads them) keep their EXIF too."""
    src = tmp_path / "rgb.tif"
    PILImage.fromarray(H.pattern(24, 32)).save(src, exif=H.camera_exif())
    img = read_image(src)
    carried = _exif_of(img.exif)
    assert carried[0x010F] == "HostileCam" and not set(carried) & STRUCTURAL
    assert carried.get_ifd(0x8769)[0x9003] == "2021:06:01 12:00:00"
    write_image(tmp_path / "o.jpg", img)
    with PILImage.open(tmp_path / "o.jpg") as im:
        assert im.getexif()[0x010F] == "HostileCam"
    deep = tmp_path / "deep.tif"
    tifffile.imwrite(deep, _rgb16(), photometric="rgb", extratags=[(271, "s", 0, "DeepCam", True)])
    img = read_image(deep)
    assert img.pixels.dtype == np.uint16 and _exif_of(img.exif)[0x010F] == "DeepCam"
    write_image(tmp_path / "deep.png", img)  # 16-bit PNG: eXIf spliced in
    with PILImage.open(tmp_path / "deep.png") as im:
        assert im.getexif()[0x010F] == "DeepCam"


def _marked(h=8, w=12):
    """Dark blue with a red 4 x 4 square at the top left."""
    a = np.zeros((h, w, 3), np.uint8)
    a[..., 2] = 90
    a[:4, :4] = (255, 0, 0)
    return a


@pytest.mark.parametrize("orientation", [3, 6])
@pytest.mark.parametrize("compression", [None, "tiff_lzw"])
@pytest.mark.parametrize("mode", ["P", "CMYK"])
def test_pillow_decoded_tiff_is_turned_once(tmp_path, mode, compression, orientation):
    """Pillow turns a TIFF upright as it loads it: it was turned a second time.
    (And Pillow 13 memory-maps an uncompressed one opened by name with the
    turned size: orientation 6 scrambled palette and CMYK pixels.)"""
    a = _marked()
    im = PILImage.fromarray(a).quantize(4) if mode == "P" else PILImage.fromarray(a).convert(mode)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    im.save(tmp_path / "o.tif", exif=exif, compression=compression)
    # The same stored pixels and orientation as PNG and JPEG, which Pillow leaves as stored.
    rgb = im.convert("RGB")
    rgb.save(tmp_path / "o.png", exif=exif)
    rgb.save(tmp_path / "o.jpg", exif=exif, quality=95)
    img = read_image(tmp_path / "o.tif")
    np.testing.assert_array_equal(img.pixels, read_image(tmp_path / "o.png").pixels)
    # Upright, orientation 3 (turned 180°) puts the red square at the bottom
    # right, 6 (turned 90° clockwise) at the top right.
    rows, cols = {3: (slice(4, 8), slice(8, 12)), 6: (slice(0, 4), slice(4, 8))}[orientation]
    red = np.zeros(img.pixels.shape[:2], bool)
    red[rows, cols] = True
    np.testing.assert_array_equal(img.pixels[..., 0] > 128, red)
    jpeg = read_image(tmp_path / "o.jpg").pixels.astype(int)
    assert jpeg.shape == img.pixels.shape
    np.testing.assert_array_equal(jpeg[..., 0] > 128, red)


# -- TIFFs tifffile cannot decode without imagecodecs ------------------------------------

HAVE_IMAGECODECS = importlib.util.find_spec("imagecodecs") is not None


def _pillow_tiff(path, a, **kw):
    PILImage.fromarray(a).save(path, **kw)
    return path


@pytest.mark.parametrize(
    "case",
    ["rgb8_lzw", "rgb8_jpeg", "gray16_lzw", "float_gray_lzw", "rgb8_lzw_by_the_tests"],
)
def test_tiff_without_imagecodecs_falls_back_to_pillow(tmp_path, case):
    """LZW and JPEG TIFFs used to be refused as corrupt ("requires the
    'imagecodecs' package"); Pillow reads them without losing a bit."""
    rgb = H.pattern(24, 32)
    gray16 = np.random.default_rng(3).integers(0, 65536, (9, 11), dtype=np.uint16)
    floats = np.random.default_rng(4).random((9, 11), dtype=np.float32)
    p = tmp_path / "t.tif"
    if case == "rgb8_lzw":
        expected = rgb
        _pillow_tiff(p, rgb, compression="tiff_lzw")
    elif case == "rgb8_jpeg":
        expected = None
        _pillow_tiff(p, rgb, compression="jpeg", quality=95)
    elif case == "gray16_lzw":
        expected = gray16[:, :, None]
        _pillow_tiff(p, gray16, compression="tiff_lzw")
    elif case == "float_gray_lzw":
        expected = floats[:, :, None]
        p.write_bytes(H.tiff_file(floats))
    else:  # the LZW writer of the deep-colour case below, checked by libtiff
        expected = rgb
        p.write_bytes(H.tiff_file(rgb))
    img = read_image(p)
    assert img.format == "TIFF"
    if expected is None:  # lossy JPEG inside
        assert img.pixels.shape == rgb.shape and np.abs(img.pixels - rgb.astype(int)).mean() < 4
    else:
        assert img.pixels.dtype == expected.dtype
        np.testing.assert_array_equal(img.pixels, expected)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_deep_colour_lzw_tiff_needs_imagecodecs(tmp_path, dtype):
    """Pillow would read 16-bit / float RGB as 8-bit: refused, saying what helps."""
    a = H.pattern(9, 11).astype(np.float32) / 255
    a = (a * 65535).astype(np.uint16) if dtype == np.uint16 else a
    (tmp_path / "deep.tif").write_bytes(H.tiff_file(a))
    if HAVE_IMAGECODECS:  # then tifffile reads it itself
        np.testing.assert_array_equal(read_image(tmp_path / "deep.tif").pixels, a)
        return
    depth = "16-bit" if dtype == np.uint16 else "32-bit float"
    with pytest.raises(ImageReadError) as exc:
        read_image(tmp_path / "deep.tif")
    assert str(exc.value) == (
        f"{depth} RGB TIFF with LZW compression: reading it without losing precision "
        "needs the imagecodecs package (pip install imagecodecs)"
    )


# -- MPO, colour keys, gray + alpha as BMP -----------------------------------------------


def test_mpo_is_read_as_its_first_jpeg(tmp_path):
    """Phone JPEGs Pillow opens as MPO: format JPEG (dejpeg --quality auto reads
    its tables), one frame (no "2 frames" note for the secondary image)."""
    p = H.mpo(tmp_path, quality=30)
    with PILImage.open(p) as im:
        assert im.format == "MPO" and im.n_frames == 2
        tables = {k: list(v) for k, v in im.quantization.items()}
        first = np.asarray(im.convert("RGB"))
    img = read_image(p)
    assert (img.format, img.frames) == ("JPEG", 1)
    assert img.info["quantization"] == tables
    assert estimate_jpeg_quality(img.info["quantization"]) == 30
    np.testing.assert_array_equal(img.pixels, first)


@pytest.mark.parametrize("mode", ["RGB", "L", "I;16", "1"])
def test_colour_key_becomes_alpha(tmp_path, mode):
    """A tRNS colour key in an RGB / gray PNG: those pixels stay transparent."""
    a = H.pattern(12, 16)
    if mode == "RGB":
        a[a.sum(axis=2) == 0] = 1
        a[:4, :4] = 0
        im, key = PILImage.fromarray(a), (0, 0, 0)
    elif mode == "L":
        g = a[:, :, 0].copy()
        g[g == 7] = 8
        g[:4, :4] = 7
        im, key = PILImage.fromarray(g, "L"), 7
    elif mode == "I;16":
        g = a[:, :, 0].astype(np.uint16) * 257 + 1
        g[:4, :4] = 300
        im, key = PILImage.fromarray(g), 300
    else:
        g = np.full((12, 16), 255, np.uint8)
        g[:4, :4] = 0
        im, key = PILImage.fromarray(g).convert("1"), 0
    im.save(tmp_path / "k.png", transparency=key)
    img = read_image(tmp_path / "k.png")
    assert img.pixels.shape[2] == (4 if mode == "RGB" else 2)
    alpha = img.pixels[:, :, -1]
    opaque = np.iinfo(img.pixels.dtype).max
    assert (alpha[:4, :4] == 0).all()
    alpha[:4, :4] = opaque
    assert (alpha == opaque).all()
    with PILImage.open(tmp_path / "k.png") as src:
        colour = np.asarray(src.convert("L" if mode == "1" else src.mode))
    np.testing.assert_array_equal(img.pixels[:, :, :-1].reshape(colour.shape), colour)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_alpha_as_bmp(tmp_path, dtype):
    """BMP holds no gray + alpha: written as RGBA (it failed after the work)."""
    g = H.pattern(6, 8, 1)
    a = np.concatenate([g, np.full_like(g, 200)], axis=2).astype(dtype)
    if dtype == np.uint16:
        a *= 257
    write_image(tmp_path / "la.bmp", Image(a))
    data = (tmp_path / "la.bmp").read_bytes()
    assert struct.unpack("<H", data[28:30])[0] == 32  # 32 bits a pixel: B, G, R, A
    with PILImage.open(tmp_path / "la.bmp") as im:
        assert im.size == (8, 6)
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), np.repeat(g, 3, axis=2))


# -- resolution -----------------------------------------------------------------------------


def _dpi(path):
    with PILImage.open(path) as im:
        return im.info.get("dpi")


@pytest.mark.parametrize("src_ext", [".png", ".jpg", ".tif", ".bmp"])
def test_resolution_is_kept(tmp_path, src_ext):
    """300 x 150 dpi in, 300 x 150 dpi out, in every format that holds it."""
    src = tmp_path / f"in{src_ext}"
    PILImage.fromarray(H.pattern(12, 16)).save(src, dpi=(300, 150))
    img = read_image(src)
    assert img.dpi == pytest.approx((300, 150), abs=0.02)
    for ext in (".png", ".jpg", ".tif", ".bmp"):
        write_image(tmp_path / f"out{ext}", img)
        assert _dpi(tmp_path / f"out{ext}") == pytest.approx((300, 150), abs=0.02), ext
    deep = img.with_pixels(img.pixels.astype(np.uint16) * 257)
    write_image(tmp_path / "deep.png", deep)  # pypng: pHYs
    assert _dpi(tmp_path / "deep.png") == pytest.approx((300, 150), abs=0.02)
    write_image(tmp_path / "deep.tif", deep)  # tifffile
    assert read_image(tmp_path / "deep.tif").dpi == pytest.approx((300, 150), abs=0.02)


def test_resolution_is_not_invented_and_turns_with_the_image(tmp_path):
    """No resolution: none read (Pillow says 1 x 1 for such a TIFF and 72 x 72
    for a JPEG with EXIF). A 90° orientation swaps x and y."""
    a = H.pattern(12, 16)
    PILImage.fromarray(a).save(tmp_path / "none.tif")
    PILImage.fromarray(a).save(tmp_path / "none.jpg", exif=H.camera_exif())
    PILImage.fromarray(a).save(tmp_path / "none.png")
    assert [read_image(tmp_path / f"none.{e}").dpi for e in ("tif", "jpg", "png")] == [None] * 3
    exif = PILImage.Exif()
    exif[0x0112] = 6
    PILImage.fromarray(a).save(tmp_path / "turned.png", dpi=(300, 150), exif=exif)
    assert read_image(tmp_path / "turned.png").dpi == pytest.approx((150, 300), abs=0.02)


# -- temporary names --------------------------------------------------------------------------


@pytest.mark.parametrize("anonymous", [True, False], ids=["O_TMPFILE", "named .part"])
def test_replacing_a_file_named_in_4_byte_characters(tmp_path, monkeypatch, anonymous):
    """62 emoji + ".png" is 252 bytes: it fits, and so must the temporary name
    of its replacement (cut to 64 characters, it was 256 bytes)."""
    from scnrestore import files

    if not anonymous:  # other systems: a hidden .NAME.XXXXXXXX.part file
        monkeypatch.setattr(files, "_anonymous_file", lambda directory: None)
    target = tmp_path / ("\U0001f600" * 62 + ".png")
    assert len(os.fsencode(target.name)) == 252
    first = H.pattern(4, 4)
    write_image(target, Image(first))
    write_image(target, Image(255 - first))  # --overwrite
    np.testing.assert_array_equal(read_image(target).pixels, 255 - first)
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


@pytest.mark.parametrize("lossless", [True, False])
def test_webp_stays_lossless_or_lossy_as_it_came(tmp_path, lossless):
    """A lossless WebP (also one with alpha and an ICC profile, stored as VP8X)
    is written back lossless: restoring it must not add WebP artefacts."""
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (24, 32, 4), np.uint8)
    src = tmp_path / "in.webp"
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    PILImage.fromarray(a, "RGBA").save(src, lossless=lossless, quality=90, icc_profile=icc)
    img = read_image(src)
    assert bool(img.info.get("lossless")) is lossless
    out = tmp_path / "out.webp"
    write_image(out, img.with_pixels(a), quality=95)
    back = read_image(out)
    assert bool(back.info.get("lossless")) is lossless
    assert np.array_equal(back.pixels, a) is lossless
