"""The tiled engine: seamless stitching, dtypes, TTA, tile geometry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REFERENCE

from scnrestore import load_model
from scnrestore.engine import DEFAULT_OVERLAP, Engine, _converters, blend_weights, tile_starts
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


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_rows_come_back_the_same_narrowed_on_the_device_or_cast_on_the_host(dtype):
    # A GPU converts blended rows to the image's width before they cross back
    # (narrow); the CPU lets numpy cast them. Both must store the same values,
    # out-of-range and exact halves included. Run here on the CPU either way.
    rng = np.random.default_rng(0)
    rows = torch.from_numpy(rng.uniform(-0.2, 1.2, (1, 3, 5, 7)).astype(np.float32))
    peak = 255 if dtype == np.uint8 else 65535
    rows[0, 0, 0, :3] = torch.tensor([0.5, 1.5, 2.5]) / peak  # (near-)ties
    stored = []
    for narrow in (False, True):
        _, _, from_float = _converters(np.dtype(dtype), narrow=narrow)
        out = np.empty((5, 7, 3), dtype)
        out[...] = from_float(rows.clone())
        stored.append(out)
    np.testing.assert_array_equal(stored[0], stored[1])
    if dtype != np.float32:
        assert list(stored[0][0, :3, 0]) == [0, 2, 2]


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_pixels_survive_the_trip_to_float_and_back(dtype):
    peak = np.iinfo(dtype).max
    img = np.random.default_rng(1).integers(0, peak + 1, (6, 4, 3)).astype(dtype)
    img[0, 0] = [0, peak, peak // 2]
    for narrow in (False, True):
        to_host, to_float, from_float = _converters(np.dtype(dtype), narrow=narrow)
        t = to_float(torch.from_numpy(to_host(img)).permute(2, 0, 1)[None])
        back = np.empty_like(img)
        back[...] = from_float(t)
        np.testing.assert_array_equal(back, img)


@pytest.mark.parametrize("precision, itemsize", [("fp32", 4), ("bf16", 2)])
def test_cpu_tile_keeps_the_largest_buffer_under_mallocs_mmap_threshold(precision, itemsize):
    from scnrestore.engine import CPU_BUFFER_BYTES, cpu_tile
    from scnrestore.model import SCNConfig

    cfg = SCNConfig()
    side = cpu_tile(cfg, precision)
    inner = cfg.num_residual_units * cfg.width_multiplier
    assert side % 16 == 0
    assert inner * side**2 * itemsize <= CPU_BUFFER_BYTES
    assert inner * (side + 16) ** 2 * itemsize >= CPU_BUFFER_BYTES  # + malloc header: over
    narrow = SCNConfig(width_multiplier=1)  # smaller blocks: larger tiles
    assert cpu_tile(narrow, precision) > side


def test_cpu_engine_uses_the_cpu_tile(golden_x2):
    from scnrestore.engine import cpu_tile

    eng = Engine(golden_x2, "cpu", "fp32")
    assert eng.auto_tile(4000) == cpu_tile(golden_x2.config, "fp32")
