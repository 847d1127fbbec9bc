"""The Scale-wise Convolutional Network (Fan, Yu, Liu, Huang, AAAI 2020).

This module holds the architecture and nothing else: the network, the reading of
hyperparameters from a state dict, and the folding of weight normalisation for
inference. The parameter names follow the published code exactly, so official
checkpoints load unchanged::

    body.0            weight-normalised 3x3 conv, input -> units
    body.1            Head: the feature pyramid (no parameters)
    body.2..N+1       N scale-wise residual blocks (body / down / up)
    body.N+2          Tail: keep the finest level (no parameters)
    body.N+3          3x3 conv, units -> 3 * scale**2
    skip.0            5x5 conv skip from the input (absent when scale == 1,
                      where the skip is the identity)

One extension, recorded in the hyperparameters as ``num_cond_channels``: a
conditioned model (denoise / dejpeg over a range of levels) takes extra input
planes (a level map) after the colour channels. They feed ``body.0`` only; the
skip always sees the colour channels, so ``num_cond_channels == 0`` is exactly
the published network.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .architecture import SCNConfig
from .tasks import condition_value  # the one level encoding, re-exported here

__all__ = [
    "SCN",
    "SCNConfig",
    "config_from_state_dict",
    "fold_weight_norm",
    "condition_value",
    "COND_LEVELS",
]

# How a conditioned model reads its level plane, in words (recorded in
# weights.toml): tasks.LEVEL_ENCODING is the encoding itself.
COND_LEVELS = {
    "denoise": "sigma / 255",
    "dejpeg": "quality / 100",
    "upscale": "(100 - quality) / 100, 0 for an input that is not a JPEG",
}




def _conv(cin: int, cout: int, k: int, weight_norm: bool, g_init: float = 1.0) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, k, padding=k // 2)
    if not weight_norm:
        return conv
    # The published code uses torch.nn.utils.weight_norm, whose parameters are
    # named weight_g / weight_v. We keep that layout with our own tiny
    # parametrisation so the names match without the deprecated helper.
    return _WNConv2d(conv, g_init)


class _WNConv2d(nn.Conv2d):
    """Conv2d with weight = g * v / ||v|| (norm over all dims but the first)."""

    def __init__(self, conv: nn.Conv2d, g_init: float) -> None:
        super().__init__(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            padding=conv.padding,
        )
        v = conv.weight.detach().clone()
        del self.weight
        self.weight_v = nn.Parameter(v)
        self.weight_g = nn.Parameter(torch.full((v.shape[0], 1, 1, 1), float(g_init)))
        with torch.no_grad():
            self.bias.zero_()

    def folded_weight(self) -> torch.Tensor:
        v = self.weight_v
        norm = v.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        return self.weight_g * v / norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self._conv_forward(x, self.folded_weight(), self.bias)


def _init_nearest(conv: nn.Conv2d, channels: int, scale: int) -> None:
    """Make a conv feeding PixelShuffle(scale) copy each input pixel to its block."""
    name = "weight_v" if isinstance(conv, _WNConv2d) else "weight"
    w = getattr(conv, name)
    k = w.shape[-1] // 2
    with torch.no_grad():
        w.zero_()
        for c in range(channels):
            w[c * scale * scale : (c + 1) * scale * scale, c, k, k] = 1.0
        if isinstance(conv, _WNConv2d):
            conv.weight_g.fill_(1.0)
        conv.bias.zero_()


def _down(x: torch.Tensor) -> torch.Tensor:
    # nn.UpsamplingBilinear2d(scale_factor=0.5) == bilinear, align_corners=True
    return F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=True)


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True)


class Head(nn.Module):
    """Builds the feature pyramid: [x, down(x), down(down(x)), ...]."""

    def __init__(self, num_scales: int) -> None:
        super().__init__()
        self.num_scales = num_scales

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # noqa: D102
        levels = [x]
        for _ in range(self.num_scales - 1):
            levels.append(_down(levels[-1]))
        return levels


class Block(nn.Module):
    """Scale-wise residual block, shared by every pyramid level."""

    def __init__(
        self, units: int, width_multiplier: float, res_scale: float, weight_norm: bool
    ) -> None:
        super().__init__()
        inner = int(units * width_multiplier)
        self.body = nn.Sequential(
            _conv(units, inner, 3, weight_norm, g_init=2.0),
            nn.ReLU(inplace=True),
            _conv(inner, units, 3, weight_norm, g_init=res_scale),
        )
        # Sequential wrappers keep the published key names (down.0 / up.0).
        self.down = nn.Sequential(_conv(units, units, 1, weight_norm))
        self.up = nn.Sequential(_conv(units, units, 1, weight_norm))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:  # noqa: D102
        res = [self.body(x) for x in xs]
        out = []
        last = len(xs) - 1
        for s, (x, r) in enumerate(zip(xs, res)):
            d = res[0] if s == 0 else _down(self.down(res[s - 1]))
            u = res[last] if s == last else _up(self.up(res[s + 1]))
            out.append(x + r + d + u)
        return out


class Tail(nn.Module):
    """Keeps the finest pyramid level."""

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:  # noqa: D102
        return xs[0]


class SCN(nn.Module):
    """Scale-wise Convolutional Network.

    Input: N x (C + cond) x H x W float in [0, 1]. Output: N x C x H*s x W*s.
    Any H, W work: they are replicate-padded bottom/right to a multiple of
    2**num_scales and the output is cropped back.
    """

    def __init__(self, config: SCNConfig | None = None, weight_norm: bool = True) -> None:
        super().__init__()
        c = config or SCNConfig()
        self.config = c
        self.scale = c.scale
        self.num_scales = c.num_scales
        self.image_mean = c.image_mean
        self.num_channels = c.num_channels
        self.num_cond_channels = c.num_cond_channels
        num_outputs = c.scale * c.scale * c.num_channels
        units = c.num_residual_units
        res_scale = 1.0 / math.sqrt(c.num_blocks)
        layers: list[nn.Module] = [
            _conv(c.num_channels + c.num_cond_channels, units, 3, weight_norm),
            Head(c.num_scales),
        ]
        layers += [
            Block(units, c.width_multiplier, res_scale, weight_norm) for _ in range(c.num_blocks)
        ]
        # Initialisation differs from upstream in two places (layout and forward
        # pass do not): the tail starts small (g=0.01, upstream 1) and the 5x5
        # skip starts as nearest-neighbour upscaling. A fresh network then
        # outputs roughly its input instead of noise of std ~6 (measured): L1
        # after 40 steps 0.09 vs 0.39 with upstream's init.
        layers += [Tail(), _conv(units, num_outputs, 3, weight_norm, g_init=0.01)]
        self.body = nn.Sequential(*layers)
        # Upstream: an empty Sequential when in == out channels, i.e. identity.
        skip: list[nn.Module] = []
        if c.num_channels != num_outputs:
            conv = _conv(c.num_channels, num_outputs, 5, weight_norm)
            _init_nearest(conv, c.num_channels, c.scale)
            skip.append(conv)
        self.skip = nn.Sequential(*skip)
        self.shuf = nn.PixelShuffle(c.scale) if c.scale > 1 else nn.Identity()

    @property
    def pad_multiple(self) -> int:
        """Input sizes are padded to a multiple of this."""
        return 2**self.num_scales

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        # As published: the body sees the replicate-padded input and is cropped
        # back before the pixel shuffle; the skip conv sees the unpadded input.
        _, _, h, w = x.shape
        m = self.pad_multiple
        ph, pw = (-h) % m, (-w) % m
        x = x - self.image_mean
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        y = self.body(xp)
        if ph or pw:
            y = y[..., :h, :w]
        img = x[:, : self.num_channels] if self.num_cond_channels else x
        return self.shuf(y + self.skip(img)) + self.image_mean


# ---------------------------------------------------------------------------
# State-dict introspection


def config_from_state_dict(state_dict: dict[str, torch.Tensor], **overrides: Any) -> SCNConfig:
    """Infer scale, blocks, units, width and conditioning from tensor shapes.

    ``num_scales`` and ``image_mean`` do not change the layout; they come from
    ``overrides`` (registry entry, keyword, CLI) or the paper's defaults.
    Raises ValueError when the dict is not an SCN.
    """
    sd = state_dict

    def weight(prefix: str) -> torch.Tensor:
        for name in (prefix + ".weight_v", prefix + ".weight"):
            if name in sd:
                return sd[name]
        raise ValueError(f"not an SCN state dict: no {prefix}.weight_v / .weight")

    head = weight("body.0")
    units, cin = int(head.shape[0]), int(head.shape[1])
    block_ids = sorted(
        {
            int(k.split(".")[1])
            for k in sd
            if k.startswith("body.") and ".body.0." in k and k.split(".")[1].isdigit()
        }
    )
    num_blocks = len(block_ids)
    if num_blocks == 0 or block_ids != list(range(2, 2 + num_blocks)):
        raise ValueError("not an SCN state dict: residual blocks body.2.. not found")
    inner = int(weight("body.2.body.0").shape[0])
    tail = weight(f"body.{num_blocks + 3}")
    num_outputs = int(tail.shape[0])
    if "skip.0.weight_v" in sd or "skip.0.weight" in sd:
        num_channels = int(weight("skip.0").shape[1])
    else:
        num_channels = num_outputs  # identity skip: scale 1
    scale2 = num_outputs // num_channels
    scale = int(round(math.sqrt(scale2)))
    if scale * scale * num_channels != num_outputs:
        raise ValueError(f"not an SCN state dict: {num_outputs} output channels")
    width = inner / units
    if width == int(width):
        width = int(width)
    values: dict[str, Any] = dict(
        scale=scale,
        num_blocks=num_blocks,
        num_residual_units=units,
        width_multiplier=width,
        num_channels=num_channels,
        num_cond_channels=cin - num_channels,
    )
    for key, val in overrides.items():
        if val is None:
            continue
        if key in values and values[key] != val:
            raise ValueError(f"checkpoint has {key}={values[key]}, but {key}={val} was requested")
        values[key] = val
    return SCNConfig(**values)


def fold_weight_norm(model: SCN) -> SCN:
    """Replace weight-normalised convs by plain ones (same output, less work).

    Works in place and returns the model. Done once at load time for inference.
    """
    for _name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, _WNConv2d):
                plain = nn.Conv2d(
                    child.in_channels,
                    child.out_channels,
                    child.kernel_size,
                    padding=child.padding,
                ).to(child.weight_v.device, child.weight_v.dtype)
                with torch.no_grad():
                    plain.weight.copy_(child.folded_weight())
                    plain.bias.copy_(child.bias)
                setattr(module, child_name, plain)
    return model
