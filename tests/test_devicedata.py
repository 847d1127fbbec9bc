"""The device-side data pipeline: patches, JPEG bank, noise, levels, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from scnrestore.training import degrade
from scnrestore.training.config import TrainConfig
from scnrestore.training.degrade import dihedral
from scnrestore.training.devicedata import DeviceSampler, bank_qualities, choose_pipeline, make_bank
from scnrestore.training.sampler import patch_detail
from scnrestore.training.train import train

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(num_blocks=1, num_residual_units=8, width_multiplier=2, num_scales=2)


@pytest.fixture(scope="module")
def images():
    out = []
    for name in ("coffee.png", "chelsea.png"):
        with PILImage.open(ROOT / "examples" / name) as im:
            out.append(np.asarray(im.convert("RGB"))[:112, :160].copy())
    return out


def _cfg(**kw):
    base = dict(task="upscale", scale=2, data=".", out=".", batch=8, patch=16, device="cpu")
    return TrainConfig(**(base | kw))


def _draw(ds):
    """A batch and the positions, levels and dihedral ops it was cut with."""
    state = ds.get_state()
    img, top, left = ds.positions()
    level, entry = ds.levels()
    k = torch.randint(0, 8, (ds.cfg.batch,), generator=ds.generator)
    ds.set_state(state)
    x, y, lv = ds.next()
    assert torch.equal(lv, level)
    return x.numpy(), y.numpy(), img.tolist(), top.tolist(), left.tolist(), k.tolist(), entry


@pytest.mark.parametrize("scale", [2, 3])
def test_patches_are_aligned_windows_of_the_whole_image_lr(images, scale):
    cfg = _cfg(scale=scale, image_scales=(1.0, 0.5), batch=32)
    ds = DeviceSampler(cfg, images, "cpu")
    for hr, lr in zip(ds.hr_images, ds.lr_images, strict=True):
        assert np.array_equal(lr, degrade.bicubic_downscale(hr, scale))
    assert np.array_equal(ds.hr_images[2], degrade.crop_to_multiple(degrade.shrink(images[0], 0.5),
                                                                    scale))  # fmt: skip
    x, y, imgs, tops, lefts, ks, _ = _draw(ds)
    p, s = cfg.patch, scale
    assert x.shape == (32, p, p, 3) and y.shape == (32, p * s, p * s, 3)
    assert len(set(ks)) > 3 and len(set(imgs)) > 1
    for b, (i, t, le, k) in enumerate(zip(imgs, tops, lefts, ks, strict=True)):
        lr, hr = ds.lr_images[i], ds.hr_images[i]
        assert np.array_equal(x[b], dihedral(lr[t : t + p, le : le + p], k))
        assert np.array_equal(y[b], dihedral(hr[t * s : (t + p) * s, le * s : (le + p) * s], k))


def test_jpeg_bank_entries_equal_jpeg_roundtrip(images):
    small = [im[:48, :64] for im in images]
    bank = make_bank(small, [10, 55], workers=2)  # worker processes
    assert bank.shape == (2, 2 * 48 * 64, 3)
    assert np.array_equal(bank, make_bank(small, [10, 55], workers=0))  # in-process
    for j, q in enumerate([10, 55]):
        for i, im in enumerate(small):
            got = bank[j, i * 48 * 64 : (i + 1) * 48 * 64].reshape(48, 64, 3)
            assert np.array_equal(got, degrade.jpeg_roundtrip(im, q))


def test_bank_qualities_and_jpeg_patches_on_the_mcu_grid(images):
    assert bank_qualities(_cfg()) == []
    assert bank_qualities(_cfg(task="dejpeg")) == list(range(5, 96, 5))
    assert bank_qualities(_cfg(jpeg_range=(30, 100))) == list(range(30, 101, 5))
    assert bank_qualities(_cfg(jpeg_range=(30, 92), jpeg_bank_step=10))[-2:] == [90, 92]
    cfg = _cfg(task="dejpeg", quality_range=(20, 40), batch=24)
    ds = DeviceSampler(cfg, images, "cpu", workers=0)
    x, y, imgs, tops, lefts, ks, entry = _draw(ds)
    p = cfg.patch
    for b, (i, t, le, k) in enumerate(zip(imgs, tops, lefts, ks, strict=True)):
        assert t % 16 == 0 and le % 16 == 0
        q = ds.qualities[int(entry[b]) - 1]
        jpeg = degrade.jpeg_roundtrip(ds.hr_images[i], q)
        assert np.array_equal(x[b], dihedral(jpeg[t : t + p, le : le + p], k))
        assert np.array_equal(y[b], dihedral(ds.hr_images[i][t : t + p, le : le + p], k))


def test_levels_follow_the_range_focus_and_clean_share(images):
    ds = DeviceSampler(_cfg(task="dejpeg", batch=4000, patch=16), images[:1], "cpu", workers=0)
    lv = ds.levels()[0].numpy()
    assert set(lv) <= set(ds.qualities) and set(lv) == set(ds.qualities)
    # half the batch at or below the default focus (q 40): 0.5 + 0.5 * 8 / 19
    assert (lv <= 40).mean() == pytest.approx(0.5 + 0.5 * 8 / 19, abs=0.03)
    cfg = _cfg(jpeg_range=(30, 100), jpeg_clean=0.2, batch=4000)
    up = DeviceSampler(cfg, images[:1], "cpu", workers=0).levels()
    assert (up[0] == 0).float().mean().item() == pytest.approx(0.2, abs=0.03)
    assert torch.equal(up[0] == 0, up[1] == 0)
    den = DeviceSampler(_cfg(task="denoise", batch=4000, level_focus=25), images[:1], "cpu")
    sig = den.levels()[0].numpy()
    assert sig.min() >= 1 and sig.max() <= 75
    assert (sig <= 25).mean() == pytest.approx(0.5 + 0.5 * 24 / 74, abs=0.03)


def test_noise_has_the_drawn_std_and_is_rounded():
    grey = np.full((64, 64, 3), 128, np.uint8)
    cfg = _cfg(task="denoise", sigma_range=(20.0, 20.0), batch=64, patch=32)
    x, y, lv = DeviceSampler(cfg, [grey], "cpu").next()
    assert torch.all(lv == 20) and torch.all(y == 128)
    d = x.double() - 128
    assert d.std().item() == pytest.approx(20, rel=0.02) and abs(d.mean().item()) < 0.2


def test_detail_floor_scores_like_patch_detail_and_skips_flat_patches():
    img = np.full((128, 256, 3), 90, np.uint8)
    img[:, 128:] = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    for task in ("denoise", "upscale"):
        ds = DeviceSampler(_cfg(task=task, batch=64, patch=16, detail_floor=10.0), [img], "cpu")
        s, side = ds.cfg.scale, 16 * ds.cfg.scale
        im = torch.zeros(5, dtype=torch.int64)
        ys, xs = torch.tensor([0, 10, 3, 40, 48]) * s, torch.tensor([0, 50, 61, 70, 100]) * s
        hr = ds.hr_images[0]
        want = [patch_detail(hr[a : a + side, b : b + side]) for a, b in zip(ys, xs, strict=True)]
        assert ds.detail(im, ys, xs).numpy() == pytest.approx(want, rel=1e-5, abs=1e-6)
        _, y, *_ = _draw(ds)
        assert min(patch_detail(p) for p in y) > 0  # no patch wholly on the flat half
    flat = DeviceSampler(_cfg(task="denoise", batch=4, patch=16, detail_floor=10.0),
                         [img[:, :128].copy()], "cpu")  # fmt: skip
    assert flat.next()[1].shape == (4, 16, 16, 3)  # gives up redrawing, does not hang


def test_choose_pipeline():
    cfg = _cfg()
    assert choose_pipeline(cfg, torch.device("cpu")) == "device"
    assert choose_pipeline(cfg, torch.device("cpu"), {"numpy_rng": {}}) == "host"
    assert choose_pipeline(cfg, torch.device("cpu"), {"device_rng": 0}) == "device"
    assert choose_pipeline(_cfg(data_pipeline="host"), torch.device("cpu")) == "host"
    with pytest.raises(ValueError, match="data_pipeline must be one of"):
        _cfg(data_pipeline="gpu")


@pytest.fixture
def one_thread():
    """Runs with threads=1 (two threads on a busy 2-core machine run 20x slower);
    torch's setting is global, so it is put back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("task", ["dejpeg", "upscale", "denoise-real"])
def test_device_pipeline_run_resumes_where_it_stopped(images, tmp_path, task, one_thread):
    """A run stopped and resumed trains on the same batches as an unbroken one:
    the device generator's state travels in last.pt."""
    from safetensors.torch import load_file

    data = tmp_path / "data"
    data.mkdir()
    for i, im in enumerate(images):
        PILImage.fromarray(im).save(data / f"{i}.png")
    task, _, noise = task.partition("-")
    kw = dict(task=task, data=str(data), steps=8, batch=4, patch=16, lr=2e-3, lr_milestones=(),
              ckpt_every=100, log_every=2, device="cpu", precision="fp32",
              data_pipeline="device", threads=1, **TINY)  # fmt: skip
    if task == "upscale":
        kw |= dict(jpeg_range=(40, 90), jpeg_bank_step=25)
    if noise:  # the blind real-noise model: camera noise drawn from the numpy generator
        kw |= dict(noise=noise)
    train(TrainConfig(out=str(tmp_path / "whole"), **kw))
    train(TrainConfig(out=str(tmp_path / "split"), **(kw | {"steps": 3})))
    records = []
    last = train(TrainConfig(out=str(tmp_path / "split"), **kw), resume=True,
                 progress=records.append)  # fmt: skip
    assert last["step"] == 8 and records[0]["step"] == 4
    assert all(np.isfinite(r["loss"]) for r in records)
    state = torch.load(tmp_path / "split" / "last.pt", weights_only=True)
    assert state["step"] == 8 and "device_rng" in state
    a = load_file(tmp_path / "whole" / "model.safetensors")
    b = load_file(tmp_path / "split" / "model.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    doc = json.loads((tmp_path / "split" / "run.json").read_text())
    assert doc["data_pipeline"]["kind"] == "device"
    if task != "denoise":
        want = [40, 65, 90] if task == "upscale" else list(range(5, 96, 5))
        assert doc["data_pipeline"]["jpeg_bank_qualities"] == want


def test_sources_weight_the_image_draws(images):
    """Several data sources: each image is drawn with its source's share
    spread over the source's (image, factor) pairs (cdf + searchsorted on the
    same uniform draws); one source keeps the uniform draws."""
    two = [{"path": "a", "share": 0.9}, {"path": "b", "share": 0.1}]
    cfg = _cfg(data=two, batch=20000, image_scales=(1.0, 0.5))
    ds = DeviceSampler(cfg, images, "cpu", groups=[0, 1])
    assert ds.groups == [0, 1, 0, 1]  # factor-major, as the host sampler orders them
    drawn = np.bincount(ds.positions()[0].numpy(), minlength=4) / cfg.batch
    assert drawn == pytest.approx([0.45, 0.05, 0.45, 0.05], abs=0.015)
    assert DeviceSampler(_cfg(), images, "cpu").cdf is None
    with pytest.raises(ValueError, match="b: no training image is at least 80px"):
        DeviceSampler(_cfg(data=two, patch=40), [images[0], images[1][:40, :40]], "cpu",
                      groups=[0, 1])  # fmt: skip
