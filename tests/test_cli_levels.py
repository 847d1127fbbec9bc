"""--sigma auto / --quality auto through the real command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage
from test_cli import run

from scnrestore.training import degrade


def test_dejpeg_auto_reads_quality_from_each_file(tmp_path, ckpt_dir, photo):
    PILImage.fromarray(photo).save(tmp_path / "q17.jpg", quality=17)
    PILImage.fromarray(photo).save(tmp_path / "q60.jpg", quality=60)
    PILImage.fromarray(photo).save(tmp_path / "plain.png")
    r = run("dejpeg", tmp_path, "--model", ckpt_dir / "dejpeg.safetensors", "--json")
    assert r.returncode == 0, r.stderr  # a PNG in the folder is skipped, not an error
    files = {f["input"].rsplit("/", 1)[-1]: f for f in json.loads(r.stdout)["files"]}
    assert files["q17.jpg"]["level"] == 17 and files["q60.jpg"]["level"] == 60
    assert files["plain.png"]["status"] == "skipped"
    assert files["plain.png"]["error"] == "not a JPEG file (PNG)"
    assert "note: skipped a file that is not a JPEG" in r.stderr and "--quality N" in r.stderr
    assert "estimated JPEG quality 17" in r.stderr
    r = run("dejpeg", tmp_path / "plain.png", "--model", ckpt_dir / "dejpeg.safetensors")
    assert r.returncode == 1 and "not a JPEG file (PNG): pass --quality N" in r.stderr


def test_denoise_auto_estimates_sigma(tmp_path, ckpt_dir, photo):
    noisy = degrade.add_gaussian_noise(photo, 30, np.random.default_rng(0))
    PILImage.fromarray(noisy).save(tmp_path / "n.png")
    r = run("denoise", tmp_path / "n.png", "--model", ckpt_dir / "denoise.safetensors", "--json")
    assert r.returncode == 0, r.stderr
    level = json.loads(r.stdout)["files"][0]["level"]
    assert 24 <= level <= 36
    assert "estimated sigma" in r.stderr
    assert "grain" not in r.stderr  # white noise the estimate reads: no hint


def test_denoise_auto_says_how_to_treat_grain_when_it_reads_little_noise(
    tmp_path, ckpt_dir, photo
):
    """A photo whose σ estimate is low (clean, or a camera's grain, which the
    estimate reads low) gets one note saying to tell a level for grain."""
    PILImage.fromarray(photo).save(tmp_path / "clean.png")
    r = run("denoise", tmp_path / "clean.png", "--model", ckpt_dir / "denoise.safetensors")
    assert r.returncode == 0, r.stderr
    (hint,) = [line for line in r.stderr.splitlines() if "grain" in line]
    assert hint.startswith("note: ") and "clean.png" in hint and "--sigma 10" in hint


@pytest.mark.parametrize("quality", [30, 98])  # 96-100: files a camera writes
def test_explicit_level_applies_to_all(tmp_path, ckpt_dir, photo, quality):
    PILImage.fromarray(photo).save(tmp_path / "a.png")
    r = run("dejpeg", tmp_path / "a.png", "--quality", str(quality),
            "--model", ckpt_dir / "dejpeg.safetensors", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["files"][0]["level"] == quality


def _lossy_registry(tmp_path, task, quality):
    """A user registry naming the shipped model with the given validation gains."""
    import hashlib
    from pathlib import Path

    import scnrestore

    name = "scn-denoise" if task == "denoise" else "scn-dejpeg"
    data = (Path(scnrestore.__file__).parent / "models" / f"{name}.safetensors").read_bytes()
    q = ", ".join(f"{k} = {v}" for k, v in quality.items())
    reg = tmp_path / "reg.toml"
    reg.write_text(
        f'[models.lossy]\ntask = "{task}"\nfile = "{name}.safetensors"\nembedded = true\n'
        f'sha256 = "{hashlib.sha256(data).hexdigest()}"\nsize = {len(data)}\nquality = {{ {q} }}\n'
    )
    return {"SCNRESTORE_REGISTRY": str(reg)}


def test_warns_where_validation_says_the_model_makes_images_worse(tmp_path, photo):
    env = _lossy_registry(tmp_path, "denoise", {"gain_2": -2.67, "gain_15": 7.0})
    PILImage.fromarray(photo).save(tmp_path / "a.png")
    r = run("denoise", tmp_path / "a.png", "--sigma", "2", "--model", "lossy",
            "-o", tmp_path / "out", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert ("warning: lossy made validation photos worse at σ 2 (-2.67 dB PSNR); at σ 2 it "
            "may remove detail rather than noise") in r.stderr  # fmt: skip
    assert (tmp_path / "out" / "a.png").is_file()  # a warning, not a refusal
    r = run("denoise", tmp_path / "a.png", "--sigma", "15", "--model", "lossy",
            "-o", tmp_path / "out2", env=env)  # fmt: skip
    assert r.returncode == 0 and "warning" not in r.stderr


def test_warns_per_file_for_estimated_levels(tmp_path, photo):
    env = _lossy_registry(tmp_path, "dejpeg", {"gain_40": 0.6, "gain_80": -0.12})
    PILImage.fromarray(photo).save(tmp_path / "q90.jpg", quality=90)
    PILImage.fromarray(photo).save(tmp_path / "q20.jpg", quality=20)
    r = run("dejpeg", tmp_path / "q90.jpg", tmp_path / "q20.jpg", "--model", "lossy",
            "-o", tmp_path / "out", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert (
        len(warnings) == 1
        and "q90.jpg: lossy made validation photos worse at quality 80" in (warnings[0])
        and "at quality 90 it may remove detail rather than artefacts" in warnings[0]
    )
