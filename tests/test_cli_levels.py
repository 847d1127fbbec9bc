"""--sigma auto / --quality auto through the real command line."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image as PILImage
from test_cli import run

from scnrestore import degrade


def test_dejpeg_auto_reads_quality_from_each_file(tmp_path, ckpt_dir, photo):
    PILImage.fromarray(photo).save(tmp_path / "q17.jpg", quality=17)
    PILImage.fromarray(photo).save(tmp_path / "q60.jpg", quality=60)
    PILImage.fromarray(photo).save(tmp_path / "plain.png")
    r = run("dejpeg", tmp_path, "--model", ckpt_dir / "dejpeg.safetensors", "--json")
    assert r.returncode == 1
    files = {f["input"].rsplit("/", 1)[-1]: f for f in json.loads(r.stdout)["files"]}
    assert files["q17.jpg"]["level"] == 17 and files["q60.jpg"]["level"] == 60
    assert files["plain.png"]["status"] == "failed"
    assert "not a JPEG file" in files["plain.png"]["error"] and "--quality" in r.stderr
    assert "estimated JPEG quality 17" in r.stderr


def test_denoise_auto_estimates_sigma(tmp_path, ckpt_dir, photo):
    noisy = degrade.add_gaussian_noise(photo, 30, np.random.default_rng(0))
    PILImage.fromarray(noisy).save(tmp_path / "n.png")
    r = run("denoise", tmp_path / "n.png", "--model", ckpt_dir / "denoise.safetensors", "--json")
    assert r.returncode == 0, r.stderr
    level = json.loads(r.stdout)["files"][0]["level"]
    assert 24 <= level <= 36
    assert "estimated sigma" in r.stderr


def test_explicit_level_applies_to_all(tmp_path, ckpt_dir, photo):
    PILImage.fromarray(photo).save(tmp_path / "a.png")
    r = run("dejpeg", tmp_path / "a.png", "--quality", "30",
            "--model", ckpt_dir / "dejpeg.safetensors", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["files"][0]["level"] == 30
