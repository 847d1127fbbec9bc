"""Blending the input back: dejpeg keeps part of the JPEG's own luma (the
restored colour stays), denoise part of the noisy input."""

from __future__ import annotations

import hashlib
import io
import json

import numpy as np
import pytest
from PIL import Image as PILImage
from test_cli import run

from scnrestore import Restorer, weights
from scnrestore.tasks import TRAINED_RANGES

LUMA = np.array([0.299, 0.587, 0.114])
# Rounding moves each channel by at most 0.5, so the luma by at most 0.5 (the
# weights sum to 1); float64 adds a few ulps (0.5000000000000142 was seen).
ROUNDED = 0.5 + 1e-9


def luma(a: np.ndarray) -> np.ndarray:
    return a[..., :3].astype(np.float64) @ LUMA


def chroma(a: np.ndarray) -> np.ndarray:
    """Cb, Cr up to scale: what a shift of equal amounts on R, G, B leaves alone."""
    a = a[..., :3].astype(np.float64)
    y = a @ LUMA
    return np.stack([a[..., 2] - y, a[..., 0] - y], axis=-1)


@pytest.fixture(scope="module")
def jpeg(photo) -> np.ndarray:
    buf = io.BytesIO()
    PILImage.fromarray(photo).save(buf, "JPEG", quality=90)
    return np.asarray(PILImage.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def restorer(ckpt_dir, keep_luma=None, **kw) -> Restorer:
    return Restorer("dejpeg", ckpt_dir / "dejpeg.safetensors", level=90, device="cpu",
                    precision="fp32", keep_luma=keep_luma, **kw)  # fmt: skip


def test_full_keep_gives_the_input_luma_and_the_model_colour(ckpt_dir, jpeg):
    model = restorer(ckpt_dir, 0.0).restore_array(jpeg)
    kept = restorer(ckpt_dir, 1.0).restore_array(jpeg)
    assert np.abs(luma(model) - luma(jpeg)).mean() > 1.0  # the model did change the luma
    # Exact up to rounding, except where a channel hit 0 or 255 (a random
    # network moves colours far; a trained one at high quality seldom does).
    free = ((kept > 0) & (kept < 255)).all(axis=2)
    assert free.mean() > 0.5
    assert np.abs(luma(kept) - luma(jpeg))[free].max() <= ROUNDED
    assert np.abs(chroma(kept) - chroma(model))[free].max() <= 1.0
    assert np.abs(chroma(kept) - chroma(jpeg)).mean() > 1.0  # the colour is the model's


def test_half_keep_lands_halfway(ckpt_dir, jpeg):
    model = restorer(ckpt_dir, 0.0).restore_array(jpeg)
    half = restorer(ckpt_dir, 0.5).restore_array(jpeg)
    want = (luma(model) + luma(jpeg)) / 2
    free = ((half > 0) & (half < 255)).all(axis=2)
    # The blend is formed on the unrounded output; ``model`` holds it rounded
    # (each channel within 0.5, so the luma too), which halving makes 0.25.
    assert np.abs(luma(half) - want)[free].max() <= ROUNDED + 0.25


def test_gray_full_keep_is_the_input(ckpt_dir, jpeg):
    gray = jpeg[:, :, 1:2].copy()
    np.testing.assert_array_equal(restorer(ckpt_dir, 1.0).restore_array(gray), gray)


def test_alpha_and_16_bit_and_float(ckpt_dir, jpeg):
    alpha = np.full(jpeg.shape[:2] + (1,), 77, np.uint8)
    out = restorer(ckpt_dir, 1.0).restore_array(np.concatenate([jpeg, alpha], axis=2))
    assert np.all(out[:, :, 3] == 77)
    np.testing.assert_array_equal(out[:, :, :3], restorer(ckpt_dir, 1.0).restore_array(jpeg))
    wide = jpeg.astype(np.uint16) * 257
    out16 = restorer(ckpt_dir, 1.0).restore_array(wide)
    free = ((out16 > 0) & (out16 < 65535)).all(axis=2)
    assert out16.dtype == np.uint16 and free.mean() > 0.5
    assert np.abs(luma(out16) - luma(wide))[free].max() <= ROUNDED
    flt = jpeg.astype(np.float32) / 255
    flt[0, 0, 0] = np.nan  # read as 0 by the engine, and by the blend
    outf = restorer(ckpt_dir, 1.0).restore_array(flt)
    assert np.isfinite(outf).all() and outf.min() >= 0 and outf.max() <= 1
    flt[0, 0, 0] = 0
    free = ((outf > 0) & (outf < 1)).all(axis=2)
    assert np.abs(luma(outf) - luma(flt))[free].max() <= 1e-5


def test_bad_share_is_refused(ckpt_dir):
    with pytest.raises(ValueError, match="keep_luma must lie in 0..1"):
        restorer(ckpt_dir, 1.5)


def test_above_the_trained_range_the_network_is_told_its_top(ckpt_dir, jpeg):
    r = restorer(ckpt_dir, 0.0)
    top = TRAINED_RANGES["dejpeg"][1]
    np.testing.assert_array_equal(r.restore_array(jpeg, 99), r.restore_array(jpeg, top))
    assert not np.array_equal(r.restore_array(jpeg, 60), r.restore_array(jpeg, top))
    with pytest.raises(ValueError, match="outside 5..100"):
        r.restore_array(jpeg, 101)


def entry(points, task="dejpeg", key="keep_luma") -> weights.ModelEntry:
    """A registry entry "m" with ``key = points`` (also used for told_level)."""
    raw = {"task": task, "file": "m.safetensors", "sha256": "0" * 64, "size": 1,
           key: points, **({"scale": 2} if task == "upscale" else {})}  # fmt: skip
    return weights.registry._parse_entry("m", raw, None, None)


def test_schedule_is_linear_between_points_and_flat_beyond():
    e = entry([[88, 0.0], [92, 0.5], [95, 0.5], [99, 1.0]])
    assert [e.luma_weight(q) for q in (10, 88, 90, 92, 94, 95, 97, 99, 100)] == pytest.approx(
        [0, 0, 0.25, 0.5, 0.5, 0.5, 0.75, 1.0, 1.0]
    )
    assert entry([[50, 0.3]]).luma_weight(10) == 0.3


@pytest.mark.parametrize(
    "points",
    [[[92, 0.5], [88, 0.0]], [[90, 1.5]], [[90]], [], "high", [[90, True]]],
    ids=["falling", "over_1", "short", "empty", "string", "bool"],
)
def test_bad_schedules_are_refused_with_the_entry_named(points):
    with pytest.raises(weights.RegistryError, match="models.m: keep_luma must be"):
        entry(points)


def test_each_schedule_belongs_to_its_task():
    with pytest.raises(weights.RegistryError, match="dejpeg models only"):
        entry([[90, 0.5]], task="denoise")
    with pytest.raises(weights.RegistryError, match=r"keep_input must .*\(denoise models only"):
        entry([[2, 0.5]], task="dejpeg", key="keep_input")
    e = entry([[1, 0.8], [3, 0.0]], task="denoise", key="keep_input")
    assert e.share("keep_input", 2) == pytest.approx(0.4) and e.luma_weight(2) == 0.0


def _registry(tmp_path, ckpt_dir, points, task="dejpeg", **extra) -> dict[str, str]:
    """A user registry naming a tiny checkpoint with a keep_luma / keep_input
    schedule (none if ``points`` is None) and ``extra`` keys."""
    data = (ckpt_dir / f"{task}.safetensors").read_bytes()
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    (cache / f"tiny-{task}.safetensors").write_bytes(data)
    key = "keep_luma" if task == "dejpeg" else "keep_input"
    keys = {key: points} if points is not None else {}
    keys.update(extra)
    reg = tmp_path / "reg.toml"
    reg.write_text(
        f'[models.tiny]\ntask = "{task}"\nfile = "tiny-{task}.safetensors"\n'
        f'sha256 = "{hashlib.sha256(data).hexdigest()}"\nsize = {len(data)}\n'
        "num_blocks = 2\nnum_residual_units = 8\nwidth_multiplier = 2.0\nnum_scales = 3\n"
        "num_cond_channels = 1\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items())
    )
    return {"SCNRESTORE_REGISTRY": str(reg), "SCNRESTORE_CACHE_DIR": str(cache)}


def test_registry_schedule_is_the_default_and_the_flag_overrides_it(tmp_path, ckpt_dir, jpeg):
    env = _registry(tmp_path, ckpt_dir, [[80, 0.0], [90, 1.0]])
    PILImage.fromarray(jpeg).save(tmp_path / "q90.jpg", quality=90)
    PILImage.fromarray(jpeg).save(tmp_path / "q40.jpg", quality=40)
    r = run("dejpeg", tmp_path / "q90.jpg", tmp_path / "q40.jpg", "--model", "tiny",
            "-o", tmp_path / "auto", "--json", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    files = {f["input"].rsplit("/", 1)[-1]: f for f in json.loads(r.stdout)["files"]}
    assert files["q90.jpg"]["keep_luma"] == 1.0 and files["q40.jpg"]["keep_luma"] == 0.0
    with PILImage.open(tmp_path / "q90.jpg") as im:
        src = np.asarray(im.convert("RGB"))
    with PILImage.open(tmp_path / "auto" / "q90.png") as im:
        kept = np.asarray(im)
    free = ((kept > 0) & (kept < 255)).all(axis=2)
    assert free.mean() > 0.5 and np.abs(luma(kept) - luma(src))[free].max() <= ROUNDED
    r = run("dejpeg", tmp_path / "q90.jpg", "--model", "tiny", "--keep-luma", "0",
            "-o", tmp_path / "off", "--json", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["files"][0]["keep_luma"] == 0.0
    with PILImage.open(tmp_path / "off" / "q90.png") as im:
        assert np.abs(luma(np.asarray(im)) - luma(src)).mean() > 1.0


def test_a_file_outside_the_registry_keeps_no_luma(ckpt_dir):
    assert restorer(ckpt_dir).luma_weight(99) == 0.0
    assert (
        Restorer("denoise", ckpt_dir / "denoise.safetensors", keep_luma=1.0).luma_weight(25) == 0.0
    )


@pytest.mark.parametrize("bad", ["1.5", "-0.1", "half", "nan"])
@pytest.mark.parametrize(("task", "flag"), [("dejpeg", "--keep-luma"), ("denoise", "--keep-input")])
def test_bad_flag_is_one_clear_line(tmp_path, ckpt_dir, bad, task, flag):
    r = run(task, tmp_path / "none.jpg", flag, bad, "--model", ckpt_dir / f"{task}.safetensors")
    assert r.returncode == 2
    assert f"{flag} must be a number from 0 to 1 or auto, not {bad}" in r.stderr


def test_eval_applies_and_reports_the_schedule(tmp_path, ckpt_dir, photo):
    env = _registry(tmp_path, ckpt_dir, [[80, 0.0], [90, 1.0]])
    (tmp_path / "val").mkdir()
    PILImage.fromarray(photo).save(tmp_path / "val" / "a.png")
    r = run("eval", tmp_path / "val", "--task", "dejpeg", "--levels", "40,85,99",
            "--model", "tiny", "--json", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)["results"]
    assert [x["keep_luma"] for x in res] == [0.0, 0.5, 1.0]
    r = run("eval", tmp_path / "val", "--task", "dejpeg", "--levels", "99", "--keep-luma", "0",
            "--model", "tiny", "--json", env=env)  # fmt: skip
    off = json.loads(r.stdout)["results"][0]
    assert off["keep_luma"] == 0.0
    assert res[2]["mean"]["psnr_y"] > off["mean"]["psnr_y"] + 3  # the JPEG's luma, kept
    assert res[2]["mean"]["base_psnr_y"] == off["mean"]["base_psnr_y"]


# -- denoise: the noisy input blended back ------------------------------------


@pytest.fixture(scope="module")
def noisy(photo) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(photo + rng.normal(0, 2, photo.shape), 0, 255).round().astype(np.uint8)


def denoiser(ckpt_dir, keep_input=None) -> Restorer:
    return Restorer("denoise", ckpt_dir / "denoise.safetensors", level=2, device="cpu",
                    precision="fp32", keep_input=keep_input)  # fmt: skip


def test_denoise_blends_the_input_back(ckpt_dir, noisy):
    alone = denoiser(ckpt_dir, 0.0).restore_array(noisy)
    assert np.abs(alone.astype(float) - noisy).mean() > 1.0
    np.testing.assert_array_equal(denoiser(ckpt_dir, 1.0).restore_array(noisy), noisy)
    half = denoiser(ckpt_dir, 0.5).restore_array(noisy).astype(float)
    assert np.abs(half - (alone.astype(float) + noisy) / 2).max() <= 0.5
    assert denoiser(ckpt_dir, 0.5).luma_weight(90) == 0.0  # the other task's share
    with pytest.raises(ValueError, match="keep_input must lie in 0..1"):
        denoiser(ckpt_dir, 2.0)


def test_the_blend_is_formed_before_the_output_is_rounded(ckpt_dir, noisy):
    """Blending an already rounded 8-bit output loses the share of every one-
    level difference (0.3 of 1 rounds to 0): the engine blends first."""
    from scnrestore.api import blend_input

    alone = denoiser(ckpt_dir, 0.0)
    unrounded = alone.restore_array(noisy.astype(np.float32) / 255) * 255
    want = np.rint(unrounded * 0.7 + noisy * 0.3)
    got = denoiser(ckpt_dir, 0.3).restore_array(noisy)
    assert np.abs(got - want).max() <= 1 and (got == want).mean() > 0.99  # .5 ties, ulps
    rounded_first = alone.restore_array(noisy)
    blend_input(noisy, rounded_first, 0.3)
    assert (rounded_first != got).mean() > 0.05


def test_denoise_registry_schedule_and_flag(tmp_path, ckpt_dir, noisy):
    env = _registry(tmp_path, ckpt_dir, [[2, 1.0], [10, 0.0]], task="denoise")
    PILImage.fromarray(noisy).save(tmp_path / "n.png")
    r = run("denoise", tmp_path / "n.png", "--sigma", "2", "--model", "tiny",
            "-o", tmp_path / "auto", "--json", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["files"][0]["keep_input"] == 1.0
    with PILImage.open(tmp_path / "auto" / "n.png") as im:
        np.testing.assert_array_equal(np.asarray(im), noisy)
    r = run("denoise", tmp_path / "n.png", "--sigma", "6", "--keep-input", "0", "--model", "tiny",
            "-o", tmp_path / "off", "--json", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["files"][0]["keep_input"] == 0.0
    r = run("eval", tmp_path, "--task", "denoise", "--levels", "2,6,25", "--model", "tiny",
            "--json", env=env)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert [x["keep_input"] for x in json.loads(r.stdout)["results"]] == [1.0, 0.5, 0.0]
