"""Training (a few real steps), resume, evaluation and level estimation."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from scnrestore.estimate import estimate_jpeg_quality, estimate_sigma
from scnrestore.training import degrade
from scnrestore.training.config import TrainConfig, load_run_config
from scnrestore.training.train import train

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(num_blocks=1, num_residual_units=8, width_multiplier=2, num_scales=2)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    for name in ("coffee.png", "chelsea.png"):
        with PILImage.open(ROOT / "examples" / name) as im:
            im.convert("RGB").crop((0, 0, 192, 144)).save(d / name)
    return d


def _cfg(data_dir, out, **kw):
    base = dict(task="upscale", scale=2, data=str(data_dir), val=str(data_dir), out=str(out),
                steps=40, batch=4, patch=24, lr=2e-3, val_every=40, ckpt_every=10, log_every=5,
                device="cpu", precision="fp32", **TINY)  # fmt: skip
    base.update(kw)
    return TrainConfig(**base)


def test_train_loss_decreases_and_resume_continues(data_dir, tmp_path):
    records = []
    cfg = _cfg(data_dir, tmp_path / "run", steps=40)
    last = train(cfg, progress=records.append)
    assert last["step"] == 40
    losses = [r["loss"] for r in records]
    assert np.mean(losses[-2:]) < np.mean(losses[:2])
    assert "val_psnr" in records[-1] and np.isfinite(records[-1]["val_psnr"])
    run = tmp_path / "run"
    assert {"last.pt", "model.safetensors", "log.jsonl", "run.json"} <= {
        p.name for p in run.iterdir()
    }
    # What "auto" became on this machine is recorded beside the settings.
    import torch

    from scnrestore.runtime import resolve_device, resolve_precision

    resolved = json.loads((run / "run.json").read_text())["resolved"]
    device = resolve_device(cfg.device)
    assert resolved == {
        "device": str(device),
        "precision": resolve_precision(cfg.precision, device),
        "torch": torch.__version__,
    }
    # Resume with more steps: the step count continues from 40.
    more = []
    last = train(_cfg(data_dir, run, steps=50), resume=True, progress=more.append)
    assert last["step"] == 50 and more[0]["step"] == 45
    logged = [json.loads(ln)["step"] for ln in (run / "log.jsonl").read_text().splitlines()]
    assert logged[-1] == 50 and logged.count(40) == 1


def test_interrupted_and_resumed_run_matches_an_unbroken_one(data_dir, tmp_path):
    """Batches are drawn on a background thread; the checkpoint must still
    record the RNG state of the next batch the loop uses, not of the batches
    drawn ahead, or a resumed run would train on different data."""
    kw = dict(val=None, steps=16, lr_milestones=(), ckpt_every=100)  # same lr either way
    _whole_and_resumed_runs_match(data_dir, tmp_path, kw, stop_at=7)


def _whole_and_resumed_runs_match(data_dir, tmp_path, kw, stop_at):
    """Train ``kw`` unbroken in tmp_path/whole, and stopped at ``stop_at`` then
    resumed in tmp_path/split; assert both wrote the same model.safetensors."""
    import torch
    from safetensors.torch import load_file

    train(_cfg(data_dir, tmp_path / "whole", **kw))
    train(_cfg(data_dir, tmp_path / "split", **(kw | {"steps": stop_at})))
    train(_cfg(data_dir, tmp_path / "split", **kw), resume=True)
    a = load_file(tmp_path / "whole" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_time_budget_fixes_the_step_total_and_records_it(data_dir, tmp_path):
    import time

    cfg = _cfg(data_dir, tmp_path / "run", val=None, steps=10**7, time_budget=6.0,
               ckpt_every=10**6, log_every=10)  # fmt: skip
    t0 = time.time()
    last = train(cfg)
    elapsed = time.time() - t0
    recorded = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    # The measured pace set a finite total; the run reached it, near the
    # budget (the pace of a shared machine varies), with the decay schedule.
    assert recorded["time_budget"] == 0.0
    assert 10 < recorded["steps"] < 10**7
    assert last["step"] == recorded["steps"] and not last.get("stopped")
    assert elapsed < 6.0 * 2 + 10
    lrs = [json.loads(ln)["lr"] for ln in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert lrs[0] == pytest.approx(2e-3) and lrs[-1] < 2e-3 * 0.3**2


def test_budgeted_run_stopped_before_its_total_is_fixed_resumes_within_budget(data_dir, tmp_path):
    """Ctrl-C while a time budget is still measuring the pace must leave a run
    that --resume can finish: the unspent seconds are recorded, not a total
    equal to the step it stopped at (which made the resume a no-op)."""
    import os
    import signal
    import time

    run = tmp_path / "run"
    budget = 8.0
    # A record every step: the first estimate of the total is logged in the
    # step that made it, so the interrupt lands before the next revision can
    # freeze the total, however slow the machine (a slow pace estimates a
    # small total that freezes at the very next revision).
    cfg = _cfg(data_dir, run, val=None, steps=10**7, time_budget=budget,
               ckpt_every=10**6, log_every=1)  # fmt: skip
    t0 = time.time()

    def interrupt_once_estimated(record):
        if record["steps"] < 10**7 and not getattr(interrupt_once_estimated, "sent", False):
            interrupt_once_estimated.sent = True
            os.kill(os.getpid(), signal.SIGINT)  # the trainer's own handler catches it

    first = train(cfg, progress=interrupt_once_estimated)
    spent = time.time() - t0
    assert first["stopped"] and interrupt_once_estimated.sent
    recorded = json.loads((run / "run.json").read_text())["config"]
    assert recorded["steps"] == 10**7  # the cap, re-fitted on resume
    assert 0 < recorded["time_budget"] <= max(1.0, budget - spent) + 1.0
    resumed = train(load_run_config(run), resume=True)
    assert not resumed.get("stopped") and resumed["step"] > first["step"]
    recorded = json.loads((run / "run.json").read_text())["config"]
    assert recorded["time_budget"] == 0.0 and resumed["step"] == recorded["steps"] < 10**7
    lrs = [json.loads(ln)["lr"] for ln in (run / "log.jsonl").read_text().splitlines()]
    assert lrs[-1] < 2e-3 * 0.3**2  # the decay schedule ran to its end


def test_budgeted_run_that_reaches_its_estimate_before_the_freeze_is_finished(data_dir, tmp_path):
    """A machine that stalls while the pace is measured estimates a total only
    a step away, and reaches it before the next revision could freeze it. That
    run is finished: run.json must say so, not record the unspent budget and
    the 10^7 cap as if Ctrl-C had stopped it (which made --resume train on)."""
    import time

    run = tmp_path / "run"
    cfg = _cfg(data_dir, run, val=None, steps=10**7, time_budget=6.0,
               ckpt_every=10**6, log_every=1)  # fmt: skip

    def stall_past_the_budget(record):
        if record["step"] == 10:  # the step the pace is measured from
            time.sleep(6.5)

    last = train(cfg, progress=stall_past_the_budget)
    recorded = json.loads((run / "run.json").read_text())["config"]
    assert not last["stopped"]
    assert recorded["time_budget"] == 0.0
    assert last["step"] == recorded["steps"] == 12
    resumed = train(load_run_config(run), resume=True)
    assert resumed["step"] == 12  # nothing left to do


def test_milestones_passed_before_a_late_estimate_all_still_decay(data_dir, tmp_path):
    """On a busy machine a time budget's first estimate can come after 0.5 and
    0.75 of the total it finds; those decays must move forward, not merge."""
    from collections import Counter

    import torch

    from scnrestore.training.train import _milestones

    cfg = _cfg(data_dir, tmp_path, steps=12, lr_milestones=(0.5, 0.75, 0.9), lr_gamma=0.3)
    assert _milestones(cfg) == [6, 9, 10]
    assert _milestones(cfg, after=11) == [12, 12, 12]
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [10**6], 0.3)
    for _ in range(11):
        opt.step()
        sched.step()
    sched.milestones = Counter(_milestones(cfg, after=11))
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.3**3)


def test_resume_without_checkpoint_fails(data_dir, tmp_path):
    with pytest.raises(FileNotFoundError):
        train(_cfg(data_dir, tmp_path / "none"), resume=True)


@pytest.mark.parametrize("task", ["denoise", "dejpeg"])
def test_conditioned_training_runs(data_dir, tmp_path, task):
    last = train(_cfg(data_dir, tmp_path / task, task=task, steps=6, patch=32, val_every=6))
    assert last["step"] == 6 and np.isfinite(last["val_psnr"])


def test_cli_train_then_eval(data_dir, tmp_path):
    out = tmp_path / "cli_run"
    args = ["train", "upscale", "-s", "2", "--data", data_dir, "--out", out, "--steps", "4",
            "--batch", "2", "--patch", "24", "--blocks", "1", "--units", "8", "--width", "2",
            "--num-scales", "2", "--device", "cpu", "--precision", "fp32",
            "--log-every", "2"]  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "scnrestore", *map(str, args)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "step 4/4" in r.stderr
    recorded = json.loads((out / "run.json").read_text())["config"]["command"]
    assert recorded[:3] == ["scnrestore", "train", "upscale"]
    r = subprocess.run(
        [sys.executable, "-m", "scnrestore", "train", "upscale", "--out", str(out), "--resume",
         "--steps", "6", "-q"], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "log.jsonl").read_text().splitlines()[-1])["step"] == 6
    # --resume without --steps keeps the recorded total (6), it does not reset it.
    r = subprocess.run(
        [sys.executable, "-m", "scnrestore", "train", "upscale", "--out", str(out),
         "--resume", "-q"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "run.json").read_text())["config"]["steps"] == 6
    r = subprocess.run(
        [sys.executable, "-m", "scnrestore", "eval", str(data_dir), "-s", "2", "--model",
         str(out / "model.safetensors"), "--json", "--device", "cpu"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["shave"] == 2 and len(res["results"][0]["images"]) == 2
    mean = res["results"][0]["mean"]
    # The bicubic baseline, measured independently here.
    clean = np.asarray(PILImage.open(data_dir / "chelsea.png"))
    lr = degrade.bicubic_downscale(clean, 2)
    from scnrestore.metrics import psnr_y

    b = psnr_y(degrade.bicubic_upscale(lr, 2), clean, 2)
    chelsea = [i for i in res["results"][0]["images"] if i["image"] == "chelsea.png"][0]
    assert abs(chelsea["base_psnr_y"] - b) < 1e-3
    assert np.isfinite(mean["psnr_y"])


def test_estimate_sigma_tracks_the_noise():
    with PILImage.open(ROOT / "examples" / "chelsea.png") as im:
        clean = np.asarray(im.convert("RGB"))
    rng = np.random.default_rng(0)
    for sigma in (10, 25, 50):
        est = estimate_sigma(degrade.add_gaussian_noise(clean, sigma, rng))
        assert abs(est - sigma) < 0.15 * sigma + 1.5, (sigma, est)
    assert estimate_sigma(clean.astype(np.uint16) * 257) < 5


@pytest.mark.parametrize("quality", [5, 10, 23, 50, 90])
def test_estimate_jpeg_quality_is_exact_for_pillow_files(quality):
    buf = io.BytesIO()
    PILImage.new("RGB", (32, 32), (10, 200, 30)).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with PILImage.open(buf) as im:
        assert estimate_jpeg_quality(im.quantization) == quality


def test_warmup_ramps_the_learning_rate(data_dir, tmp_path):
    cfg = _cfg(data_dir, tmp_path / "run", val=None, steps=12, warmup=8, log_every=1,
               lr_milestones=())  # fmt: skip
    train(cfg)
    lrs = [json.loads(ln)["lr"] for ln in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert lrs[:8] == pytest.approx([2e-3 * (i + 1) / 8 for i in range(8)])
    assert lrs[8:] == pytest.approx([2e-3] * 4)


def _levels(cfg, n=4000, seed=0):
    from scnrestore.training.sampler import PatchSampler

    img = np.zeros((64, 64, 3), np.uint8)
    sampler = PatchSampler(cfg, [img], np.random.default_rng(seed))
    return np.array([sampler.level() for _ in range(n)])


def test_level_focus_draws_half_the_batch_from_the_low_levels(data_dir, tmp_path):
    uniform = _levels(_cfg(data_dir, tmp_path, task="denoise"))
    focused = _levels(_cfg(data_dir, tmp_path, task="denoise", level_focus=25))
    assert uniform.min() >= 1 and uniform.max() <= 75 and focused.max() <= 75
    # uniform on [1, 75]: 32 % at or below 25; focused: 0.5 + 0.5 * 32 % = 66 %
    assert (uniform <= 25).mean() == pytest.approx(24 / 74, abs=0.03)
    assert (focused <= 25).mean() == pytest.approx(0.5 + 0.5 * 24 / 74, abs=0.03)
    # dejpeg's default focus is q <= 40, so naming it replays the same levels
    dejpeg_default = _levels(_cfg(data_dir, tmp_path, task="dejpeg"))
    dejpeg_40 = _levels(_cfg(data_dir, tmp_path, task="dejpeg", level_focus=40))
    assert np.array_equal(dejpeg_default, dejpeg_40)
    assert (dejpeg_default == dejpeg_default.round()).all()
    assert not np.array_equal(dejpeg_40, _levels(_cfg(data_dir, tmp_path, task="dejpeg",
                                                      level_focus=20)))  # fmt: skip


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (dict(task="upscale", level_focus=10), "denoise and dejpeg only"),
        (dict(task="denoise", level_focus=80), "level_focus must be in"),
        (dict(task="dejpeg", level_focus=5), "level_focus must be in"),
    ],
)
def test_level_focus_is_checked(data_dir, tmp_path, kw, message):
    with pytest.raises(ValueError, match=message):
        _cfg(data_dir, tmp_path, **kw)


def test_cli_level_focus_is_recorded_and_checked(data_dir, tmp_path):
    base = [sys.executable, "-m", "scnrestore", "train", "denoise", "--data", str(data_dir),
            "--steps", "2", "--batch", "2", "--patch", "24", "--blocks", "1", "--units", "8",
            "--width", "2", "--num-scales", "2", "--device", "cpu", "--precision", "fp32",
            "-q"]  # fmt: skip
    out = tmp_path / "focus"
    r = subprocess.run([*base, "--out", str(out), "--level-focus", "20"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "run.json").read_text())["config"]["level_focus"] == 20
    r = subprocess.run([*base, "--out", str(tmp_path / "bad"), "--level-focus", "90"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2
    assert "level_focus must be in (1, 75], not 90" in r.stderr
    assert not (tmp_path / "bad").exists()


def test_patch_detail_is_zero_on_flat_and_high_on_texture():
    from scnrestore.training.sampler import patch_detail

    flat = np.full((32, 32, 3), 77, np.uint8)
    ramp = np.repeat(np.repeat(np.arange(32, dtype=np.uint8)[None, :, None], 32, 0), 3, 2)
    checker = ((np.indices((32, 32)).sum(0) % 2) * 100).astype(np.uint8)[..., None].repeat(3, 2)
    assert patch_detail(flat) == 0
    assert patch_detail(ramp) == 0  # a linear gradient has no Laplacian
    assert patch_detail(checker) == pytest.approx(400)  # 4 * 100 - 0, or 0 - 4 * 100


@pytest.mark.parametrize("task", ["denoise", "dejpeg", "upscale"])
def test_detail_floor_draws_textured_patches_and_replays(data_dir, tmp_path, task):
    """Half flat, half noise: uniform patches land on the flat half about as
    often as not; a detail floor all but stops it, and a run replays."""
    from scnrestore.training.sampler import PatchSampler, patch_detail

    img = np.full((128, 256, 3), 90, np.uint8)
    img[:, 128:] = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)

    def details(floor, seed=0):
        cfg = _cfg(data_dir, tmp_path, task=task, patch=32, detail_floor=floor)
        sampler = PatchSampler(cfg, [img], np.random.default_rng(seed))
        return np.array([patch_detail(sampler.patch_pair()[1]) for _ in range(300)])

    uniform, weighted = details(0.0), details(10.0)
    assert 0.15 < (uniform == 0).mean() < 0.6  # some patches fall wholly on the flat half
    assert (weighted == 0).mean() == 0
    assert np.array_equal(weighted, details(10.0))  # same seed, same patches
    assert not np.array_equal(weighted, details(10.0, seed=1))
    flat_only = _cfg(data_dir, tmp_path, task=task, patch=32, detail_floor=10.0)
    flat = PatchSampler(flat_only, [img[:, :128].copy()], np.random.default_rng(0))
    assert patch_detail(flat.patch_pair()[1]) == 0  # gives up redrawing, does not hang


def test_detail_floor_is_checked_and_recorded(data_dir, tmp_path):
    with pytest.raises(ValueError, match="detail_floor must be >= 0"):
        _cfg(data_dir, tmp_path, detail_floor=-1)
    out = tmp_path / "detail"
    r = subprocess.run([sys.executable, "-m", "scnrestore", "train", "upscale", "-s", "2",
                        "--data", str(data_dir), "--out", str(out), "--steps", "2",
                        "--batch", "2", "--patch", "16", "--blocks", "1", "--units", "8",
                        "--width", "2", "--num-scales", "2", "--device", "cpu",
                        "--precision", "fp32", "--detail-floor", "6", "-q"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "run.json").read_text())["config"]["detail_floor"] == 6


def test_image_scales_draw_evenly_from_shrunk_copies(data_dir, tmp_path):
    """--image-scales 1,0.5: every image also appears shrunk by half
    (Pillow BICUBIC), and about half the patches come from the shrunk copies."""
    from scnrestore.training.sampler import PatchSampler

    img = np.random.default_rng(3).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    plain = PatchSampler(_cfg(data_dir, tmp_path, task="denoise", patch=16), [img],
                         np.random.default_rng(0))  # fmt: skip
    assert len(plain.hr) == 1 and np.array_equal(plain.hr[0], img)
    cfg = _cfg(data_dir, tmp_path, task="denoise", patch=16, image_scales=(1.0, 0.5))
    sampler = PatchSampler(cfg, [img], np.random.default_rng(0))
    assert [im.shape for im in sampler.hr] == [(96, 128, 3), (48, 64, 3)]
    assert np.array_equal(sampler.hr[1], degrade.shrink(img, 0.5))
    drawn = [sampler.patch_pair()[1] for _ in range(400)]
    from_shrunk = np.mean([np.shares_memory(y, sampler.hr[1]) for y in drawn])
    assert all(np.shares_memory(y, sampler.hr[0]) or np.shares_memory(y, sampler.hr[1])
               for y in drawn)  # fmt: skip
    assert 0.4 < from_shrunk < 0.6


def test_image_scales_are_checked_and_recorded(data_dir, tmp_path):
    for bad in [(0.0,), (1.5,), ()]:
        with pytest.raises(ValueError, match="image_scales must be factors in"):
            _cfg(data_dir, tmp_path, image_scales=bad)
    base = [
        sys.executable,
        "-m",
        "scnrestore",
        "train",
        "denoise",
        "--data",
        str(data_dir),
        "--steps",
        "2",
        "--batch",
        "2",
        "--patch",
        "16",
        "--blocks",
        "1",
        "--units",
        "8",
        "--width",
        "2",
        "--num-scales",
        "2",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "-q",
    ]
    out = tmp_path / "scales"
    r = subprocess.run([*base, "--out", str(out), "--image-scales", "1,0.5"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "run.json").read_text())["config"]["image_scales"] == [1.0, 0.5]
    r = subprocess.run([*base, "--out", str(tmp_path / "bad"), "--image-scales", "1,half"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2 and "--image-scales" in r.stderr
    assert not (tmp_path / "bad").exists()


def test_names_with_brackets_are_printed_as_they_are(ckpt_dir, tmp_path):
    """Rich reads "[b]" as markup: a file or run named with brackets must still
    print as named in eval's table and in train's last line."""
    data = tmp_path / "data [b]"
    data.mkdir()
    with PILImage.open(ROOT / "examples" / "coffee.png") as im:
        im.convert("RGB").crop((0, 0, 48, 48)).save(data / "c[b]d.png")
    r = subprocess.run(
        [sys.executable, "-m", "scnrestore", "eval", str(data), "-s", "2", "--model",
         str(ckpt_dir / "x2.safetensors"), "--device", "cpu", "--precision", "fp32"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "c[b]d.png" in r.stdout, r.stdout
    out = tmp_path / "run[red]"
    args = ["train", "upscale", "-s", "2", "--data", data, "--out", out, "--steps", "1",
            "--batch", "1", "--patch", "16", "--blocks", "1", "--units", "4", "--width", "2",
            "--num-scales", "2", "--device", "cpu", "--precision", "fp32"]  # fmt: skip
    r = subprocess.run([sys.executable, "-m", "scnrestore", *map(str, args)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"weights: {out / 'model.safetensors'}" in r.stderr, r.stderr


def test_a_run_moved_elsewhere_resumes_where_it_now_is(data_dir, tmp_path):
    """A run copied back from a GPU machine records that machine's folder;
    --resume goes on in the folder it is given."""
    import shutil

    from scnrestore.training.config import resume_config

    first = tmp_path / "there"
    train(_cfg(data_dir, first, steps=4, val=None))
    moved = tmp_path / "here"
    shutil.copytree(first, moved)
    shutil.rmtree(first)
    cfg = resume_config(moved, steps=6)
    assert cfg.out == str(moved)
    last = train(cfg, resume=True)
    assert last["step"] == 6 and not first.exists()
    assert json.loads((moved / "log.jsonl").read_text().splitlines()[-1])["step"] == 6


def test_ema_averages_the_weights_and_resumes_exactly(data_dir, tmp_path):
    """--ema: model.safetensors holds the moving average, model.raw.safetensors
    the live weights, and a stopped-and-resumed run ends where an unbroken one
    does (the average is part of the checkpoint)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    kw = dict(val=None, steps=12, lr_milestones=(), ckpt_every=100, ema=0.9)
    _whole_and_resumed_runs_match(data_dir, tmp_path, kw, stop_at=5)
    avg = load_file(tmp_path / "whole" / "model.safetensors")
    raw = load_file(tmp_path / "whole" / "model.raw.safetensors")
    assert avg.keys() == raw.keys()
    assert any(not torch.equal(avg[k], raw[k]) for k in avg)
    with safe_open(tmp_path / "whole" / "model.safetensors", "pt") as f:
        assert f.metadata()["ema"] == "0.9"
    # The run without --ema writes no raw file and its weights are the live ones.
    train(_cfg(data_dir, tmp_path / "plain", **(kw | {"ema": 0.0})))
    assert not (tmp_path / "plain" / "model.raw.safetensors").exists()
    for k in raw:
        torch.testing.assert_close(raw[k], load_file(tmp_path / "plain" / "model.safetensors")[k])


def test_ema_follows_its_warm_up_schedule():
    import torch

    from scnrestore.training.train import Ema

    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = Ema(model, 0.99)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update()  # decay min(0.99, 1/10) = 0.1: 0.1 * 0 + 0.9 * 1
    assert ema.weights["weight"].item() == pytest.approx(0.9)
    ema.update()  # decay 2/11
    assert ema.weights["weight"].item() == pytest.approx(0.9 * 2 / 11 + 9 / 11)
    with pytest.raises(ValueError, match="ema must lie in"):
        TrainConfig(task="upscale", data="d", out="o", ema=1.0)


def test_l2_loss_trains_on_squared_error_and_is_recorded(data_dir, tmp_path):
    """--loss l2: the same batches from the same seed give, per logged step, a
    mean squared error below the mean absolute error the l1 run logs (every
    pixel error is under 1), and run.json records the loss for resume."""
    kw = dict(val=None, steps=5, lr=0.0, warmup=0, lr_milestones=(), log_every=1)
    l1, l2 = [], []
    train(_cfg(data_dir, tmp_path / "l1", **kw), progress=l1.append)
    train(_cfg(data_dir, tmp_path / "l2", loss="l2", **kw), progress=l2.append)
    assert len(l1) == len(l2) == 5
    for a, b in zip(l1, l2, strict=True):
        # Zero learning rate: both runs score the same network on the same
        # batch, so MAE^2 <= MSE (Jensen) and MSE < MAE (every |error| < 1).
        assert a["loss"] ** 2 <= b["loss"] < a["loss"]
    assert load_run_config(tmp_path / "l2").loss == "l2"
    assert load_run_config(tmp_path / "l1").loss == "l1"
    with pytest.raises(ValueError, match="loss must be one of l1, l2"):
        TrainConfig(task="upscale", data="d", out="o", loss="l3")


# -- several data folders, each with a share of the patches --------------------

# Folder "a": one dark image; folder "b": three bright ones. Drawing uniformly
# over images would give "a" a quarter of the patches; shares 0.8 / 0.2 give it
# 0.8. Each image has its own grey level, so a target patch names its image.
MIX_LEVELS = {"a": (20,), "b": (180, 210, 240)}


@pytest.fixture(scope="module")
def mix_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    for folder, levels in MIX_LEVELS.items():
        (root / folder).mkdir()
        for i, v in enumerate(levels):
            im = np.full((96, 128, 3), v, np.uint8)
            im[::7, ::5] = v + 10  # a little texture, same mean level
            PILImage.fromarray(im).save(root / folder / f"{folder}{i}.png")
    return root


def _mix(mix_dirs, share_a=0.8):
    return [{"path": str(mix_dirs / "a"), "share": share_a},
            {"path": str(mix_dirs / "b"), "share": 1 - share_a}]  # fmt: skip


def _image_of(targets):
    """The grey level (so the image) each target patch was cut from."""
    return np.array([min(sum(MIX_LEVELS.values(), ()), key=lambda v: abs(v - np.median(y)))
                     for y in targets])  # fmt: skip


@pytest.mark.parametrize("pipeline", ["host", "device"])
def test_each_folder_gets_its_share_of_the_patches(mix_dirs, tmp_path, pipeline):
    """Two folders at 0.8 / 0.2: the patches of 60 batches of 16, drawn with a
    fixed seed, come 80 / 20 from them (images within a folder evenly, then
    image_scales), in both samplers."""
    from scnrestore.training.datasources import load_sources
    from scnrestore.training.devicedata import DeviceSampler
    from scnrestore.training.sampler import PatchSampler

    cfg = _cfg(mix_dirs, tmp_path, data=_mix(mix_dirs), batch=16, patch=16,
               image_scales=(1.0, 0.5))  # fmt: skip
    images, groups = load_sources(cfg.data)
    assert groups == [0, 1, 1, 1]
    if pipeline == "host":
        sampler = PatchSampler(cfg, images, np.random.default_rng(0), groups)
        targets = [y for _ in range(60) for y in sampler.batch()[1]]
    else:
        sampler = DeviceSampler(cfg, images, "cpu", groups=groups)
        targets = [y for _ in range(60) for y in sampler.next()[1].numpy()]
    drawn = _image_of(targets)
    assert (drawn == 20).mean() == pytest.approx(0.8, abs=0.04)
    for v in MIX_LEVELS["b"]:  # 0.2 / 3 each
        assert (drawn == v).mean() == pytest.approx(0.2 / 3, abs=0.025)


@pytest.mark.parametrize("pipeline", ["host", "device"])
def test_one_folder_as_a_list_draws_as_the_plain_string(data_dir, tmp_path, pipeline):
    """A recorded single-folder run (data a plain string) draws exactly the
    patches it drew before, and so does the same folder given as a list."""
    from scnrestore.training.datasources import load_sources
    from scnrestore.training.devicedata import DeviceSampler
    from scnrestore.training.sampler import PatchSampler

    def batches(data):
        cfg = _cfg(data_dir, tmp_path, data=data, batch=8, patch=16, image_scales=(1.0, 0.5))
        images, groups = load_sources(cfg.data)
        if pipeline == "host":
            sampler = PatchSampler(cfg, images, np.random.default_rng(5), groups)
            return np.stack([sampler.batch()[1] for _ in range(6)])
        sampler = DeviceSampler(cfg, images, "cpu", groups=groups)
        return np.stack([sampler.next()[1].numpy() for _ in range(6)])

    assert np.array_equal(batches(str(data_dir)), batches([{"path": str(data_dir)}]))


def test_a_two_folder_run_resumes_where_it_stopped(mix_dirs, tmp_path):
    """Stopped and resumed from its run.json, a two-folder run ends where an
    unbroken one does; run.json lists the folders, shares, counts, fingerprints."""
    kw = dict(data=_mix(mix_dirs, 0.7), val=None, steps=8, patch=16, lr_milestones=(),
              ckpt_every=100, threads=1)  # fmt: skip
    import torch
    from safetensors.torch import load_file

    train(_cfg(mix_dirs, tmp_path / "whole", **kw))
    train(_cfg(mix_dirs, tmp_path / "split", **(kw | {"steps": 3})))
    recorded = json.loads((tmp_path / "split" / "run.json").read_text())["config"]["data"]
    assert [(d["path"], d["share"], d["images"]) for d in recorded] == [
        (str(mix_dirs / "a"), 0.7, 1), (str(mix_dirs / "b"), pytest.approx(0.3), 3)]  # fmt: skip
    assert all(len(d["fingerprint"]) == 16 for d in recorded)
    cfg = load_run_config(tmp_path / "split")
    cfg.steps = 8
    train(cfg, resume=True)
    a = load_file(tmp_path / "whole" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_a_single_folder_run_recorded_as_a_string_still_resumes_identically(data_dir, tmp_path):
    """run.json files written before several folders record ``data`` as a
    plain string: such a run loads, resumes and replays its batches exactly
    (host and device pipelines)."""
    import torch
    from safetensors.torch import load_file

    for pipeline in ("host", "device"):
        kw = dict(val=None, steps=10, lr_milestones=(), ckpt_every=100, threads=1,
                  data_pipeline=pipeline)  # fmt: skip
        whole, split = tmp_path / f"whole_{pipeline}", tmp_path / f"split_{pipeline}"
        train(_cfg(data_dir, whole, **kw))
        train(_cfg(data_dir, split, **(kw | {"steps": 4})))
        assert json.loads((split / "run.json").read_text())["config"]["data"] == str(data_dir)
        cfg = load_run_config(split)
        assert cfg.data == str(data_dir)
        cfg.steps = 10
        train(cfg, resume=True)
        a, b = load_file(whole / "model.safetensors"), load_file(split / "model.safetensors")
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)


def test_recorded_training_configs_still_load():
    """Every stage recorded under training-records/ loads as a TrainConfig: a
    one-folder run's data is still the plain string it recorded (so it draws
    as it did), a several-folder run's the folders with shares and fingerprints."""
    records = sorted((ROOT / "training-records").glob("*/*.run.json"))
    assert records
    for path in records:
        recorded = json.loads(path.read_text())["config"]
        cfg = TrainConfig(**recorded)
        if isinstance(recorded["data"], str):
            assert cfg.data == recorded["data"], path
        else:
            assert [d["path"] for d in cfg.data] == [d["path"] for d in recorded["data"]], path
            assert sum(d["share"] for d in cfg.data) == pytest.approx(1.0), path
            assert all(d["fingerprint"] for d in cfg.data), path


def _cli_env():
    import os

    return os.environ | {"COLUMNS": "200"}  # usage errors on one line


def _tiny_cli(*args):
    base = [sys.executable, "-m", "scnrestore", "train", "upscale", "--steps", "2",
            "--batch", "2", "--patch", "16", "--blocks", "1", "--units", "8", "--width", "2",
            "--num-scales", "2", "--device", "cpu", "--precision", "fp32", "--threads", "1",
            "-q"]  # fmt: skip
    return subprocess.run([*base, *map(str, args)], capture_output=True, text=True,
                          timeout=300, env=_cli_env())  # fmt: skip


def test_cli_two_folders_record_and_resume_refuses_when_a_folder_changed(mix_dirs, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(mix_dirs, data)
    out = tmp_path / "run"
    r = _tiny_cli("--data", f"{data / 'a'}:0.25", "--data", data / "b", "--out", out)
    assert r.returncode == 0, r.stderr
    recorded = json.loads((out / "run.json").read_text())["config"]["data"]
    assert [(d["share"], d["images"]) for d in recorded] == [(0.25, 1), (0.75, 3)]
    resume = ("--out", out, "--resume", "--steps", "3")
    # an image added to a folder: refused, in one line, nothing trained
    extra = data / "b" / "b9.png"
    shutil.copy(data / "b" / "b0.png", extra)
    r = _tiny_cli(*resume)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"error: cannot resume: the images in data folder {data / 'b'} changed "
        "(3 images recorded, 4 now)"]  # fmt: skip
    # the same count but an image resized
    extra.unlink()
    with PILImage.open(data / "b" / "b1.png") as im:
        im.crop((0, 0, 96, 80)).save(data / "b" / "b1.png")
    r = _tiny_cli(*resume)
    assert r.returncode == 2 and "names or pixel sizes differ" in r.stderr
    shutil.copy(mix_dirs / "b" / "b1.png", data / "b" / "b1.png")
    # a folder gone
    (data / "a").rename(tmp_path / "a_moved")
    r = _tiny_cli(*resume)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: cannot resume: data folder {data / 'a'} is missing"
    assert json.loads((out / "log.jsonl").read_text().splitlines()[-1])["step"] == 2
    # everything back as it was (a lossless re-encoding still matches): it resumes
    (tmp_path / "a_moved").rename(data / "a")
    with PILImage.open(data / "a" / "a0.png") as im:
        im.save(data / "a" / "a0.webp", lossless=True)
    (data / "a" / "a0.png").unlink()
    r = _tiny_cli(*resume)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "log.jsonl").read_text().splitlines()[-1])["step"] == 3


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["{a}:0.7", "{b}:0.2"], "--data shares must sum to 1, not 0.7 + 0.2 = 0.9"),
        (["{a}:0.5"], "--data shares must sum to 1, not 0.5"),
        (["{a}:0.7", "{b}:0.3", "{c}"], "--data shares 0.7 + 0.3 leave nothing for {c}"),
        (["{a}", "{a}"], "--data names a folder twice: {a}"),
        (["{a}:0", "{b}"], "--data share of {a} must lie in (0, 1], not 0.0"),
        (["{a}", "{missing}:0.5"], "--data {missing}: no such folder"),
    ],
)
def test_cli_data_shares_are_checked(mix_dirs, tmp_path, data, message):
    folders = {"a": mix_dirs / "a", "b": mix_dirs / "b", "c": tmp_path / "c",
               "missing": tmp_path / "missing"}  # fmt: skip
    folders["c"].mkdir()
    args = [a for d in data for a in ("--data", d.format(**folders))]
    r = _tiny_cli(*args, "--out", tmp_path / "bad")
    assert r.returncode == 2
    assert message.format(**folders) in r.stderr, r.stderr
    assert not (tmp_path / "bad").exists()


def test_data_sources_parse_shares():
    from scnrestore.training.datasources import parse_sources

    three = parse_sources(["x", "y:0.5", "z"])
    assert [(d["path"], d["share"]) for d in three] == [("x", 0.25), ("y", 0.5), ("z", 0.25)]
    # hand-rounded thirds are scaled to sum to exactly 1
    thirds = parse_sources(["x:0.33", "y:0.33", "z:0.33"])
    assert sum(d["share"] for d in thirds) == pytest.approx(1.0, abs=1e-12)
    assert parse_sources(["dir:with:colons"]) == [{"path": "dir:with:colons", "share": 1.0}]
    assert parse_sources(["C:/data/x:0.6", "y"])[0] == {"path": "C:/data/x", "share": 0.6}
    with pytest.raises(ValueError, match="shares must sum to 1"):
        TrainConfig(task="upscale", data=[{"path": "x", "share": 0.4}], out="o")


def test_a_resumed_command_is_recorded_as_shell():
    """A run's command and its resumes joined by && stays runnable text (a
    run's weights header, average_runs.py's record of the runs it meant)."""
    from scnrestore.training.config import command_line

    words = ["scnrestore", "train", "--out", "runs/a b", "-q", "&&"]
    words += ["scnrestore", "train", "--resume"]
    want = "scnrestore train --out 'runs/a b' -q && scnrestore train --resume"
    assert command_line(words) == want
