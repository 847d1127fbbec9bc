"""The network against facts about the published SCN code."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import REFERENCE, golden_cases
from safetensors.torch import load_file, save_file

from scnrestore import load_model
from scnrestore.checkpoint import CheckpointError, load_state_dict
from scnrestore.model import SCN, SCNConfig, config_from_state_dict, fold_weight_norm


@pytest.mark.parametrize("case", golden_cases(), ids=lambda c: c["checkpoint"])
def test_golden_outputs(case):
    """Published-format checkpoints reproduce the published forward pass (1e-5)."""
    model = load_model(REFERENCE / case["checkpoint"], num_scales=case["num_scales"])
    io = load_file(str(REFERENCE / case["io"]))
    assert list(io["input"].shape) == case["input_shape"]
    with torch.inference_mode():
        out = model(io["input"])
    assert list(out.shape) == case["output_shape"]
    assert (out - io["output"]).abs().max().item() < 1e-5


@pytest.mark.parametrize("case", golden_cases(), ids=lambda c: c["checkpoint"])
def test_golden_unfolded_and_wrong_num_scales(case):
    """Weight norm as trained (unfolded) gives the same; a wrong pyramid does not."""
    sd = load_state_dict(REFERENCE / case["checkpoint"])
    io = load_file(str(REFERENCE / case["io"]))
    cfg = config_from_state_dict(sd, num_scales=case["num_scales"])
    assert (cfg.scale, cfg.num_blocks, cfg.num_residual_units, cfg.width_multiplier) == (
        case["scale"], case["num_blocks"], case["num_residual_units"], case["width_multiplier"],
    )  # fmt: skip
    model = SCN(cfg).eval()
    model.load_state_dict(sd)
    with torch.inference_mode():
        assert (model(io["input"]) - io["output"]).abs().max() < 1e-5
    wrong = load_model(REFERENCE / case["checkpoint"], num_scales=case["num_scales"] + 1)
    with torch.inference_mode():
        assert (wrong(io["input"]) - io["output"]).abs().max() > 1e-3


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_upstream_layout_and_param_count(scale):
    ref = json.loads((REFERENCE / "upstream_layout.json").read_text())
    layout = ref["layouts"][f"scale{scale}"]
    cfg = {k: v for k, v in ref["config"].items()}
    model = SCN(SCNConfig(scale=scale, **cfg))
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert shapes == layout["keys"]
    assert sum(p.numel() for p in model.parameters()) == layout["params"]
    inferred = config_from_state_dict(model.state_dict())
    assert inferred == SCNConfig(scale=scale, **cfg)


def test_fold_weight_norm_is_exact():
    torch.manual_seed(0)
    model = SCN(SCNConfig(scale=3, num_blocks=2, num_residual_units=8, width_multiplier=2)).eval()
    x = torch.rand(1, 3, 21, 19)
    with torch.inference_mode():
        before = model(x)
        after = fold_weight_norm(model)(x)
    assert not any(k.endswith("weight_v") for k in model.state_dict())
    assert (before - after).abs().max() < 1e-5


def _case():
    case = golden_cases()[0]
    sd = torch.load(REFERENCE / case["checkpoint"], weights_only=True)["model_state_dict"]
    io = load_file(str(REFERENCE / case["io"]))
    return case, sd, io


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"state_dict": sd},
        lambda sd: {"params_ema": sd, "params": {k: v * 0 for k, v in sd.items()}},
        lambda sd: {"module." + k: v for k, v in sd.items()},
        lambda sd: {"model_state_dict": {"module." + k: v for k, v in sd.items()}, "epoch": 3},
    ],
    ids=["state_dict", "params_ema", "module_prefix", "published_dataparallel"],
)
def test_checkpoint_wrappings(tmp_path, wrap):
    case, sd, io = _case()
    path = tmp_path / "wrapped.pth"
    torch.save(wrap(sd), path)
    model = load_model(path, num_scales=case["num_scales"])
    with torch.inference_mode():
        assert (model(io["input"]) - io["output"]).abs().max() < 1e-5


def test_safetensors_checkpoint_records_num_scales(tmp_path):
    case, sd, io = _case()
    path = tmp_path / "m.safetensors"
    meta = {"model_config": json.dumps({"num_scales": case["num_scales"]})}
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path), meta)
    model = load_model(path)  # num_scales from the file's own metadata
    with torch.inference_mode():
        assert (model(io["input"]) - io["output"]).abs().max() < 1e-5


def test_not_an_scn_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(3, 3, 3, 3)}, str(path))
    with pytest.raises(CheckpointError, match="not an SCN"):
        load_model(path)


def test_conditioned_model_skip_sees_colour_only():
    cfg = SCNConfig(scale=2, num_blocks=1, num_residual_units=8, width_multiplier=1,
                    num_scales=2, num_cond_channels=1)  # fmt: skip
    model = SCN(cfg).eval()
    sd = model.state_dict()
    assert sd["body.0.weight_v"].shape[1] == 4 and sd["skip.0.weight_v"].shape[1] == 3
    assert config_from_state_dict(sd).num_cond_channels == 1
    with torch.inference_mode():
        assert model(torch.rand(1, 4, 10, 12)).shape == (1, 3, 20, 24)


def test_fresh_network_starts_near_its_input():
    """Our initialisation: a fresh x2 net is close to nearest-neighbour upscaling."""
    torch.manual_seed(0)
    model = SCN(SCNConfig(scale=2)).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.inference_mode():
        y = model(x)
    nearest = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    assert (y - nearest).abs().mean() < 0.1
