"""Restorer: channel policy (gray, alpha, bit depth) on in-memory images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from scnrestore import Restorer
from scnrestore.checkpoint import CheckpointError
from scnrestore.imageio import Image


@pytest.fixture(scope="module")
def up2(ckpt_dir):
    return Restorer("upscale", ckpt_dir / "x2.safetensors", scale=2, device="cpu", precision="fp32")


def test_gray_in_gray_out(up2, photo):
    gray = photo[:, :, 1:2].copy()
    out = up2.restore_array(gray)
    assert out.shape == (gray.shape[0] * 2, gray.shape[1] * 2, 1) and out.dtype == np.uint8
    rgb = up2.restore_array(np.repeat(gray, 3, axis=2)).astype(np.float64)
    assert np.abs(rgb.mean(axis=2) - out[:, :, 0]).max() <= 1.0


def test_alpha_is_resized_plainly_for_upscale(up2, photo):
    alpha = np.zeros(photo.shape[:2] + (1,), np.uint8)
    alpha[:, photo.shape[1] // 2 :] = 255
    out = up2.restore_array(np.concatenate([photo, alpha], axis=2))
    assert out.shape[2] == 4
    assert np.all(out[:, : photo.shape[1] - 4, 3] == 0)
    assert np.all(out[:, photo.shape[1] + 4 :, 3] == 255)
    np.testing.assert_array_equal(out[:, :, :3], up2.restore_array(photo))


def test_alpha_unchanged_for_denoise(ckpt_dir, photo):
    r = Restorer("denoise", ckpt_dir / "denoise.safetensors", level=25, device="cpu")
    alpha = np.random.default_rng(0).integers(0, 256, photo.shape[:2] + (1,), dtype=np.uint8)
    out = r.restore_array(np.concatenate([photo, alpha], axis=2))
    np.testing.assert_array_equal(out[:, :, 3:], alpha)


def test_16bit_stays_16bit_and_keeps_metadata(up2, photo):
    px = photo.astype(np.uint16) * 257
    img = Image(px, icc_profile=b"icc", exif=b"Exif\x00\x00x", format="PNG")
    out = up2.restore(img)
    assert out.pixels.dtype == np.uint16 and out.icc_profile == b"icc" and out.exif == img.exif
    assert np.any(out.pixels % 257 != 0)


def test_level_checks(ckpt_dir, photo):
    r = Restorer("dejpeg", ckpt_dir / "dejpeg.safetensors", device="cpu")
    with pytest.raises(ValueError, match="needs a level"):
        r.restore_array(photo)
    with pytest.raises(ValueError, match="outside"):
        r.restore_array(photo, level=2)
    assert r.restore_array(photo, level=30).shape == photo.shape


def test_wrong_scale_checkpoint(ckpt_dir):
    with pytest.raises(CheckpointError, match="x3 network"):
        Restorer("upscale", ckpt_dir / "x3.safetensors", scale=2)


def test_import_asks_torch_for_huge_pages_unless_told_otherwise():
    import subprocess
    import sys

    code = "import os, scnrestore; print(os.environ.get('THP_MEM_ALLOC_ENABLE'))"

    def value(env_value):
        env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
        if env_value is not None:
            env["THP_MEM_ALLOC_ENABLE"] = env_value
        return subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()

    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    has_thp = thp.exists() and "[never]" not in thp.read_text()
    assert value(None) == ("1" if has_thp else "None")
    assert value("0") == "0"  # the user's choice stands


def test_readme_api_comments_match_the_shipped_registry():
    """README's Python API block states what d.measured_loss / j.luma_weight /
    j.told return for the shipped models; a retrained model or a new schedule
    must update them (they went stale once: told(10) said 12.0 after 11.5 shipped)."""
    import re

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Python API", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    names = {"Restorer": Restorer}
    for var, expr in re.findall(r"^(\w+) = (Restorer\(\"(?:denoise|dejpeg)\"[^)]*\))", block, re.M):
        names[var] = eval(expr, names)  # e.g. d = Restorer("denoise", level=25)
    calls = re.findall(r"^(\w+\.\w+\([\d.]+\))\s+# ([^:]+):", block, re.M)
    assert len(calls) == 3, calls
    for call, stated in calls:
        assert repr(eval(call, names)) == stated, (call, stated)


def test_auto_level_and_level_info_are_what_the_cli_records(ckpt_dir, photo, tmp_path):
    """The auto level and the level bookkeeping live in the API: the CLI's
    JSON and eval's tables come from these two functions."""
    from PIL import Image as PILImage

    from scnrestore import read_image
    from scnrestore.api import auto_level, level_info

    PILImage.fromarray(photo).save(tmp_path / "q30.jpg", quality=30)
    PILImage.fromarray(photo).save(tmp_path / "p.png")
    assert auto_level("dejpeg", read_image(tmp_path / "q30.jpg")) == 30
    with pytest.raises(ValueError, match=r"not a JPEG file \(PNG\)"):
        auto_level("dejpeg", read_image(tmp_path / "p.png"))
    assert 1 <= auto_level("denoise", read_image(tmp_path / "p.png")) <= 75
    d = Restorer("denoise", ckpt_dir / "denoise.safetensors", device="cpu", keep_input=0.25)
    assert level_info(d, 25) == {"keep_input": 0.25, "told_level": 25}
    assert level_info(Restorer("upscale", ckpt_dir / "x2.safetensors", scale=2), None) == {}
