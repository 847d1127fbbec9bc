"""JPEG-aware upscaling and chained restoration (scnrestore.chain), with
real JPEG files, real (tiny) checkpoints and a few real training steps."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_checkpoint
from PIL import Image as PILImage

from scnrestore.api import Restorer
from scnrestore.chain import Chain, Step, describe, jpeg_quality_of, parse_denoise, parse_jpeg
from scnrestore.imageio import read_image
from scnrestore.model import condition_value
from scnrestore.training import degrade
from scnrestore.training.config import TrainConfig
from scnrestore.training.sampler import PatchSampler
from scnrestore.training.train import train
from scnrestore.training.warmstart import init_from as _init_from

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(num_blocks=1, num_residual_units=8, width_multiplier=2, num_scales=2)


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    d = tmp_path_factory.mktemp("nets")
    return {
        "x2": make_checkpoint(d / "x2.safetensors", scale=2),
        "x2jpeg": make_checkpoint(d / "x2jpeg.safetensors", scale=2, num_cond_channels=1, seed=3),
        "dejpeg": make_checkpoint(d / "dejpeg.safetensors", scale=1, num_cond_channels=1, seed=1),
        "denoise": make_checkpoint(d / "denoise.safetensors", scale=1, num_cond_channels=1),
    }


@pytest.fixture(scope="module")
def files(tmp_path_factory, photo):
    d = tmp_path_factory.mktemp("files")
    PILImage.fromarray(photo).save(d / "p.jpg", quality=74)
    PILImage.fromarray(photo).save(d / "p.png")
    return d


def test_condition_plane_says_how_hard_the_jpeg_was():
    assert condition_value("upscale", None) == 0.0 == condition_value("upscale", 100)
    assert condition_value("upscale", 75) == pytest.approx(0.25)
    assert condition_value("dejpeg", 75) == pytest.approx(0.75)


def test_a_real_jpeg_takes_the_joint_path_and_a_png_the_plain_one(files, nets):
    chain = Chain(scale=2, model=str(nets["x2jpeg"]), precision="fp32")
    jpg, png = read_image(files / "p.jpg"), read_image(files / "p.png")
    assert jpeg_quality_of(jpg) == (74.0, None) and jpeg_quality_of(png) == (None, None)
    r = chain.run(jpg)
    assert [str(s) for s in r.steps] == ["x2 jpeg q74"] and r.image.pixels.shape == (192, 256, 3)
    # the joint path is the JPEG-aware network told the file's quality
    told = Restorer("upscale", nets["x2jpeg"], scale=2, precision="fp32")
    assert np.array_equal(r.image.pixels, told.restore_array(jpg.pixels, 74))
    assert not np.array_equal(r.image.pixels, told.restore_array(jpg.pixels, None))
    assert describe(chain.run(png).steps) == "x2"


def test_jpeg_off_and_a_plain_upscaler_never_take_the_jpeg_path(files, nets):
    jpg = read_image(files / "p.jpg")
    plain = Restorer("upscale", nets["x2"], scale=2, precision="fp32").restore_array(jpg.pixels)
    off = Chain(scale=2, jpeg="off", model=str(nets["x2"]), precision="fp32").run(jpg)
    assert describe(off.steps) == "x2" and np.array_equal(off.image.pixels, plain)


def test_a_plain_upscaler_on_a_jpeg_is_chained_after_dejpeg_in_memory(files, nets, monkeypatch):
    """The chain's output equals running the steps one after another in
    memory, in float, rounded once at the end (within one level)."""
    from scnrestore import weights

    monkeypatch.setattr(weights, "default_model", lambda task, scale=1: str(nets[task]))
    jpg = read_image(files / "p.jpg")
    chain = Chain(scale=2, model=str(nets["x2"]), denoise=5, precision="fp32")
    r = chain.run(jpg)
    assert describe(r.steps) == "dejpeg q74 → denoise σ5 → x2"
    f = jpg.pixels.astype(np.float32) / 255
    for task, level, net in (
        ("dejpeg", 74, "dejpeg"),
        ("denoise", 5, "denoise"),
        ("upscale", None, "x2"),
    ):
        f = Restorer(task, nets[net], scale=2, precision="fp32").restore_array(f, level)
    expect = np.clip(np.rint(f * 255), 0, 255).astype(np.uint8)
    assert r.image.pixels.dtype == np.uint8
    assert np.abs(r.image.pixels.astype(int) - expect).max() <= 1
    # and it is not what two commands give (8-bit rounding between the steps)
    j8 = Restorer("dejpeg", nets["dejpeg"], precision="fp32").restore_array(jpg.pixels, 74)
    d8 = Restorer("denoise", nets["denoise"], precision="fp32").restore_array(j8, 5)
    two = Restorer("upscale", nets["x2"], scale=2, precision="fp32").restore_array(d8)
    assert not np.array_equal(two, r.image.pixels)


def test_a_jpeg_without_readable_tables_is_restored_as_clean_with_a_note(files, nets):
    img = read_image(files / "p.jpg")
    img.info.pop("quantization", None)
    r = Chain(scale=2, model=str(nets["x2jpeg"]), precision="fp32").run(img)
    assert describe(r.steps) == "x2" and "restored as a clean image" in r.notes[0]


@pytest.mark.parametrize(
    "fn, value, message",
    [(parse_jpeg, "4", "between 5 and 100"), (parse_jpeg, "101", "between 5 and 100"),
     (parse_jpeg, "high", "auto, off or a quality"), (parse_denoise, "0.5", "between 1 and 75"),
     (parse_denoise, "80", "between 1 and 75"), (parse_denoise, "x", "off, auto or a sigma")],
)  # fmt: skip
def test_bad_levels_are_refused(fn, value, message):
    with pytest.raises(ValueError, match=message):
        fn(value)
    assert parse_jpeg("off") is None and parse_jpeg("AUTO") == "auto" and parse_jpeg("90") == 90
    assert parse_denoise("off") is None and parse_denoise("12") == 12


def test_step_names():
    steps = [Step("dejpeg", 30), Step("denoise", 8.5), Step("upscale", None, 4)]
    assert describe(steps) == "dejpeg q30 → denoise σ8.5 → x4"
    assert str(Step("upscale", 74, 2)) == "x2 jpeg q74" and Step("upscale", 74, 2).joint


# -- training and evaluation ---------------------------------------------------


def _cfg(data_dir, out, **kw):
    base = dict(task="upscale", scale=2, data=str(data_dir), out=str(out), steps=6, batch=4,
                patch=32, lr=2e-3, ckpt_every=3, log_every=3, device="cpu", precision="fp32",
                jpeg_range=(30, 100), **TINY)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    with PILImage.open(ROOT / "examples" / "coffee.png") as im:
        im.convert("RGB").crop((0, 0, 192, 160)).save(d / "coffee.png")
    return d


def test_jpeg_range_draws_jpeg_patches_on_the_mcu_grid_and_some_clean(data_dir, tmp_path):
    cfg = _cfg(data_dir, tmp_path, batch=64, jpeg_clean=0.25)
    assert cfg.num_cond_channels == 1
    img = np.asarray(PILImage.open(data_dir / "coffee.png"))
    sampler = PatchSampler(cfg, [img], np.random.default_rng(0))
    rng_state = sampler.rng.bit_generator.state
    xb, yb, lv = sampler.batch()
    assert xb.shape == (64, 32, 32, 3) and yb.shape == (64, 64, 64, 3)
    clean = lv == 0
    assert 0.1 < clean.mean() < 0.45 and ((lv[~clean] >= 30) & (lv[~clean] <= 100)).all()
    # replay the draws: clean patches are the bicubic LR itself, the others its JPEG
    sampler.rng.bit_generator.state = rng_state
    for i in range(64):
        x, y = sampler.patch_pair()
        level = sampler.level()
        k = int(sampler.rng.integers(8))
        lr_img = sampler.lr[0]
        on_grid = [
            (top, left)
            for top in range(0, lr_img.shape[0] - 31, 16)
            for left in range(0, lr_img.shape[1] - 31, 16)
            if np.array_equal(lr_img[top : top + 32, left : left + 32], x)
        ]
        assert on_grid and np.shares_memory(x, lr_img), "patch not on the 16-px grid"
        want = x if level == 0 else degrade.jpeg_roundtrip(np.ascontiguousarray(x), int(level))
        assert np.array_equal(xb[i], degrade.dihedral(want, k)) and level == lv[i]


@pytest.mark.parametrize(
    "kw, message",
    [(dict(task="denoise"), "upscale only"), (dict(jpeg_range=(4, 90)), "5..100"),
     (dict(jpeg_range=(90, 80)), "5..100"), (dict(jpeg_clean=1.0), "jpeg_clean")],
)  # fmt: skip
def test_jpeg_range_is_checked(data_dir, tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        _cfg(data_dir, tmp_path, **kw)


def test_a_jpeg_aware_run_grows_from_a_plain_upscaler_and_trains(data_dir, tmp_path, nets):
    """--init from a plain x2: the extra input plane starts at zero, so the
    new network computes what the old one did; then it trains and records."""
    import torch

    from scnrestore.model import SCN, SCNConfig

    arch = dict(scale=2, num_blocks=2, num_residual_units=8, width_multiplier=2, num_scales=3)
    plain, grown = SCN(SCNConfig(**arch)), SCN(SCNConfig(**arch, num_cond_channels=1))
    _init_from(plain, str(nets["x2"]))
    _init_from(grown, str(nets["x2"]))
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        y = grown.eval()(torch.cat([x, torch.full_like(x[:, :1], 0.4)], 1))
        assert torch.allclose(y, plain.eval()(x), atol=1e-5)
    out = tmp_path / "run"
    last = train(_cfg(data_dir, out, val=str(data_dir), val_every=6))
    assert last["step"] == 6 and np.isfinite(last["loss"]) and np.isfinite(last["val_psnr"])
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["jpeg_range"] == [30, 100] and run["model"]["num_cond_channels"] == 1


def test_eval_with_jpeg_degrades_the_low_resolution_input(photo):
    rng = np.random.default_rng(0)
    lr, base = degrade.make_input("upscale", photo, 2, None, rng, jpeg=50)
    clean_lr, _ = degrade.make_input("upscale", photo, 2, None, rng)
    buf = io.BytesIO()
    PILImage.fromarray(clean_lr).save(buf, "JPEG", quality=50)
    assert np.array_equal(lr, np.asarray(PILImage.open(buf)))
    assert np.array_equal(base, degrade.bicubic_upscale(lr, 2))
    with pytest.raises(ValueError, match="upscale only"):
        degrade.make_input("denoise", photo, 1, 15, rng, jpeg=50)


# -- the command line ------------------------------------------------------------


def _cli(*args, cwd=None):
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "scnrestore", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=300)


def test_upscale_cli_takes_the_jpeg_path_for_a_jpeg_and_not_with_jpeg_off(files, nets, tmp_path):
    import shutil

    shutil.copy(files / "p.png", tmp_path / "q.png")
    args = ["upscale", files / "p.jpg", tmp_path / "q.png", "-s", "2", "--model", nets["x2jpeg"],
            "--precision", "fp32", "--json"]  # fmt: skip
    r = _cli(*args, "-o", tmp_path / "a")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    steps = {Path(f["input"]).name: f["steps"] for f in doc["files"]}
    assert steps == {"p.jpg": "x2 jpeg q74", "q.png": "x2"}
    assert "x2 jpeg q74 (1), x2 (1)" in r.stderr  # the summary names the steps
    # the file equals the library's joint path
    out = read_image(tmp_path / "a" / "p.png").pixels
    chain = Chain(scale=2, model=str(nets["x2jpeg"]), precision="fp32")
    assert np.array_equal(out, chain.run(read_image(files / "p.jpg")).image.pixels)
    r = _cli(*args, "-o", tmp_path / "b", "--jpeg", "off")
    assert r.returncode == 0, r.stderr
    assert [f["steps"] for f in json.loads(r.stdout)["files"]] == ["x2", "x2"]
    assert "x2 (2)" not in r.stderr  # plain upscales: the summary names no steps
    r = _cli(*args[:2], "-s", "2", "--model", nets["x2"], "--precision", "fp32", "--json",
             "--denoise", "3", "-o", tmp_path / "c")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["files"][0]["steps"] == "dejpeg q74 → denoise σ3 → x2"


@pytest.mark.parametrize(
    "flag, value, msg",
    [("--jpeg", "101", "--jpeg quality must be between 5 and 100"),
     ("--jpeg", "4", "--jpeg quality must be between 5 and 100"),
     ("--jpeg", "best", "--jpeg must be auto, off or a quality"),
     ("--denoise", "80", "--denoise sigma must be between 1 and 75"),
     ("--denoise", "much", "--denoise must be off, auto or a sigma")],
)  # fmt: skip
def test_upscale_cli_refuses_bad_steps_before_any_model_loads(files, tmp_path, flag, value, msg):
    # the model named does not exist: the step options are checked before it
    r = _cli("upscale", files / "p.jpg", "-s", "2", "--model", tmp_path / "none.pt", flag, value,
             "-o", tmp_path / "out")  # fmt: skip
    assert r.returncode == 2 and msg in " ".join(r.stderr.split()), r.stderr
    assert not (tmp_path / "out").exists()


def test_eval_cli_scores_jpeg_inputs_and_train_cli_records_the_jpeg_range(data_dir, nets, tmp_path):
    r = _cli("eval", data_dir, "--task", "upscale", "-s", "2", "--model", nets["x2jpeg"],
             "--precision", "fp32", "--jpeg", "60,90", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["results"]
    assert [(x["jpeg"], x["steps"]) for x in res] == [(60, "x2 jpeg q60"), (90, "x2 jpeg q90")]
    # scored against bicubic of the decoded JPEG, which is worse at q60 than at q90
    assert res[0]["mean"]["base_psnr_y"] < res[1]["mean"]["base_psnr_y"]
    assert _cli("eval", data_dir, "--task", "denoise", "--jpeg", "60").returncode == 2
    assert _cli("eval", data_dir, "--task", "upscale", "--jpeg", "60.5").returncode == 2
    out = tmp_path / "run"
    r = _cli("train", "upscale", "-s", "2", "--data", data_dir, "--out", out, "--steps", "2",
             "--batch", "2", "--patch", "32", "--blocks", "1", "--units", "8", "--width", "2",
             "--num-scales", "2", "--device", "cpu", "--precision", "fp32", "--jpeg-range",
             "40,95", "--jpeg-clean", "0.5", "-q")  # fmt: skip
    assert r.returncode == 0, r.stderr
    cfg = json.loads((out / "run.json").read_text())["config"]
    assert cfg["jpeg_range"] == [40, 95] and cfg["jpeg_clean"] == 0.5
    bad = _cli("train", "upscale", "--data", data_dir, "--out", tmp_path / "bad",
               "--jpeg-range", "30")  # fmt: skip
    assert bad.returncode == 2 and "--jpeg-range must be two whole qualities" in bad.stderr


def test_the_shipped_chain_runs_the_joint_model_only_where_it_was_measured_better(photo):
    """Each JPEG-aware model's joint_range: one pass for a JPEG inside it,
    dejpeg then the plain upscaler below it (and above it, up to the entry's
    plain_from), the plain one alone for a clean input and from plain_from
    up; x3 has no joint model."""
    from scnrestore import weights

    registry = weights.load_registry()
    for scale in (2, 4):
        entry = registry[f"scn-x{scale}-jpeg"]
        (lo, hi), plain_from = entry.joint_range, entry.plain_from
        chain = Chain(scale=scale, precision="fp32")
        assert describe(chain.plan_for(lo)) == f"x{scale} jpeg q{lo:g}"
        assert describe(chain.plan_for(lo - 5)) == f"dejpeg q{lo - 5:g} → x{scale}"
        assert describe(chain.plan_for(hi)) == f"x{scale} jpeg q{hi:g}"
        if hi < 100 and (plain_from is None or hi + 1 < plain_from):
            assert describe(chain.plan_for(hi + 1)) == f"dejpeg q{hi + 1:g} → x{scale}"
        if plain_from is not None:
            assert describe(chain.plan_for(plain_from)) == f"x{scale}"
            assert describe(chain.plan_for(100)) == f"x{scale}"
            # with --denoise the JPEG-aware rules do not apply: the steps run one by one
            steps = Chain(scale=scale, denoise=5, precision="fp32").plan_for(100)
            assert [s.task for s in steps] == ["dejpeg", "denoise", "upscale"]
        assert describe(chain.plan_for(None)) == f"x{scale}"
    assert registry["scn-x2-jpeg"].plain_from is not None  # near-lossless x2 JPEGs: one pass
    assert "scn-x3-jpeg" not in registry
    assert describe(Chain(scale=3, precision="fp32").plan_for(75)) == "dejpeg q75 → x3"
    chain = Chain(scale=2, precision="fp32")
    # and the joint pass is the JPEG-aware network told the quality
    small = photo[:48, :64]
    out = chain.restore_array(small, 75)
    told = Restorer("upscale", "scn-x2-jpeg", scale=2, precision="fp32").restore_array(small, 75)
    assert np.array_equal(out, told)


def test_chained_is_plain_only_for_one_plain_upscale():
    from scnrestore.chain import Chained, Step

    def plain(*steps: Step) -> bool:
        return Chained(None, list(steps), []).plain  # type: ignore[arg-type]

    assert plain(Step("upscale", None, 2))
    assert not plain(Step("upscale", 74, 2))  # JPEG-aware: one pass, but not plain
    assert not plain(Step("dejpeg", 74), Step("upscale", None, 2))
    assert not plain(Step("denoise", 3), Step("upscale", None, 4))
