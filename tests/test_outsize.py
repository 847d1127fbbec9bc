"""Any output size: which trained scales run, the exact size, the names, and
the command line's --outscale / --width / --height / --suffix, on the shipped
models and real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image as PILImage

from scnrestore.imageio import Image
from scnrestore.metrics import psnr_y
from scnrestore.outsize import OutSize, Resized, passes, resize


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "scnrestore", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, env=os.environ.copy(), timeout=300,
    )  # fmt: skip


@pytest.mark.parametrize(
    "factor,expected",
    [(1.5, (2,)), (2, (2,)), (2.01, (3,)), (3.5, (4,)), (4, (4,)), (5, (2, 3)),
     (6, (2, 3)), (8, (2, 4)), (9, (3, 3)), (12, (3, 4)), (16, (4, 4))],
)  # fmt: skip
def test_passes_take_the_trained_scales_at_or_above(factor, expected):
    assert passes(factor) == expected


@pytest.mark.parametrize("factor", [1.0, 0.5, 16.5])
def test_factors_out_of_range_are_refused(factor):
    with pytest.raises(ValueError):
        passes(factor)


def test_targets_and_names():
    assert OutSize(3.5).target(100, 81) == (350, 284) and OutSize(3.5).suffix == "_x3.5"
    assert OutSize(width=1000).target(100, 81) == (1000, 810)
    assert OutSize(height=405).target(100, 81) == (500, 405)
    assert OutSize(None, 300, 200).target(100, 81) == (300, 200)
    assert OutSize(None, 300, 200).factor(100, 81) == pytest.approx(3.0)
    assert [OutSize(None, 1920).suffix, OutSize(None, None, 1080).suffix] == ["_w1920", "_h1080"]
    assert OutSize(None, 64, 48).suffix == "_64x48"
    with pytest.raises(ValueError):
        OutSize(2.0, 100)


def test_resize_is_exact_and_keeps_the_dtype():
    x = (np.arange(20 * 30 * 4).reshape(20, 30, 4) % 65535).astype(np.uint16)
    y = resize(x, 17, 11)
    assert y.shape == (11, 17, 4) and y.dtype == np.uint16
    f = resize(np.full((8, 8, 1), 0.5, np.float32), 5, 3)
    assert f.shape == (3, 5, 1) and np.allclose(f, 0.5, atol=1e-5)


def test_resized_gives_the_exact_size_and_beats_bicubic(photo):
    hr = photo[:70, :98]  # 98 x 70: a multiple of 7, so 3.5 gives whole pixels
    lr = np.asarray(PILImage.fromarray(hr).resize((28, 20), PILImage.Resampling.BICUBIC))
    r = Resized(OutSize(3.5), "off", device="cpu", precision="fp32")
    out = r.run(Image(lr))
    assert out.image.pixels.shape == hr.shape and out.image.pixels.dtype == np.uint8
    assert [str(s) for s in out.steps] == ["x4", "resize 98x70"]
    bicubic = np.asarray(PILImage.fromarray(lr).resize((98, 70), PILImage.Resampling.BICUBIC))
    assert psnr_y(out.image.pixels, hr, 4) > psnr_y(bicubic, hr, 4)


def test_twice_for_8_and_no_upscale_is_an_error(photo):
    r = Resized(OutSize(8), "off", device="cpu", precision="fp32")
    out = r.run(Image(photo[:12, :10], dpi=(72.0, 72.0)))
    assert out.image.pixels.shape == (96, 80, 3) and out.image.dpi == (576.0, 576.0)
    assert [str(s) for s in out.steps] == ["x2", "x4"]
    with pytest.raises(ValueError, match="no upscale"):
        Resized(OutSize(width=10), "off", device="cpu").run(Image(photo[:12, :10]))


def test_cli_outscale_width_height_and_suffix(tmp_path, photo):
    PILImage.fromarray(photo[:20, :30]).save(tmp_path / "a.png")
    r = run("upscale", "a.png", "--outscale", "3.5", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (f,) = json.loads(r.stdout)["files"]
    assert f["output"] == "a_x3.5.png" and f["steps"] == "x4 → resize 105x70"
    r = run("upscale", "a.png", "--width", "50", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run("upscale", "a.png", "--width", "50", "--height", "50", "--suffix", "_big",
            cwd=tmp_path)  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run("denoise", "a.png", "--sigma", "10", "--suffix", ".clean", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    sizes = {}
    for name in ("a_x3.5.png", "a_w50.png", "a_big.png", "a.clean.png"):
        with PILImage.open(tmp_path / name) as im:
            sizes[name] = im.size
    assert sizes == {"a_x3.5.png": (105, 70), "a_w50.png": (50, 33), "a_big.png": (50, 50),
                     "a.clean.png": (30, 20)}  # fmt: skip


@pytest.mark.parametrize(
    "args,message",
    [(["--outscale", "20"], "at most 16"), (["--outscale", "2", "--width", "9"], "not both"),
     (["--outscale", "2", "--model", "scn-x2"], "drop --model")],
)  # fmt: skip
def test_cli_bad_sizes_are_usage_errors(tmp_path, photo, args, message):
    PILImage.fromarray(photo[:20, :30]).save(tmp_path / "a.png")
    r = run("upscale", "a.png", *args, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr, r.stderr
