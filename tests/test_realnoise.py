"""Real camera noise: the degradation, the blind model's training set-up, and
growing it from the σ-conditioned denoiser."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from scnrestore.model import SCN, SCNConfig, condition_value
from scnrestore.tasks import CAMERA_MODELS
from scnrestore.training import degrade
from scnrestore.training.config import TrainConfig
from scnrestore.training.warmstart import init_from as _init_from

TINY = dict(num_blocks=1, num_residual_units=8, width_multiplier=2, num_scales=2)


def _photo(h=96, w=96, seed=0):
    """A smooth colour picture with some edges (a stand-in for a clean photo)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    r = 128 + 80 * np.sin(x / 11) * np.cos(y / 17)
    g = 100 + 60 * np.cos((x + y) / 13)
    b = np.where(x > w / 2, 200.0, 60.0) + 10 * np.sin(y / 5)
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def _hh(a):
    """Finest diagonal Haar band."""
    a = a.astype(np.float64)
    return (a[0::2, 0::2] - a[0::2, 1::2] - a[1::2, 0::2] + a[1::2, 1::2]) / 2


def test_camera_noise_is_seeded_and_leaves_the_picture():
    img = _photo()
    a = degrade.add_camera_noise(img, np.random.default_rng(3))
    b = degrade.add_camera_noise(img, np.random.default_rng(3))
    c = degrade.add_camera_noise(img, np.random.default_rng(4))
    assert a.dtype == np.uint8 and a.shape == img.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    # Noise, not a new picture: the mean colour barely moves.
    assert np.abs(a.astype(float).mean((0, 1)) - img.astype(float).mean((0, 1))).max() < 6


def test_camera_noise_is_spatially_correlated_unlike_white_noise():
    """After demosaicing (no JPEG, no smoothing) the finest scale holds less of
    the noise than white noise of the same std puts there: the reason a
    finest-scale σ estimator reads real photos as clean."""
    flat = np.full((128, 128, 3), 128, np.uint8)
    p = degrade.CameraNoise(shot=(4e-3, 4e-3), jpeg_share=0.0, blur_share=0.0)
    ratios = []
    for seed in range(4):
        noise = degrade.add_camera_noise(flat, np.random.default_rng(seed), p).astype(float) - 128
        ratios.append(np.abs(_hh(noise)).std() / noise.std())
    white = np.random.default_rng(0).normal(0, 5, (128, 128, 3))
    assert max(ratios) < 0.8 * np.abs(_hh(white)).std() / white.std()


def test_camera_noise_strength_spans_clean_to_high_iso():
    img = _photo()
    rng = np.random.default_rng(0)
    sds = [(degrade.add_camera_noise(img, rng).astype(float) - img).std() for _ in range(60)]
    assert min(sds) < 3 and max(sds) > 8


def _chroma_share(noise):
    """std of the noise's chroma (Cb, Cr) over that of its luma, at 2 px."""
    ycc = (
        noise
        @ np.array([[0.299, 0.587, 0.114], [-0.1687, -0.3313, 0.5], [0.5, -0.4187, -0.0813]]).T
    )
    h, w = ycc.shape[0] // 2 * 2, ycc.shape[1] // 2 * 2
    b = ycc[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    return np.sqrt((b[..., 1].var() + b[..., 2].var()) / 2) / b[..., 0].std()


def test_processed_camera_model_leaves_little_colour_noise_on_coloured_pictures():
    """Cutting colour noise before the tone curve leaves colour noise on
    coloured pixels (the curve's slope differs per channel); the "processed"
    model cuts it after, as a camera's noise reduction does, and smooths it."""
    img = np.zeros((96, 96, 3), np.uint8)
    img[...] = (210, 90, 40)
    shares = {}
    for name in ("brooks", "processed"):
        p = dataclasses.replace(degrade.camera_model(name, (4e-3, 4e-3)), jpeg_share=0.0)
        assert p.shot == (4e-3, 4e-3)
        noise = [
            degrade.add_camera_noise(img, np.random.default_rng(s), p).astype(float) - img
            for s in range(6)
        ]
        shares[name] = np.median([_chroma_share(n) for n in noise])
    assert shares["processed"] < 0.5 * shares["brooks"]
    assert set(CAMERA_MODELS) == set(degrade._CAMERA_MODELS)  # one vocabulary
    with pytest.raises(ValueError, match="camera model must be one of"):
        degrade.camera_model("phone")
    with pytest.raises(ValueError, match="chroma_in"):
        degrade.CameraNoise(chroma_in="lab")


def test_real_noise_config_is_blind_and_denoise_only(tmp_path):
    kw = dict(data=str(tmp_path), out=str(tmp_path / "run"))
    cfg = TrainConfig(task="denoise", noise="real", **kw)
    assert cfg.num_cond_channels == 0
    assert TrainConfig(task="denoise", **kw).num_cond_channels == 1
    with pytest.raises(ValueError, match="noise must be one of"):
        TrainConfig(task="denoise", noise="poisson", **kw)
    with pytest.raises(ValueError, match="denoise only"):
        TrainConfig(task="dejpeg", noise="real", **kw)
    with pytest.raises(ValueError, match="noise_mix"):
        TrainConfig(task="denoise", noise="real", noise_mix=(0.8, 0.5), **kw)
    with pytest.raises(ValueError, match="camera_model must be one of"):
        TrainConfig(task="denoise", noise="real", camera_model="phone", **kw)
    assert cfg.camera == degrade.CameraNoise(shot=cfg.camera_shot)  # brooks: the defaults
    proc = TrainConfig(task="denoise", noise="real", camera_model="processed", **kw).camera
    assert proc.chroma_in == "srgb" and proc.shot == cfg.camera_shot


def test_blind_model_grown_from_a_conditioned_one_computes_its_output_at_the_init_sigma(
    tmp_path,
):
    from safetensors.torch import save_file

    from scnrestore.training import warmstart as train_mod

    torch.manual_seed(0)
    cond = SCN(SCNConfig(scale=1, num_cond_channels=1, **TINY)).eval()
    with torch.no_grad():  # a first conv that reads its level plane
        cond.body[0].weight_v[:, 3].normal_()
    path = tmp_path / "cond.safetensors"
    save_file({k: v.contiguous() for k, v in cond.state_dict().items()}, str(path))
    blind = SCN(SCNConfig(scale=1, num_cond_channels=0, **TINY)).eval()
    _init_from(blind, str(path))
    x = torch.rand(1, 3, 64, 64)
    plane = torch.full((1, 1, 64, 64), condition_value("denoise", train_mod.BLIND_INIT_SIGMA))
    with torch.no_grad():
        want = cond(torch.cat([x, plane], 1))
        got = blind(x)
        other = cond(torch.cat([x, plane * 3], 1))
    inner = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    torch.testing.assert_close(got[inner], want[inner], rtol=1e-4, atol=1e-4)
    assert (other[inner] - want[inner]).abs().max() > 1e-3  # the plane mattered


def test_denoise_auto_with_a_blind_model_reports_the_noise_it_removed(tmp_path):
    """A blind (real-noise) checkpoint runs with no level: --json gives the σ
    of what it removed instead of an estimated σ, and a told --sigma is not
    needed. A real checkpoint: two training steps of the real-noise recipe."""
    import json
    import subprocess
    import sys

    from PIL import Image

    from scnrestore.training.train import train

    data = tmp_path / "data"
    data.mkdir()
    Image.fromarray(_photo(96, 96)).save(data / "a.png")
    cfg = TrainConfig(task="denoise", noise="real", data=str(data), out=str(tmp_path / "run"),
                      steps=2, batch=2, patch=32, device="cpu", precision="fp32", threads=1,
                      **TINY)  # fmt: skip
    train(cfg)
    noisy = degrade.add_gaussian_noise(_photo(64, 80), 10.0, np.random.default_rng(0))
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    r = subprocess.run(
        [sys.executable, "-m", "scnrestore", "denoise", str(tmp_path / "noisy.png"),
         "--model", str(tmp_path / "run" / "model.safetensors"), "-o", str(tmp_path / "out"),
         "--json", "--precision", "fp32"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    (item,) = doc["files"]
    assert "level" not in item and 0 < item["noise_removed"] < 60
    assert "removed noise of σ" in r.stderr
    with Image.open(tmp_path / "out" / "noisy.png") as im:
        assert im.size == (80, 64)


def test_removed_noise_is_the_rms_difference_on_the_0_255_scale():
    from scnrestore.api import removed_noise

    a = np.full((8, 8, 3), 100, np.uint8)
    b = a.copy()
    b[..., 0] += 6  # one channel of three off by 6: RMS sqrt(36 / 3)
    assert removed_noise(a, b) == pytest.approx(np.sqrt(12))
    assert removed_noise(a.astype(np.uint16) * 257, b.astype(np.uint16) * 257) == pytest.approx(
        np.sqrt(12)
    )
    rgba = np.dstack([a, np.zeros((8, 8, 1), np.uint8)])
    rgba2 = np.dstack([a, np.full((8, 8, 1), 255, np.uint8)])
    assert removed_noise(rgba, rgba2) == 0.0  # alpha is not noise


def _blind_registry(tmp_path, ckpt_dir):
    """A user registry shipping a tiny blind denoiser as scn-denoise-real."""
    import hashlib
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import make_checkpoint

    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    path = make_checkpoint(cache / "blind.safetensors", scale=1, num_cond_channels=0, seed=3)
    data = path.read_bytes()
    reg = tmp_path / "reg.toml"
    reg.write_text(
        '[models.scn-denoise-real]\ntask = "denoise"\nfile = "blind.safetensors"\n'
        f'sha256 = "{hashlib.sha256(data).hexdigest()}"\nsize = {len(data)}\n'
        "num_blocks = 2\nnum_residual_units = 8\nwidth_multiplier = 2.0\nnum_scales = 3\n"
        'num_cond_channels = 0\nnoise = "real"\n'
    )
    return {"SCNRESTORE_REGISTRY": str(reg), "SCNRESTORE_CACHE_DIR": str(cache)}


def _cli(*args, env):
    import os
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "scnrestore", *map(str, args)],
                          capture_output=True, text=True, env={**os.environ, **env},
                          timeout=300)  # fmt: skip


def test_denoise_without_sigma_runs_the_shipped_blind_model_and_sigma_the_gaussian_one(
    tmp_path, ckpt_dir
):
    import json

    from PIL import Image

    env = _blind_registry(tmp_path, ckpt_dir)
    Image.fromarray(_photo(64, 64)).save(tmp_path / "a.png")
    r = _cli("denoise", tmp_path / "a.png", "-o", tmp_path / "auto", "--json", env=env)
    assert r.returncode == 0, r.stderr
    (item,) = json.loads(r.stdout)["files"]
    assert "noise_removed" in item and "level" not in item
    r = _cli("denoise", tmp_path / "a.png", "--sigma", "10", "-o", tmp_path / "told", "--json",
             env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    (item,) = json.loads(r.stdout)["files"]
    assert item["level"] == 10 and "noise_removed" not in item


def test_upscale_denoise_auto_takes_the_blind_model_as_its_denoise_step(
    tmp_path, ckpt_dir, monkeypatch
):
    from scnrestore.chain import Chain

    for key, value in _blind_registry(tmp_path, ckpt_dir).items():
        monkeypatch.setenv(key, value)
    chain = Chain(scale=2, jpeg="off", denoise="auto", precision="fp32")
    steps = chain.plan_for(None)
    assert [str(s) for s in steps][:1] == ["denoise real"]
    assert steps[0].model == "scn-denoise-real"
    assert chain.restore_array(_photo(32, 32)).shape == (64, 64, 3)
