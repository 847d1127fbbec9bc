"""scnrestore compare: a labelled side-by-side picture, panels at one size,
PSNR / SSIM against a reference; bad input is one line naming the file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from scnrestore.compare import Panel, parse_crop, side_by_side, to_rgb8
from scnrestore.metrics import psnr

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "scnrestore", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, env=os.environ.copy(), timeout=120,
    )  # fmt: skip


def test_panels_share_one_size_crop_and_zoom(photo):
    small = photo[::4, ::4]  # 24 x 32: scaled up to the reference's 96 x 128
    sheet = side_by_side([Panel(small, "lr"), Panel(photo, "hr")], photo, (40, 30), zoom=2)
    assert sheet.height > 60 and sheet.width == 2 * 80 + 3 * 4
    a = np.asarray(sheet)
    assert a[-4 - 60 :, 4:84].std() > 0  # the first panel holds pixels, not background


def test_scores_are_those_of_the_scaled_images(photo):
    noisy = np.clip(photo.astype(int) + 8, 0, 255).astype(np.uint8)
    sheet = side_by_side([Panel(noisy, "n")], photo)
    assert sheet.width == 128 + 8
    assert psnr(noisy, photo) == pytest.approx(30.0, abs=1.0)


def test_helpers():
    assert parse_crop("256") == (256, 256) and parse_crop("320x200") == (320, 200)
    with pytest.raises(ValueError):
        parse_crop("big")
    gray16 = np.full((2, 2, 2), 65535, np.uint16)  # gray + opaque alpha
    assert to_rgb8(gray16).tolist() == np.full((2, 2, 3), 255).tolist()


def test_cli_compare_on_the_examples(tmp_path):
    src = EXAMPLES / "coffee.png"
    with PILImage.open(src) as im:
        lr = im.convert("RGB").resize((64, 42), PILImage.Resampling.BICUBIC)
    lr.save(tmp_path / "lr.png")
    r = run("compare", tmp_path / "lr.png", src, "--reference", src, "--crop", "100x80",
            "-o", tmp_path / "cmp.png", "-l", "input", "-l", "original")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "2 panels" in r.stderr  # the reference is one of the images: not shown twice
    with PILImage.open(tmp_path / "cmp.png") as im:
        assert im.width == 2 * 100 + 3 * 4


def test_cli_bad_input_is_one_line_and_exit_1(tmp_path):
    (tmp_path / "bad.png").write_text("not a picture")
    r = run("compare", tmp_path / "bad.png", EXAMPLES / "chelsea.png", "-o", tmp_path / "c.png")
    assert r.returncode == 1 and not (tmp_path / "c.png").exists()
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith(f"error: {tmp_path / 'bad.png'}: ")
    r = run("compare", EXAMPLES / "chelsea.png", "-o", tmp_path / "c.gif")
    assert r.returncode == 2
