"""The inference form of the network: same function, precision where it matters."""

from __future__ import annotations

import pytest
import torch

from scnrestore.fused import FusedSCN
from scnrestore.model import SCN, SCNConfig, fold_weight_norm

CONFIGS = [
    SCNConfig(scale=2, num_blocks=3),
    SCNConfig(scale=4, num_blocks=2),
    SCNConfig(scale=1, num_blocks=2, num_cond_channels=1),
    SCNConfig(scale=3, num_blocks=2, num_scales=1),
]


def _model(cfg: SCNConfig, seed: int = 0) -> SCN:
    torch.manual_seed(seed)
    model = SCN(cfg).eval()
    with torch.no_grad():  # away from the near-identity initialisation
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"x{c.scale}-s{c.num_scales}")
@pytest.mark.parametrize("channels_last", [False, True])
def test_fp32_equals_the_model(cfg, channels_last):
    model = _model(cfg)
    x = torch.rand(1, 3 + cfg.num_cond_channels, 37, 45)  # not a multiple of 16: padded
    with torch.inference_mode():
        ref = model(x)
        out = FusedSCN(model, "fp32", channels_last)(x)
        folded = FusedSCN(fold_weight_norm(model), "fp32", channels_last)(x)
    assert out.shape == ref.shape == (1, 3, 37 * cfg.scale, 45 * cfg.scale)
    assert out.dtype == torch.float32
    assert torch.allclose(out, ref, atol=2e-5)
    assert torch.allclose(folded, ref, atol=2e-5)


def test_bf16_keeps_the_skip_and_the_output_sum_in_fp32():
    # With the body's last conv zeroed, the output is the 5x5 skip alone: in
    # fp32 it matches the fp32 model to float rounding, where autocast (the
    # whole network in bf16) is off by bf16 rounding of pixel values.
    model = _model(SCNConfig(scale=2, num_blocks=2))
    with torch.no_grad():
        model.body[-1].weight_g.zero_()
        model.body[-1].bias.zero_()
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        ref = model(x)
        out = FusedSCN(model, "bf16", channels_last=True)(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = model(x).float()
    assert (out - ref).abs().max() < 1e-5
    assert (auto - ref).abs().max() > 1e-4


def test_bf16_stays_close_to_fp32():
    model = _model(SCNConfig(scale=2, num_blocks=3))
    x = torch.rand(1, 3, 48, 48)
    with torch.inference_mode():
        ref = model(x)
        out = FusedSCN(model, "bf16", channels_last=True)(x)
    assert out.dtype == torch.float32
    assert (out - ref).abs().mean() < 2e-3
    assert (out - ref).abs().max() > 0  # it did compute in bf16


def test_onednn_and_plain_convs_agree():
    model = _model(SCNConfig(scale=2, num_blocks=2))
    x = torch.rand(1, 3, 32, 32)
    auto = FusedSCN(model, "fp32", channels_last=True)
    if not auto.onednn:
        pytest.skip("this torch has no oneDNN pointwise conv")
    plain = FusedSCN(model, "fp32", channels_last=True, onednn=False)
    assert not FusedSCN(model, "fp32", channels_last=False).onednn  # NCHW: plain convs
    with torch.inference_mode():
        assert torch.allclose(auto(x), plain(x), atol=2e-5)


def test_unknown_precision():
    with pytest.raises(ValueError, match="int8"):
        FusedSCN(_model(SCNConfig(scale=2, num_blocks=1)), "int8")
