"""The tiled inference engine: one image in, one restored image out.

The image is cut into overlapping tiles; each tile goes through the network
(optionally with x8 self-ensemble); tile outputs are blended with separable
weights that form a partition of unity, so the stitched image has no seams.

Blending per axis, for two neighbouring tiles overlapping by ``O`` output
pixels: each tile discards the outer quarter of the overlap (where its
receptive field is cut off), and the middle half is a linear cross-fade.

Memory: the output is written into a buffer of the output's own dtype
(uint8 / uint16 / float32), or into one the caller passes (``out=``). Only one
band of tile rows is held in float32 while it is being blended (allocated once,
on the device, and converted there), never a float copy of the whole output.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .runtime import resolve_device, resolve_precision

if TYPE_CHECKING:
    import torch

    from .descriptor import ModelDescriptor
    from .model import SCN, SCNConfig

__all__ = ["Engine", "tile_starts", "even_tile", "blend_weights", "DEFAULT_OVERLAP"]

# Input pixels shared by neighbouring tiles. Measured (benchmarks/seams.py):
# with 32 px the tiled output of the x2 network is > 50 dB from whole-image
# inference; 16 px is not enough for SCN's pyramid.
DEFAULT_OVERLAP = 32
# On the CPU, activations come from glibc's malloc. A buffer above its mmap
# threshold (at most 32 MiB) is a fresh mapping that the kernel zeroes page by
# page on every call, and a freed heap top is handed back to the kernel; at
# 512 px tiles that was a third of the time on top of the convolutions
# (docs/performance.md). So the CPU tile is the largest whose biggest
# activation, a block's inner features, stays under that threshold (352 px in
# bf16, 256 in fp32 for the paper-size network), and the engine asks malloc
# to keep what it frees (:func:`keep_freed_memory`).
CPU_BUFFER_BYTES = 32 << 20
MIN_TILE = 64

ProgressFn = Callable[[int, int], None]


def tile_starts(length: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` with overlap.

    Every start is a multiple of ``multiple``: SCN's pyramid halves the image
    ``num_scales`` times, so a tile starting elsewhere sees a shifted pyramid
    grid and computes something else than whole-image inference (measured:
    30-38 dB instead of > 60 dB when a side is not a multiple of 2**num_scales).
    The last tile ends at ``length``, less than ``multiple`` pixels short of
    ``tile``; it is then padded exactly as the whole image is. With
    ``multiple=1`` every tile has the full size.
    """
    if tile >= length:
        return [0]
    m = max(1, multiple)
    stride = max(m, (tile - overlap) // m * m)
    last = -(-(length - tile) // m) * m  # the first aligned start whose tile reaches the end
    starts = list(range(0, last, stride))
    starts.append(last)
    return starts


def even_tile(length: int, tile: int, overlap: int, multiple: int = 1) -> int:
    """The smallest tile side <= ``tile`` (rounded up to ``multiple``) that covers
    ``length`` with as many tiles as ``tile`` needs, spreading them evenly.

    Without this, the last tile aligned with the end can nearly duplicate its
    neighbour: a 768 px side in 512 px tiles would compute 1024 px; evenly it
    computes 2 x 400.
    """
    if tile >= length:
        return length
    n = math.ceil((length - overlap) / (tile - overlap))
    side = math.ceil((length + (n - 1) * overlap) / n)
    side = math.ceil(side / multiple) * multiple
    return min(max(side, 2 * overlap), tile, length)


def blend_weights(starts: list[int], tile: int, length: int, scale: int) -> list[np.ndarray]:
    """Per-tile 1-D blending weights in output pixels; they sum to 1 everywhere."""
    out_len = length * scale
    ramps = []
    for i, s in enumerate(starts):
        a, b = s * scale, min(s + tile, length) * scale
        pos = np.arange(a, b, dtype=np.float64) + 0.5
        r = np.ones(b - a)
        if i > 0:  # left/top edge is interior: fade in over the overlap
            ov = (starts[i - 1] + tile) * scale - a
            if ov > 0:
                r = np.minimum(r, np.clip((pos - a - ov / 4) / (ov / 2), 0.0, 1.0))
        if i < len(starts) - 1:
            ov = b - starts[i + 1] * scale
            if ov > 0:
                r = np.minimum(r, np.clip((b - pos - ov / 4) / (ov / 2), 0.0, 1.0))
        ramps.append(r)
    total = np.zeros(out_len)
    for s, r in zip(starts, ramps):
        total[s * scale : s * scale + len(r)] += r
    if np.any(total <= 0):  # pragma: no cover - guarded by overlap <= tile / 2
        raise ValueError("tile overlap too large for the tile size")
    return [
        (r / total[s * scale : s * scale + len(r)]).astype(np.float32)
        for s, r in zip(starts, ramps)
    ]


def _is_oom(exc: BaseException) -> bool:
    return "out of memory" in str(exc).lower() or type(exc).__name__ == "OutOfMemoryError"


@dataclass
class Engine:
    """Runs an SCN over images of any size, in tiles.

    ``model``: the network, or ``load_model``'s descriptor of it. ``tile``:
    tile side in input pixels; None = automatic from memory, 0 = whole image.
    ``overlap``: input pixels shared by neighbouring tiles.
    ``channels_last``: lay activations out NHWC (None: on the CPU, where
    oneDNN wants it; CUDA cards may prefer it too, benchmarks/peak.py
    ``--channels-last`` measures).
    """

    model: SCN | ModelDescriptor
    device: str | torch.device = "auto"
    precision: str = "auto"
    tile: int | None = None
    overlap: int = DEFAULT_OVERLAP
    tta: bool = False
    channels_last: bool | None = None

    def __post_init__(self) -> None:
        import torch

        from .descriptor import ModelDescriptor
        from .fused import FusedSCN

        if isinstance(self.model, ModelDescriptor):  # load_model's: the network it wraps
            self.model = self.model.model
        self.device = (
            self.device if isinstance(self.device, torch.device) else resolve_device(self.device)
        )
        self.precision = resolve_precision(self.precision, self.device)
        if self.overlap < 0:
            raise ValueError("tile overlap must be >= 0")
        if self.tile is not None and self.tile < 0:
            raise ValueError("tile size must be >= 0 (0 = whole image)")
        self.model = self.model.to(self.device).eval()
        if self.channels_last is None:
            self.channels_last = self.device.type == "cpu"
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            keep_freed_memory()
        self._net = FusedSCN(self.model, self.precision, channels_last=self.channels_last)
        self.scale = int(self.model.scale)
        self._multiple = int(self.model.pad_multiple)

    # -- tile size ----------------------------------------------------------

    def auto_tile(self, width: int = 0) -> int:
        """Tile side from available memory (CUDA: free memory; CPU: a bound).

        ``width``: the image's, for the band of blended output rows that is
        kept on the device (one tile row tall, the output's full width).
        """
        import torch

        if self.device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(self.device)
            cfg = self.model.config
            s = self.scale
            # Peak activations per input pixel (fp32), with headroom: the
            # inner conv of a block plus the pyramid of features and output.
            per_px = 4 * (cfg.num_residual_units * (cfg.width_multiplier + 4) * 1.34 + 3 * s**2 * 2)
            # side^2 * per_px + side * b <= free / 2
            b = 4 * 3 * s * s * width  # band bytes per tile row of input
            side = int((math.sqrt(b * b + 4 * per_px * free * 0.5) - b) / (2 * per_px))
            return max(MIN_TILE, min(2048, side - side % self._multiple))
        return cpu_tile(self.model.config, self.precision, self._multiple)

    # -- model call ---------------------------------------------------------

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        with torch.inference_mode():
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if not self.tta:
                return self._net(x)
            acc = None
            for k in range(8):
                t = x.transpose(2, 3) if k & 4 else x
                t = torch.rot90(t, k & 3, (2, 3))
                y = self._net(t.contiguous())
                y = torch.rot90(y, -(k & 3), (2, 3))
                y = y.transpose(2, 3) if k & 4 else y
                acc = y if acc is None else acc + y
            return acc / 8

    # -- public -------------------------------------------------------------

    def run(
        self,
        image: np.ndarray,
        cond: float | None = None,
        progress: ProgressFn | None = None,
        out: np.ndarray | None = None,
        keep: float = 0.0,
        keep_luma_only: bool = False,
    ) -> np.ndarray:
        """Restore an H x W x 3 array (uint8, uint16 or float in [0, 1]).

        Returns an array of the same dtype, H*scale x W*scale x 3: ``out`` if
        given (any array of that shape, a view into a wider one included).
        ``cond`` fills the level plane of a conditioned model.
        ``keep`` (scale 1 only): move the output toward the input by that
        share before it is rounded to the image's dtype (all channels, or by
        the BT.601 luma difference only with ``keep_luma_only``; see
        ``api.blend_input``). Rounding first would lose the blend wherever
        input and output differ by a level or two, which is most pixels of
        a nearly clean photo.
        On a CUDA/MPS out-of-memory error the tile is halved and the image
        is run again.
        """
        if image.ndim != 3 or image.shape[2] != self.model.num_channels:
            raise ValueError(
                f"expected an H x W x {self.model.num_channels} image, got shape {image.shape}"
            )
        if bool(self.model.num_cond_channels) != (cond is not None):
            raise ValueError(
                "this model needs a level (sigma / quality)"
                if cond is None
                else "this model takes no level"
            )
        h, w, c = image.shape
        if out is None:
            out = np.empty((h * self.scale, w * self.scale, c), dtype=image.dtype)
        elif out.shape != (h * self.scale, w * self.scale, c):
            raise ValueError(
                f"out has shape {out.shape}, expected {(h * self.scale, w * self.scale, c)}"
            )
        if keep and self.scale != 1:
            raise ValueError("keep (blending the input back) needs scale 1")
        tile = self.auto_tile(w) if self.tile is None else self.tile
        while True:
            try:
                return self._run(image, tile, cond, progress, out, keep, keep_luma_only)
            except Exception as exc:  # RuntimeError / torch.OutOfMemoryError
                if not (_is_oom(exc) and self.device.type != "cpu"):
                    raise
                h, w = image.shape[:2]
                current = tile or max(h, w)
                if current <= MIN_TILE:
                    raise
                tile = max(MIN_TILE, current // 2)
                self._empty_cache()

    def _empty_cache(self) -> None:
        import torch

        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        elif self.device.type == "mps":  # pragma: no cover - no MPS here
            torch.mps.empty_cache()

    def _run(
        self,
        image: np.ndarray,
        tile: int,
        cond: float | None,
        progress: ProgressFn | None,
        out: np.ndarray,
        keep: float = 0.0,
        keep_luma_only: bool = False,
    ) -> np.ndarray:
        import torch

        h, w, c = image.shape
        s = self.scale
        dev = self.device
        th, tw, ys, xs = self._grid(h, w, tile)
        wy = [torch.from_numpy(a).to(dev)[:, None] for a in blend_weights(ys, th, h, s)]
        wx = [torch.from_numpy(a).to(dev)[None, :] for a in blend_weights(xs, tw, w, s)]
        to_host, to_float, from_float = _converters(image.dtype, narrow=dev.type != "cpu")
        total, done = len(ys) * len(xs), 0
        # Blending and conversion happen on the device, in a band of output rows
        # [band_start, band_start + th * s) one tile row tall, allocated once:
        # tiles go in as the image's own dtype and rows come back converted, so
        # the host only copies (on a GPU, host-side float work capped the rate).
        # Laid out as the model's output is.
        layout = torch.channels_last if self.channels_last else torch.contiguous_format
        band = torch.empty((1, c, min(th, h) * s, w * s), device=dev, memory_format=layout)
        band.zero_()
        band_start = 0
        for iy, y0 in enumerate(ys):
            y1 = min(y0 + th, h)
            for ix, x0 in enumerate(xs):
                x1 = min(x0 + tw, w)
                y = self._tile_output(image[y0:y1, x0:x1], cond, to_host, to_float)
                rows = slice(y0 * s - band_start, y1 * s - band_start)
                band[:, :, rows, x0 * s : x1 * s].addcmul_(y, wy[iy] * wx[ix])
                done += 1
                if progress:
                    progress(done, total)
            # Rows above the next tile row are final: write them out, move the
            # rest (the overlap with the next tile row) to the top of the band.
            final = (ys[iy + 1] if iy + 1 < len(ys) else h) * s - band_start
            if keep:
                _blend_rows(band[:, :, :final], image[band_start : band_start + final],
                            keep, keep_luma_only, to_host, to_float)  # fmt: skip
            out[band_start : band_start + final] = from_float(band[:, :, :final])
            band_start += final
            if iy + 1 == len(ys):
                break
            rest = y1 * s - band_start
            if rest > 0:
                band[:, :, :rest] = band[:, :, final : final + rest].clone()
            band[:, :, max(rest, 0) :] = 0
        return out

    def _grid(self, h: int, w: int, tile: int) -> tuple[int, int, list[int], list[int]]:
        """The tile height and width for an ``h`` x ``w`` image and ``tile``
        (0: whole image), and the tiles' start rows and columns."""
        m = self._multiple
        if tile and tile > 0:
            # A multiple of the pyramid's period: no tile edge inside the image is padded.
            tile = max(MIN_TILE, tile - tile % m)
            overlap = min(self.overlap, tile // 2)
            th, tw = even_tile(h, tile, overlap, m), even_tile(w, tile, overlap, m)
        else:
            th, tw, overlap = h, w, 0
        return th, tw, tile_starts(h, th, overlap, m), tile_starts(w, tw, overlap, m)

    def _tile_output(
        self, pixels: np.ndarray, cond: float | None, to_host: Any, to_float: Any
    ) -> torch.Tensor:
        """One tile's pixels through the network, its level plane added, on the device."""
        import torch

        patch = torch.from_numpy(to_host(pixels)).to(self.device)
        patch = to_float(patch.permute(2, 0, 1)[None])
        if cond is not None:
            plane = torch.full_like(patch[:, :1], float(cond))
            patch = torch.cat([patch] + [plane] * self.model.num_cond_channels, 1)
        return self._forward(patch)


def cpu_tile(config: SCNConfig, precision: str, multiple: int = 16) -> int:
    """The CPU tile side whose largest activation fits in :data:`CPU_BUFFER_BYTES`."""
    inner = int(config.num_residual_units * config.width_multiplier)
    itemsize = 4 if precision == "fp32" else 2
    side = int(math.sqrt(CPU_BUFFER_BYTES / (inner * itemsize))) - 1
    return max(MIN_TILE, side - side % multiple)


_MALLOC_TUNED = False


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to reuse freed activation buffers (Linux, once).

    Sets its mmap threshold to the 32 MiB maximum (buffers up to that size come
    from the heap and are reused) and its trim threshold to 1 GiB (a freed heap
    top stays mapped, up to that size). Elsewhere, or with
    ``SCNRESTORE_MALLOC_TUNING=0`` in the environment, it does nothing.
    Returns whether the settings are in force.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    if os.environ.get("SCNRESTORE_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith(
        "linux"
    ):
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_trim_threshold, 1 << 30) == 1
        ok = libc.mallopt(m_mmap_threshold, CPU_BUFFER_BYTES) == 1 and ok
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    _MALLOC_TUNED = ok
    return ok


BT601_LUMA = (0.299, 0.587, 0.114)  # Y weights of R, G, B (also api.blend_input's)


def _blend_rows(
    rows: torch.Tensor,
    src: np.ndarray,
    keep: float,
    luma_only: bool,
    to_host: Callable[[np.ndarray], np.ndarray],
    to_float: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    """Move float output ``rows`` (1 x C x H x W, clipped to [0, 1] first)
    toward the input rows ``src`` (H x W x C, the image's dtype) by ``keep``,
    in place."""
    import torch

    x = to_float(torch.from_numpy(to_host(src)).to(rows.device).permute(2, 0, 1)[None])
    rows.clamp_(0.0, 1.0)  # as the output would be: keep 1 gives back the input
    diff = x.sub_(rows)
    if luma_only and rows.shape[1] == 3:
        w = torch.tensor(BT601_LUMA, device=rows.device).view(1, 3, 1, 1)
        diff = (diff * w).sum(1, keepdim=True)
    rows.add_(diff, alpha=keep)


def _converters(
    dtype: np.dtype, narrow: bool = False
) -> tuple[
    Callable[[np.ndarray], np.ndarray],
    Callable[[torch.Tensor], torch.Tensor],
    Callable[[torch.Tensor], np.ndarray],
]:
    """For uint8, uint16 and float images: (tile -> array torch takes as is,
    that tensor on the device -> float32 in [0, 1], float rows -> host array).

    Tiles cross to the device in their own width (bytes for uint8) and are
    converted there. ``from_float(a)`` takes 1 x C x H x W float rows (scratch:
    changed in place) and returns H x W x C values ``dtype`` holds exactly.
    ``narrow``: convert them to the image's width on the device first (bytes
    for uint8; int32 for 16-bit, torch >= 2.2 has no general uint16), so that
    little crosses back from a GPU. Without it they come back as float32 and
    numpy casts them while they are copied into the output, which on a CPU is
    5x faster than torch's cast.
    """
    import torch

    dtype = np.dtype(dtype)
    if dtype.kind == "u":
        peak = float(np.iinfo(dtype).max)
        carrier = torch.uint8 if dtype == np.uint8 else torch.int32

        def to_host(a: np.ndarray) -> np.ndarray:
            if dtype == np.uint8:  # torch wants writable arrays (a decoded image may not be)
                return np.require(a, requirements=["C_CONTIGUOUS", "WRITEABLE"])
            return a.astype(np.int32)

        def to_float(t: torch.Tensor) -> torch.Tensor:
            return t.float().div_(peak)

        def from_float(a: torch.Tensor) -> np.ndarray:
            a = a.mul_(peak).round_().clamp_(0, peak)
            if narrow:
                a = a.to(carrier)
            return a[0].permute(1, 2, 0).cpu().numpy()

        return to_host, to_float, from_float
    if dtype.kind == "f":
        # NaN and out-of-range values would spread through the convolutions:
        # NaN -> 0, the rest clipped to [0, 1] like the output.
        def to_host_f(a: np.ndarray) -> np.ndarray:
            return a.astype(np.float32)  # a copy: MPS has no float64

        def to_float_f(t: torch.Tensor) -> torch.Tensor:
            return torch.nan_to_num(t, nan=0.0).clamp_(0.0, 1.0)

        def from_float_f(a: torch.Tensor) -> np.ndarray:
            return a.clamp_(0.0, 1.0)[0].permute(1, 2, 0).cpu().numpy()

        return to_host_f, to_float_f, from_float_f
    raise ValueError(f"unsupported image dtype {dtype}")
