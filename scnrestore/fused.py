"""The SCN as inference runs it: reduced precision where it is free, fused ops.

:class:`FusedSCN` computes the same function as :class:`scnrestore.model.SCN`
(within rounding) from the same weights, built once per engine:

- **Precision placement.** The 16 scale-wise blocks, where almost all of the
  work is, run in the engine's compute dtype (bf16 / fp16, or fp32). The
  first conv, the last conv, the 5x5 skip and the sum that forms the output
  run in fp32: they cost under 0.5 % of the FLOPs, and the skip carries
  nearly the whole output value, so rounding it to bf16's 8 bits showed on
  smooth, high-PSNR photos (docs/performance.md).
- **Fewer passes over memory.** Block weights are cast once, not per call as
  autocast does; ReLU is fused into the first conv of each block where
  oneDNN offers it (CPU), else applied in place; the four-way sum of a block
  level is accumulated in place; the scale-wise "down" 1x1 conv runs after
  the bilinear downsampling instead of before (both are linear and the
  resampling weights sum to one, so the result is the same), on a quarter of
  the pixels.

Weights are read when the object is made: change the model, make a new one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .model import SCN, _down, _up

if TYPE_CHECKING:
    from torch import nn

__all__ = ["FusedSCN", "compute_dtype"]

_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def compute_dtype(precision: str) -> torch.dtype:
    """The tensor dtype of a resolved precision name (fp32, bf16, fp16)."""
    try:
        return _DTYPES[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}") from None


def _plain_weight(conv: nn.Conv2d) -> torch.Tensor:
    fold = getattr(conv, "folded_weight", None)  # weight-normalised conv
    return (fold() if fold is not None else conv.weight).detach()


class _Conv:
    """A conv's weights in one dtype and layout, with an optional fused ReLU."""

    def __init__(
        self, conv: nn.Conv2d, dtype: torch.dtype, channels_last: bool, onednn: bool
    ) -> None:
        w = _plain_weight(conv).to(dtype)
        self.weight = w.contiguous(memory_format=torch.channels_last) if channels_last else w
        self.bias = None if conv.bias is None else conv.bias.detach().to(dtype)
        self.pad = int(conv.kernel_size[0]) // 2
        self.onednn = onednn

    def __call__(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        if self.onednn:
            p = [self.pad, self.pad]
            return torch.ops.mkldnn._convolution_pointwise(
                x, self.weight, self.bias, p, [1, 1], [1, 1], 1, "relu" if relu else "none", [], ""
            )
        y = F.conv2d(x, self.weight, self.bias, padding=self.pad)
        return y.relu_() if relu else y

    def add_to(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``out += conv(x)``, in one pass over ``out`` where oneDNN does it."""
        if self.onednn:
            p = [self.pad, self.pad]
            return torch.ops.mkldnn._convolution_pointwise_.binary(
                out, x, self.weight, self.bias, p, [1, 1], [1, 1], 1, "add", None, None, [], None
            )
        return out.add_(self(x))


_ONEDNN: bool | None = None


def _has_onednn_pointwise() -> bool:
    """True when torch offers oneDNN's conv with a fused post-op, and it runs."""
    global _ONEDNN
    if _ONEDNN is None:
        try:
            x = torch.ones(1, 2, 4, 4).contiguous(memory_format=torch.channels_last)
            w = -torch.ones(2, 2, 3, 3).contiguous(memory_format=torch.channels_last)
            y = torch.ops.mkldnn._convolution_pointwise(
                x, w, None, [1, 1], [1, 1], [1, 1], 1, "relu", [], ""
            )
            _ONEDNN = bool(torch.all(y == 0))
        except (AttributeError, RuntimeError):  # an older torch, or built without oneDNN
            _ONEDNN = False
    return _ONEDNN


class FusedSCN:
    """Inference form of an :class:`SCN` (see the module docstring).

    ``precision``: the blocks' compute dtype, "fp32", "bf16" or "fp16".
    ``channels_last``: lay activations out NHWC (what oneDNN on the CPU
    prefers). ``onednn``: call oneDNN's conv with a fused ReLU (None: where
    torch offers it, on the CPU with ``channels_last``). Call it on an
    N x (C + cond) x H x W float tensor in [0, 1] inside
    ``torch.inference_mode()``; it returns fp32, like ``model(x)``.
    """

    def __init__(
        self,
        model: SCN,
        precision: str = "fp32",
        channels_last: bool = False,
        onednn: bool | None = None,
    ) -> None:
        self.model = model
        self.dtype = compute_dtype(precision)
        self.layout = torch.channels_last if channels_last else torch.contiguous_format
        on_cpu = next(model.parameters()).device.type == "cpu"
        if onednn is None:
            onednn = channels_last and on_cpu and _has_onednn_pointwise()
        self.onednn = onednn

        def conv(c: nn.Conv2d, dtype: torch.dtype) -> _Conv:
            return _Conv(c, dtype, channels_last, onednn)

        body = list(model.body)
        self.head = conv(body[0], torch.float32)
        self.tail = conv(body[-1], torch.float32)
        self.skip = conv(model.skip[0], torch.float32) if len(model.skip) else None
        self.blocks = [
            tuple(conv(c, self.dtype) for c in (b.body[0], b.body[2], b.down[0], b.up[0]))
            for b in body[2 : 2 + model.config.num_blocks]
        ]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = x.float()
        _, _, h, w = x.shape
        mult = m.pad_multiple
        ph, pw = (-h) % mult, (-w) % mult
        x = (x - m.image_mean).contiguous(memory_format=self.layout)
        xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x
        feat = self.head(xp.contiguous(memory_format=self.layout)).to(self.dtype)
        levels = [feat]
        for _ in range(m.num_scales - 1):
            levels.append(_down(levels[-1]).contiguous(memory_format=self.layout))
        for block in self.blocks:
            levels = self._block(block, levels)
        y = self.tail(levels[0].float())
        if ph or pw:
            y = y[..., :h, :w]
        img = x[:, : m.num_channels] if m.num_cond_channels else x
        if self.skip is not None:
            y = y + self.skip(img.contiguous(memory_format=self.layout))
        else:
            y = y + img
        return m.shuf(y) + m.image_mean

    def _block(self, block: tuple[_Conv, ...], xs: list[torch.Tensor]) -> list[torch.Tensor]:
        # out_s = x_s + r_s + d_s + u_s, where d_s / u_s come from the
        # neighbouring levels' r (the finest level's d and the coarsest's u
        # are r itself), as in model.Block.
        body0, body2, down, up = block
        res = [body2(body0(x, relu=True)) for x in xs]
        last = len(xs) - 1
        for s, x in enumerate(xs):
            x.add_(res[s], alpha=1 + (s == 0) + (s == last))
            if s > 0:
                down.add_to(x, _down(res[s - 1]).contiguous(memory_format=self.layout))
            if s < last:
                if self.onednn:  # 2% more FLOPs at the finer level, one pass less
                    up.add_to(x, _up(res[s + 1]).contiguous(memory_format=self.layout))
                else:
                    x.add_(_up(up(res[s + 1])))
        return xs
