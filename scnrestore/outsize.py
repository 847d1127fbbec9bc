"""Any output size from networks trained for x2, x3 and x4.

``--outscale F`` (1 < F <= 16), ``--width W`` and ``--height H`` run the
trained scale at or above the factor needed (two passes above 4, the smaller
scale first: x2 then x4 for 8, x2 then x3 for 6; measured on Set5 / Set14, x2
then x4 is 0.15 / 0.08 dB better than x4 then x2; the first pass is the full
:class:`~scnrestore.chain.Chain`, with its JPEG and noise steps), then resize
the result, antialiased, to the exact size. Both ``width`` and ``height``
give exactly that size (the aspect may change); one of them keeps the
aspect, the other side rounded.

>>> from scnrestore.outsize import OutSize, Resized, passes
>>> passes(3.5), passes(8)
((4,), (2, 4))
>>> r = Resized(OutSize(scale=3.5))            # jpeg="auto", denoise=None
>>> out = r.run(read_image("photo.png")).image  # round(3.5 w) x round(3.5 h)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .chain import Chain
from .protocol import Level, Progress, Restored, Step, describe

if TYPE_CHECKING:
    from .imageio import Image

__all__ = ["OutSize", "Resized", "ResizeStep", "passes", "resize", "TRAINED", "MAX_OUTSCALE"]

#: The scales the shipped upscalers are trained for.
TRAINED = (2, 3, 4)
#: The largest --outscale: two x4 passes.
MAX_OUTSCALE = 16.0
_EPS = 1e-9


def passes(factor: float) -> tuple[int, ...]:
    """The trained scales to run for an upscale by ``factor``: the smallest
    one at or above it, or for more than 4 the pair with the smallest product
    at or above it, the smaller scale first (8: x2 then x4)."""
    if not 1.0 < factor <= MAX_OUTSCALE + _EPS:
        raise ValueError(f"an upscale factor must be above 1 and at most {MAX_OUTSCALE:g}")
    if factor <= TRAINED[-1] + _EPS:
        return (min(s for s in TRAINED if s >= factor - _EPS),)
    pairs = [p for p in itertools.product(TRAINED, repeat=2) if p[0] * p[1] >= factor - _EPS]
    return min(pairs, key=lambda p: (p[0] * p[1], p[0]))


@dataclass(frozen=True)
class OutSize:
    """The output size asked for: a factor (``scale``), or a ``width`` and/or
    ``height`` in pixels. ValueError for a mix, or values out of range."""

    scale: float | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        if self.scale is not None and (self.width or self.height):
            raise ValueError("give --outscale or --width / --height, not both")
        if self.scale is None and self.width is None and self.height is None:
            raise ValueError("an output size needs --outscale, --width or --height")
        if self.scale is not None:
            passes(self.scale)  # in range
        for name, v in (("--width", self.width), ("--height", self.height)):
            if v is not None and v < 1:
                raise ValueError(f"{name} must be a positive number of pixels, not {v}")

    def target(self, width: int, height: int) -> tuple[int, int]:
        """The output (width, height) for an input of ``width`` x ``height``."""
        if self.scale is not None:
            return max(1, round(width * self.scale)), max(1, round(height * self.scale))
        if self.width is not None and self.height is not None:
            return self.width, self.height
        if self.width is not None:
            return self.width, max(1, round(height * self.width / width))
        assert self.height is not None
        return max(1, round(width * self.height / height)), self.height

    def factor(self, width: int, height: int) -> float:
        """The upscale the input needs: the larger of the two sides' factors."""
        if self.scale is not None:
            return self.scale
        w, h = self.target(width, height)
        return max(w / width, h / height)

    @property
    def suffix(self) -> str:
        """What an output's name adds beside its input: ``_x3.5``, ``_w1920``, ``_1920x1080``."""
        if self.scale is not None:
            return f"_x{self.scale:g}"
        if self.width is not None and self.height is not None:
            return f"_{self.width}x{self.height}"
        return f"_w{self.width}" if self.width is not None else f"_h{self.height}"


@dataclass(frozen=True)
class ResizeStep(Step):
    """The antialiased resize to the exact size that ends an :class:`OutSize` run."""

    size: tuple[int, int] = (0, 0)

    def __str__(self) -> str:
        return f"resize {self.size[0]}x{self.size[1]}"

    def to_dict(self) -> dict[str, Any]:
        return {"step": str(self), "task": "resize", "level": None, "model": ""}


def resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """H x W x C pixels resized to ``height`` x ``width``, antialiased
    (Pillow's bicubic, which widens its kernel when shrinking), in float per
    channel; integer images are rounded back to their dtype."""
    from PIL import Image as PILImage

    if pixels.shape[1] == width and pixels.shape[0] == height:
        return pixels
    out = np.empty((height, width, pixels.shape[2]), np.float32)
    for c in range(pixels.shape[2]):
        plane = PILImage.fromarray(np.ascontiguousarray(pixels[:, :, c], np.float32), mode="F")
        out[:, :, c] = np.asarray(plane.resize((width, height), PILImage.Resampling.BICUBIC))
    if pixels.dtype.kind == "u":
        peak = float(np.iinfo(pixels.dtype).max)
        return np.clip(np.rint(out), 0, peak).astype(pixels.dtype)
    return out.astype(pixels.dtype, copy=False)


class Resized:
    """Upscale to any :class:`OutSize`: a :class:`~scnrestore.chain.Chain`
    at the first trained scale (its JPEG and noise steps included), a plain
    second pass where the factor is above 4, then :func:`resize`.

    ``jpeg``, ``denoise``, ``restorer_options``: as :class:`Chain` takes them
    (there is no ``model``: the registry's upscaler for each scale runs). The
    x4 chain loads at once, so a model that cannot be had fails here; the
    others when the first input that needs them comes.
    """

    task = "upscale"
    conditioned = False

    def __init__(
        self,
        size: OutSize,
        jpeg: str | float | None = "auto",
        denoise: str | float | None = None,
        **restorer_options: Any,
    ) -> None:
        self.size = size
        self.jpeg, self.denoise, self.options = jpeg, denoise, restorer_options
        self._chains: dict[tuple[int, bool], Chain] = {}
        first = passes(size.scale)[0] if size.scale is not None else TRAINED[-1]
        self._chain(first, True)

    def _chain(self, scale: int, first: bool) -> Chain:
        """The chain for one pass; later passes see a clean image (no JPEG, no noise)."""
        key = (scale, first)
        if key not in self._chains:
            steps = (self.jpeg, self.denoise) if first else ("off", None)
            self._chains[key] = Chain(scale, *steps, **self.options)
        return self._chains[key]

    @property
    def engine(self) -> Any:
        """The first chain's engine (device and precision hold for every pass)."""
        return next(iter(self._chains.values())).engine

    def run(self, image: Image, level: Level = None, progress: Progress = None) -> Restored:
        """``image`` upscaled to its :class:`OutSize`; ValueError where that
        is no upscale (a --width at or below the input's). ``level``: not
        used (as :meth:`Chain.run`)."""
        h, w = image.pixels.shape[:2]
        tw, th = self.size.target(w, h)
        factor = self.size.factor(w, h)
        if factor <= 1.0:
            raise ValueError(f"{tw}x{th} is no upscale of a {w}x{h} image")
        steps: list[Step] = []
        notes: list[str] = []
        out = image
        for i, scale in enumerate(passes(factor)):
            result = self._chain(scale, i == 0).run(out, None, progress)
            out = result.image
            steps += result.steps
            notes += result.notes
        if out.pixels.shape[:2] != (th, tw):
            out = out.with_pixels(resize(out.pixels, tw, th))
            steps.append(ResizeStep("resize", size=(tw, th)))
        out.dpi = (image.dpi[0] * tw / w, image.dpi[1] * th / h) if image.dpi else None
        return Restored(out, steps, notes, {"steps": describe(steps)})

    def models(self) -> list[str]:
        """Every model the passes may run (see :meth:`Chain.models`): those
        of the factor's passes, or where the size is given in pixels (the
        factor is each input's) those of a first pass at each trained scale
        (a second, plain pass runs one of their upscalers)."""
        if self.size.scale is not None:
            ps = passes(self.size.scale)
            chains = [self._chain(s, i == 0) for i, s in enumerate(ps)]
        else:
            chains = [self._chain(s, True) for s in TRAINED]
        return list(dict.fromkeys(n for c in chains for n in c.models()))

    def start_notes(self, level: Level) -> list[str]:
        """Nothing to say before the first file (as :meth:`Chain.start_notes`)."""
        return []
