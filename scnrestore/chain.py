"""Upscaling real photos: JPEG artefacts, noise and scale in one pass.

Most photos people upscale are JPEGs; some are noisy. A photo acquires its
defects in this order: sensor noise, then (often) a resize, then JPEG
compression when it is saved. :class:`Chain` undoes them in reverse:

1. JPEG artefacts first (the last thing done to the file), then
2. noise (``denoise``; off unless asked), then
3. the upscale.

When a JPEG-aware upscaler ships for the scale (``scn-x2-jpeg``, ``scn-x4-jpeg``: SR networks
trained on JPEG-compressed low-resolution images and told their quality on an
extra input plane) and no denoising is asked, steps 1 and 3 are one network
pass: the joint model sees the blocks and the detail together, which a cascade
of two networks cannot. A near-lossless JPEG (from the model's ``plain_from``
quality: 98 at x2) takes the plain upscaler alone, where dejpeg then upscale
was measured to gain nothing. Otherwise each step is its own network. Between steps
the image stays in memory in float (no 8-bit rounding, no file); only the last
step's output is rounded to the input's bit depth.

A JPEG's quality is read from its quantisation tables (as ``dejpeg --quality
auto`` does); a JPEG whose tables cannot be read is restored as a clean image,
with a note. An input that is not a JPEG takes the plain upscaler: one step,
exactly what ``Restorer("upscale")`` gives.

>>> from scnrestore import Chain, read_image, write_image
>>> c = Chain(scale=2)                      # jpeg="auto", denoise=None
>>> result = c.run(read_image("photo.jpg"))
>>> describe(result.steps)                  # e.g. 'x2 jpeg q74'
>>> write_image("photo_x2.png", result.image)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import weights
from .api import Restorer
from .descriptor import model_name
from .levels import parse_level
from .protocol import Level, Progress, Restored, Step, describe
from .tasks import JPEG_QUALITIES, LEVEL_RANGES

if TYPE_CHECKING:
    from .descriptor import ModelDescriptor
    from .imageio import Image
    from .model import SCN

__all__ = ["Chain", "Chained", "Step", "describe", "jpeg_quality_of", "parse_jpeg", "parse_denoise"]

#: What :meth:`Chain.run` gives (the protocol's :class:`~scnrestore.protocol.Restored`).
Chained = Restored

#: ``--jpeg``: "auto", "off" (None) or a quality 5..100; ValueError otherwise.
parse_jpeg = partial(parse_level, task="dejpeg", step=True)
#: ``--denoise``: "off" (None), "auto" or a sigma within the denoiser's range.
parse_denoise = partial(parse_level, task="denoise", step=True)


def jpeg_quality_of(image: Image) -> tuple[float | None, str | None]:
    """(quality, note): the JPEG quality from the file's quantisation tables,
    or None for an input that is not a JPEG; a note when a JPEG's tables
    cannot be read (it is then treated as clean)."""
    from .estimate import estimate_jpeg_quality

    if image.format != "JPEG":
        return None, None
    try:
        q = estimate_jpeg_quality(image.info.get("quantization"))  # type: ignore[arg-type]
    except (ValueError, TypeError, KeyError) as exc:
        return None, f"JPEG quality unknown ({exc}): restored as a clean image"
    return float(q), None


class Chain:
    """Upscale with the JPEG and noise steps a photo needs, in memory.

    ``jpeg``: "auto" (a JPEG file's quality from its tables; other inputs are
    clean), None / "off" (treat every input as clean) or a quality 5..100
    (every input is a JPEG of that quality). ``denoise``: None / "off", "auto"
    (sigma estimated per image, after the JPEG step) or a sigma. ``model``:
    the upscale network (registry name, file or loaded SCN); by default the
    registry's plain upscaler for clean inputs and its JPEG-aware one for
    JPEGs where one ships. ``restorer_options`` go to every
    :class:`~scnrestore.api.Restorer` (device, precision, tile, tile_overlap,
    tta, num_scales).
    """

    def __init__(
        self,
        scale: int = 4,
        jpeg: str | float | None = "auto",
        denoise: str | float | None = None,
        model: str | Path | SCN | ModelDescriptor | None = None,
        **restorer_options: Any,
    ) -> None:
        self.scale = int(scale)
        self.jpeg = parse_jpeg(jpeg)
        self.denoise = parse_denoise(denoise)
        # denoise auto: the blind real-noise model where the registry ships one
        # (it reads the noise itself), looked up once, not per image
        self._blind = weights.auto_denoise_model() if self.denoise == "auto" else None
        # The JPEG-aware upscaler for this scale where it ships, looked up once;
        # the step models on first need (see _default): no registry per image.
        jname = weights.jpeg_model_name(self.scale)
        self._joint_name = jname if jname in weights.load_registry() else None
        self._defaults: dict[str, str] = {}
        self.model = model
        self.options = restorer_options
        self._restorers: dict[tuple[str, str], Restorer] = {}
        # The upscaler for clean inputs now: a model that cannot be had fails
        # here, before any file (the JPEG-aware and dejpeg / denoise networks
        # load when the first input that needs them comes).
        self._plain = self.restorer("upscale", self._upscaler(jpeg=False)[1])

    @property
    def task(self) -> str:
        return "upscale"

    @property
    def engine(self) -> Any:
        """The clean-input upscaler's engine (its device and precision hold for every step)."""
        return self._plain.engine

    @property
    def conditioned(self) -> bool:
        """A chain is told no level: it reads each input's JPEG quality itself."""
        return False

    # -- which networks -------------------------------------------------------

    def _upscaler(self, jpeg: bool) -> tuple[str, Any]:
        """(name, model) of the upscale network for a clean input, or for a
        JPEG (the JPEG-aware one where it ships; the caller checks it fits)."""
        if self.model is not None:
            return model_name(self.model), self.model
        if jpeg and self._joint_name is not None:
            return self._joint_name, self._joint_name
        name = self._default("upscale")
        return name, name

    def _default(self, task: str) -> str:
        """The registry's model for ``task`` (at this scale), looked up on
        first need and then kept; RegistryError where none ships."""
        if task not in self._defaults:
            self._defaults[task] = weights.default_model(task, self.scale)
        return self._defaults[task]

    def restorer(self, task: str, model: Any = None) -> Restorer:
        """The (cached) Restorer for one step."""
        key = (task, str(model))
        if key not in self._restorers:
            self._restorers[key] = Restorer(task, model, scale=self.scale, **self.options)
        return self._restorers[key]

    def _jpeg_route(self, quality: float) -> tuple[tuple[str, Any] | None, float | None]:
        """How a JPEG of ``quality`` is upscaled (no denoising asked): the
        JPEG-aware upscaler if one ships for this scale and its ``joint_range``
        holds the quality (else None: dejpeg, then the plain upscaler), and the
        quality left for the steps (None where the registry's ``plain_from``
        sends a near-lossless JPEG to the plain upscaler alone: measured, the
        JPEG steps gain nothing there)."""
        name, model = self._upscaler(jpeg=True)
        r = self.restorer("upscale", model)
        entry = r.model.entry
        plain_from = entry.plain_from if entry and self.model is None else None
        if plain_from is not None and quality >= plain_from:
            return None, None
        if not r.conditioned:
            return None, quality
        lo, hi = (entry and entry.joint_range) or JPEG_QUALITIES
        return ((name, model) if lo <= quality <= hi else None), quality

    def plan(self, image: Image) -> tuple[list[Step], list[str]]:
        """The steps for ``image`` (a denoise "auto" level is settled when it runs)."""
        notes: list[str] = []
        quality: float | None
        if self.jpeg == "auto":
            quality, note = jpeg_quality_of(image)
            if note:
                notes.append(note)
        else:
            quality = self.jpeg  # type: ignore[assignment]
        return self.plan_for(quality), notes

    def plan_for(self, quality: float | None) -> list[Step]:
        """The steps for an input that is a JPEG of ``quality`` (None: clean)."""
        joint = None
        if quality is not None and self.denoise is None:
            joint, quality = self._jpeg_route(quality)
        steps: list[Step] = []
        if quality is not None and joint is None:
            steps.append(Step("dejpeg", quality, model=self._default("dejpeg")))
        if self.denoise is not None:
            sigma = None if self.denoise == "auto" else float(self.denoise)  # type: ignore[arg-type]
            model = self._blind or self._default("denoise")
            steps.append(Step("denoise", sigma, model=model))
        name, _ = joint or self._upscaler(jpeg=False)
        steps.append(Step("upscale", quality if joint else None, self.scale, name))
        return steps

    def _model_for(self, step: Step) -> Any:
        if step.task != "upscale":
            return None
        if self.model is not None:
            return self.model
        return step.model

    # -- running ---------------------------------------------------------------

    def run(self, image: Image, level: Level = None, progress: Progress = None) -> Restored:
        """Restore ``image`` through its planned steps; metadata as Restorer.restore.

        ``level`` is not used: a chain reads each input's JPEG quality itself
        (or is told one, ``jpeg=Q``). Its ``info`` records the steps that ran.
        """
        steps, notes = self.plan(image)
        if len(steps) == 1:  # one network: exactly what Restorer.restore gives
            r = self.restorer("upscale", self._model_for(steps[0]))
            out = r.restore(image, steps[0].level, progress)
        else:
            pixels, steps = self._run_steps(image.pixels, steps, progress)
            out = image.with_pixels(pixels)
            if image.dpi and self.scale > 1:
                out.dpi = (image.dpi[0] * self.scale, image.dpi[1] * self.scale)
        return Restored(out, steps, notes, {"steps": describe(steps)})

    def restore(self, image: Image, progress: Callable[[int, int], None] | None = None) -> Image:
        """The restored image alone (see :meth:`run` for its steps)."""
        return self.run(image, None, progress).image

    def models(self) -> list[str]:
        """Every model this chain may run, by name or file, found without
        loading any: the upscaler for clean inputs; where JPEGs are restored,
        the JPEG-aware upscaler (where one ships and no denoising is asked)
        and the dejpeg model (a JPEG outside the joint model's qualities
        needs it); the denoiser where noise is removed. A step model that
        does not ship is left out (a file that needs it fails in its turn)."""
        registry = weights.load_registry()
        names = [self._upscaler(jpeg=False)[0]]
        if self.jpeg is not None:
            if self.denoise is None:
                names.append(self._upscaler(jpeg=True)[0])
            names.append(weights.default_model_name("dejpeg"))
        if self.denoise is not None:
            names.append(self._blind or weights.default_model_name("denoise"))
        shipped = [n for n in names if n and (n in registry or n == names[0])]
        return list(dict.fromkeys(shipped))

    def start_notes(self, level: Level) -> list[str]:
        """Nothing to say before the first file: a chain is told no level."""
        return []

    def restore_array(
        self,
        pixels: np.ndarray,
        quality: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Restore H x W x C pixels that are a JPEG of ``quality`` (None: clean;
        ``jpeg="off"`` ignores it, a fixed ``jpeg`` quality replaces it)."""
        if self.jpeg != "auto":
            quality = self.jpeg  # type: ignore[assignment]
        return self._run_steps(pixels, self.plan_for(quality), progress)[0]

    def _run_steps(
        self,
        src: np.ndarray,
        steps: list[Step],
        progress: Callable[[int, int], None] | None,
    ) -> tuple[np.ndarray, list[Step]]:
        """Run ``steps`` in order; float between them, ``src``'s dtype at the end."""
        from .estimate import estimate_sigma

        if len(steps) == 1:  # one network: exactly what Restorer gives
            r = self.restorer("upscale", self._model_for(steps[0]))
            return r.restore_array(src, steps[0].level, progress), steps
        pixels = _to_float(src)
        done: list[Step] = []
        for step in steps:
            r = self.restorer(step.task, self._model_for(step))
            if step.task == "denoise" and step.level is None and r.conditioned:
                lo, hi = LEVEL_RANGES["denoise"]
                sigma = min(max(round(estimate_sigma(pixels), 1), lo), hi)
                step = Step("denoise", sigma, model=step.model)
            pixels = r.restore_array(pixels, step.level, progress)
            done.append(step)
        return _from_float(pixels, src.dtype), done


def _to_float(pixels: np.ndarray) -> np.ndarray:
    """H x W x C in float32 [0, 1] (integer images divided by their peak)."""
    if pixels.dtype.kind == "u":
        return pixels.astype(np.float32) / np.float32(np.iinfo(pixels.dtype).max)
    return np.clip(np.nan_to_num(pixels.astype(np.float32), nan=0.0), 0.0, 1.0)


def _from_float(pixels: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Back to ``dtype``: rounded and clipped for integer images."""
    if np.dtype(dtype).kind == "u":
        peak = float(np.iinfo(dtype).max)
        return np.clip(np.rint(pixels * peak), 0, peak).astype(dtype)
    return pixels.astype(dtype, copy=False)
