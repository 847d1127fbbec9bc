"""Starting a run from another run's weights (``--init``): every tensor whose
shape fits, a first conv grown by zero planes or shrunk by folding a level
plane into its bias."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["init_from", "BLIND_INIT_SIGMA"]


# The level a blind model starts from when grown from a σ-conditioned one: the
# told σ at which the Gaussian denoiser did best on real camera noise.
BLIND_INIT_SIGMA = 10.0


def _fold_level_plane(src: dict[str, Any], own: dict[str, Any], fits: dict[str, Any]) -> dict:
    """A blind model grown from a conditioned one (the real-noise denoiser from
    the σ-conditioned one): the first conv loses its level plane, and that
    plane's constant contribution at ``BLIND_INIT_SIGMA`` moves into the conv's
    bias, so the new network computes what the old one did at that σ (exactly,
    but for the one-pixel border the zero padding touches)."""
    from ..model import condition_value

    folded: dict[str, Any] = {}
    for k, v in src.items():
        if not k.endswith(".weight_v") or k in fits:
            continue
        o = own.get(k)
        if o is None or o.ndim != 4 or v.shape[0] != o.shape[0] or v.shape[1] <= o.shape[1]:
            continue
        stem = k[: -len("weight_v")]
        g, b = src[stem + "weight_g"].float(), src[stem + "bias"].float()
        w = g * v.float() / v.float().flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        n = o.shape[1]
        # The network subtracts its image mean (0.5) from every input plane.
        level = condition_value("denoise", BLIND_INIT_SIGMA) - 0.5
        bias = b + level * w[:, n:].sum(dim=(1, 2, 3))
        folded[stem + "bias"] = bias.to(own[stem + "bias"].dtype)
        kept = w[:, :n]
        folded[k] = kept.to(o.dtype)
        folded[stem + "weight_g"] = kept.flatten(1).norm(dim=1).view(-1, 1, 1, 1).to(o.dtype)
    return folded


def init_from(model: Any, path: str) -> None:
    """Initialise from another run's weights: every tensor whose shape fits.

    The usual use: start x3/x4 from a trained x2 body (all but the tail and skip).
    """
    import torch

    from ..checkpoint import load_state_dict

    src = load_state_dict(path)
    own = model.state_dict()
    fits = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    # A conditioned model grown from an unconditioned one (JPEG-aware x2 from
    # the plain x2): the first conv gains input planes. Their weights start
    # at zero, so the new network computes exactly what the old one did.
    for k, v in src.items():
        o = own.get(k)
        if (
            k not in fits
            and o is not None
            and o.ndim == v.ndim == 4
            and o.shape[0] == v.shape[0]
            and o.shape[2:] == v.shape[2:]
            and o.shape[1] > v.shape[1]
        ):
            grown = torch.zeros_like(o)
            grown[:, : v.shape[1]] = v.to(o.dtype)
            fits[k] = grown
    fits.update(_fold_level_plane(src, own, fits))
    own.update(fits)
    model.load_state_dict(own)
    print(f"initialised {len(fits)}/{len(own)} tensors from {path}", file=sys.stderr)
