"""The tiled engine: seamless stitching, dtypes, TTA, tile geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REFERENCE

from scnrestore import load_model
from scnrestore.engine import DEFAULT_OVERLAP, Engine, blend_weights, tile_starts
from scnrestore.metrics import psnr


@pytest.fixture(scope="module")
def golden_x2():
    """A checkpoint in the published format whose body dominates its output."""
    return load_model(REFERENCE / "tiny_x2_s3.pt", num_scales=3)


@pytest.mark.parametrize(
    "length,tile,overlap", [(100, 32, 8), (64, 64, 16), (30, 64, 8), (97, 40, 20)]
)
def test_tile_starts_cover_and_weights_sum_to_one(length, tile, overlap):
    starts = tile_starts(length, tile, overlap)
    t = min(tile, length)
    assert starts[0] == 0 and starts[-1] + t == length
    for s in (1, 2, 3):
        total = np.zeros(length * s)
        for st, w in zip(starts, blend_weights(starts, t, length, s)):
            assert len(w) == t * s
            total[st * s : st * s + len(w)] += w
        np.testing.assert_allclose(total, 1.0, atol=1e-6)


def test_tiled_matches_whole_image_at_default_overlap(golden_x2, photo):
    """>= 50 dB against whole-image inference with many small tiles."""
    whole = Engine(golden_x2, "cpu", "fp32", tile=0).run(photo)
    tiled = Engine(golden_x2, "cpu", "fp32", tile=64).run(photo)
    assert tiled.shape == whole.shape == (photo.shape[0] * 2, photo.shape[1] * 2, 3)
    assert psnr(tiled, whole) >= 50.0


def test_without_overlap_seams_show(golden_x2, photo):
    """The bound above can fail: crop-and-paste tiles leave visible seams."""
    whole = Engine(golden_x2, "cpu", "fp32", tile=0).run(photo)
    cut = Engine(golden_x2, "cpu", "fp32", tile=64, overlap=0).run(photo)
    assert psnr(cut, whole) < 45.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_output_dtype_and_range(golden_x2, photo, dtype):
    if dtype == np.uint16:
        img = photo.astype(np.uint16) * 257 + 100
    elif dtype == np.float32:
        img = photo.astype(np.float32) / 255
    else:
        img = photo
    out = Engine(golden_x2, "cpu", "fp32", tile=48).run(img)
    assert out.dtype == dtype and out.shape == (img.shape[0] * 2, img.shape[1] * 2, 3)
    ref8 = Engine(golden_x2, "cpu", "fp32", tile=48).run(photo)
    if dtype == np.uint16:
        # Computed in float: not just an 8-bit result times 257.
        assert np.any(out % 257 != 0)
        assert psnr(out / 257.0, ref8.astype(np.float64)) > 35
    if dtype == np.float32:
        assert 0.0 <= out.min() and out.max() <= 1.0
        assert psnr(out * 255.0, ref8.astype(np.float64)) > 45


def test_tta_is_the_mean_of_eight_transforms(golden_x2, photo):
    img = photo[:40, :56]
    out = Engine(golden_x2, "cpu", "fp32", tile=0, tta=True).run(img.astype(np.float32) / 255)
    x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None]
    acc = 0
    with torch.inference_mode():
        for flip in (False, True):
            for k in range(4):
                t = torch.rot90(x.transpose(2, 3) if flip else x, k, (2, 3))
                y = torch.rot90(golden_x2(t), -k, (2, 3))
                acc = acc + (y.transpose(2, 3) if flip else y)
    ref = (acc / 8)[0].permute(1, 2, 0).clamp(0, 1).numpy()
    np.testing.assert_allclose(out, ref, atol=1e-5)
    plain = Engine(golden_x2, "cpu", "fp32", tile=0).run(img.astype(np.float32) / 255)
    assert np.abs(plain - out).max() > 1e-3


def test_conditioned_model_needs_level(ckpt_dir, photo):
    model = load_model(ckpt_dir / "denoise.safetensors")
    eng = Engine(model, "cpu", "fp32")
    with pytest.raises(ValueError, match="needs a level"):
        eng.run(photo)
    a = eng.run(photo, cond=5 / 255)
    b = eng.run(photo, cond=50 / 255)
    assert a.shape == photo.shape and np.any(a != b)


def test_progress_reports_every_tile(golden_x2, photo):
    calls = []
    Engine(golden_x2, "cpu", "fp32", tile=48, overlap=DEFAULT_OVERLAP // 2).run(
        photo, progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1][0] == calls[-1][1] == len(calls) > 1


def test_bad_device_and_precision(golden_x2):
    with pytest.raises(ValueError, match="unknown device"):
        Engine(golden_x2, "gpu0")
    with pytest.raises(ValueError, match="unknown precision"):
        Engine(golden_x2, "cpu", "int8")
