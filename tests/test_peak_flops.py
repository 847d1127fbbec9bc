"""benchmarks/peak.py's FLOP counter: Conv2d calls of a model, per input pixel,
against the count worked out by hand from the architecture."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from scnrestore.model import SCN, SCNConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def peak():
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(ROOT / "benchmarks"))  # peak.py imports bench and _timing
    try:
        spec = importlib.util.spec_from_file_location("peak", ROOT / "benchmarks" / "peak.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        mp.undo()


def by_hand(scale: int, cond: int = 0, units: int = 32, inner: int = 128, blocks: int = 16) -> int:
    """FLOPs per input pixel of an SCN with 4 pyramid levels, from the paper's layout."""
    levels = [4**-s for s in range(4)]  # pixels of each level per input pixel
    body = 2 * 9 * units * inner * 2 * sum(levels)  # 3x3 units->inner->units at every level
    down = 2 * units * units * sum(levels[:-1])  # 1x1 on levels 0..2, then downsampled
    up = 2 * units * units * sum(levels[1:])  # 1x1 on levels 1..3, then upsampled
    head = 2 * 9 * (3 + cond) * units
    tail = 2 * 9 * units * 3 * scale**2
    skip = 2 * 25 * 3 * 3 * scale**2 if scale > 1 else 0
    return head + blocks * (body + down + up) + tail + skip


def test_paper_x2_counts_3_2_mflop_per_pixel(peak):
    flops = peak.conv_flops_per_pixel(SCN(SCNConfig(scale=2)))
    assert 3.1e6 < flops < 3.2e6
    assert flops == pytest.approx(by_hand(2), rel=1e-12)


def test_x4_is_the_same_body_with_a_larger_tail(peak):
    x2 = peak.conv_flops_per_pixel(SCN(SCNConfig(scale=2)))
    x4 = peak.conv_flops_per_pixel(SCN(SCNConfig(scale=4)))
    tail_and_skip = (2 * 9 * 32 + 2 * 25 * 3) * 3  # per output channel of the tail / skip
    assert x4 - x2 == pytest.approx(tail_and_skip * (16 - 4), rel=1e-12)


def test_conditioned_model_counts_its_level_plane_and_has_no_skip(peak):
    flops = peak.conv_flops_per_pixel(SCN(SCNConfig(scale=1, num_cond_channels=1)))
    assert flops == pytest.approx(by_hand(1, cond=1), rel=1e-12)


def test_count_does_not_depend_on_the_input_side_and_leaves_the_model_alone(peak):
    model = SCN(SCNConfig(scale=2, num_blocks=2, num_residual_units=8)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small, big = peak.conv_flops_per_pixel(model, 16), peak.conv_flops_per_pixel(model, 128)
    assert small == pytest.approx(by_hand(2, units=8, inner=32, blocks=2), rel=1e-12)
    assert big == pytest.approx(small, rel=1e-12)
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert not any(m._forward_hooks for m in convs)
