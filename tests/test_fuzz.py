"""Property-based tests of the engine and the in-memory API (hypothesis).

Kept small (tiny reference networks, images up to 160 px, a few dozen
examples each) so they run in seconds on a busy CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import REFERENCE, make_checkpoint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scnrestore import Restorer, load_model
from scnrestore.api import LEVEL_RANGES
from scnrestore.engine import MIN_TILE, Engine
from scnrestore.metrics import psnr

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The suite shares two busy cores; tiny tiles gain nothing from more threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def x2():
    return load_model(REFERENCE / "tiny_x2_s3.pt", num_scales=3)


@pytest.fixture(scope="module")
def denoiser(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "denoise.safetensors"
    return load_model(make_checkpoint(path, scale=1, num_cond_channels=1))


DTYPES = [np.uint8, np.uint16, np.float32]


@st.composite
def images(draw, max_side: int = 160, max_pixels: int = 12_000) -> np.ndarray:
    """H x W x C arrays: C in 1-4; uint8, uint16 or float32; sides from 1 (1xN, Nx1)."""
    shape = draw(
        st.one_of(
            st.tuples(st.just(1), st.integers(1, max_side)),
            st.tuples(st.integers(1, max_side), st.just(1)),
            st.tuples(st.integers(1, max_side), st.integers(1, max_side)).filter(
                lambda s: s[0] * s[1] <= max_pixels
            ),
        )
    )
    c = draw(st.sampled_from([1, 2, 3, 4]))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if dtype == np.float32:
        a = rng.random((*shape, c), dtype=np.float32)
        if draw(st.booleans()):  # hostile floats: NaN, infinities, out of [0, 1]
            flat = a.reshape(-1)
            idx = rng.integers(0, flat.size, size=4)
            flat[idx] = [np.nan, np.inf, -np.inf, 3.5]
        return a
    peak = np.iinfo(dtype).max
    return rng.integers(0, peak, size=(*shape, c), endpoint=True).astype(dtype)


tiles = st.one_of(st.none(), st.just(0), st.integers(1, 200))
overlaps = st.integers(0, 100)


@FUZZ
@given(img=images(), tile=tiles, overlap=overlaps, task=st.sampled_from(["upscale", "denoise"]),
       level=st.floats(*LEVEL_RANGES["denoise"]))  # fmt: skip
def test_restore_array_never_crashes(x2, denoiser, img, tile, overlap, task, level):
    """Any shape, mode, depth, tile and overlap: the right shape and dtype come back,
    floats are finite and in [0, 1], and alpha is carried (kept exactly at x1)."""
    model = x2 if task == "upscale" else denoiser
    r = Restorer(task, model, scale=2, device="cpu", precision="fp32", tile=tile,
                 tile_overlap=overlap)  # fmt: skip
    out = r.restore_array(img, level if task == "denoise" else None)
    s = r.scale
    h, w, c = img.shape
    assert out.shape == (h * s, w * s, c) and out.dtype == img.dtype
    if img.dtype == np.float32:
        assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    if c in (2, 4) and s == 1:
        alpha = img[..., -1]
        if img.dtype == np.float32:
            alpha = np.clip(np.nan_to_num(alpha, nan=0.0), 0, 1)
        np.testing.assert_array_equal(out[..., -1], alpha)


def effective(tile: int, overlap: int, multiple: int = 8) -> tuple[int, int]:
    """What Engine.run uses: tile >= MIN_TILE, floored to the pyramid period;
    overlap <= tile / 2."""
    t = max(MIN_TILE, tile - tile % multiple)
    return t, min(overlap, t // 2)


@FUZZ
@given(h=st.integers(1, 200), w=st.integers(1, 200), tile=st.integers(1, 160),
       overlap=st.integers(16, 64), dtype=st.sampled_from([np.uint8, np.float32]),
       seed=st.integers(0, 2**32 - 1))  # fmt: skip
def test_tiled_equals_whole_within_the_seam_bound(x2, h, w, tile, overlap, dtype, seed):
    """Tiled inference matches whole-image inference to >= 50 dB.

    When it must hold: the *effective* overlap is >= 16 px, i.e. overlap >= 16
    and a tile of at least 32 (Engine.run raises every tile to MIN_TILE = 64,
    floors it to a multiple of the pyramid period 2**num_scales = 8, and caps the
    overlap at tile / 2, so any requested tile qualifies here). It holds for
    any image size, 1 px sides and sides that are not multiples of 8 included:
    tiles start on multiples of 8, so each sees the same pyramid grid as the
    whole image. Images no larger than one tile are run whole (identical).
    Worst case measured on white noise with this network: ~61 dB.
    """
    t, o = effective(tile, overlap)
    assert o >= 16
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 255, (h, w, 3), endpoint=True).astype(np.uint8)
    if dtype == np.float32:
        img = img.astype(np.float32) / 255
    whole = Engine(x2, "cpu", "fp32", tile=0).run(img)
    tiled = Engine(x2, "cpu", "fp32", tile=tile, overlap=overlap).run(img)
    assert tiled.shape == whole.shape == (2 * h, 2 * w, 3) and tiled.dtype == img.dtype
    peak = 1.0 if dtype == np.float32 else 255.0
    assert psnr(tiled, whole, peak=peak) >= 50.0, (h, w, t, o)
    if h <= t and w <= t:
        np.testing.assert_array_equal(tiled, whole)
