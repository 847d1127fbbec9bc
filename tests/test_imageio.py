"""Image files: bit depth, orientation, ICC/EXIF, modes, atomic writes."""

from __future__ import annotations

import io

import numpy as np
import png
import pytest
import tifffile
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

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
