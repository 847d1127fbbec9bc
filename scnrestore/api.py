"""The Python API: ``load_model`` for the bare network, ``Restorer`` for images.

>>> from scnrestore import Restorer, read_image, write_image
>>> r = Restorer("upscale", scale=4)
>>> write_image("photo_x4.png", r.restore(read_image("photo.jpg")))
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import weights
from .checkpoint import CheckpointError, build_model, load_state_dict, read_metadata
from .descriptor import ModelDescriptor
from .engine import BT601_LUMA, DEFAULT_OVERLAP, Engine
from .imageio import Image
from .levels import LevelPolicy, Note, auto_level, level_info, removed_noise
from .protocol import Level, Progress, Restored, Step
from .tasks import LEVEL_RANGES, TASK_SCHEDULES, TASKS

if TYPE_CHECKING:
    import torch

    from .model import SCN

__all__ = [
    "load_model",
    "Restorer",
    "RunOptions",
    "ModelDescriptor",
    "LEVEL_RANGES",
    "blend_input",
    "auto_level",
    "level_info",
    "removed_noise",
]

# BT.601 luma weights, as JPEG (JFIF) computes Y from RGB.
_LUMA = np.array(BT601_LUMA, np.float32)


def load_model(
    name_or_path: str | Path,
    device: str | torch.device = "cpu",
    **hyperparameters: Any,
) -> ModelDescriptor:
    """Load an SCN from a registry name or a checkpoint file.

    Returns a :class:`~scnrestore.descriptor.ModelDescriptor`: the plain
    ``torch.nn.Module`` (``.model``, in eval mode, weight norm folded) with
    what it was trained for, its registry entry and where it came from.
    Calling it calls the network: N x C x H x W float in [0, 1] in, restored
    image out (no tiling).
    Scale, blocks, units and width come from the tensors; ``num_scales`` and
    ``image_mean`` from the keywords, else the registry entry, else the
    checkpoint's own metadata, else the paper's defaults. Accepts official SCN
    checkpoints (``model_state_dict``), ``state_dict`` / ``params_ema``
    wrappings, a ``module.`` prefix and safetensors files. Torch files are
    read with ``weights_only=True``: a checkpoint cannot run code.
    """
    from .runtime import resolve_device

    path, registry_hp, entry = weights.resolve(str(name_or_path))
    meta = read_metadata(path)
    meta_hp = {
        k: v
        for k, v in (meta.get("model_config") or {}).items()
        if k in ("num_scales", "image_mean")
    }
    hp = {**meta_hp, **registry_hp, **{k: v for k, v in hyperparameters.items() if v is not None}}
    model = build_model(load_state_dict(path), str(path), **hp)
    # What it was trained for, where known (registry entry, else file metadata):
    # Restorer refuses to run a denoise model for dejpeg and the like.
    trained = getattr(entry, "task", None) or meta.get("task")
    dev = resolve_device(str(device)) if isinstance(device, str) else device
    return ModelDescriptor(model.to(dev), trained, entry, str(name_or_path))


@dataclass(frozen=True)
class RunOptions:
    """How a :class:`Restorer` runs its network (see :class:`~scnrestore.engine.Engine`):
    ``device`` (auto, cpu, cuda, cuda:N, mps), ``precision`` (auto, fp32,
    fp16, bf16), ``tile`` (input pixels; 0: whole image; None: from memory),
    ``tile_overlap``, ``tta`` (x8 self-ensemble)."""

    device: str = "auto"
    precision: str = "auto"
    tile: int | None = None
    tile_overlap: int = DEFAULT_OVERLAP
    tta: bool = False


def _run_option_keywords(cls: type) -> type:
    """Give ``cls`` the signature it accepts: its own parameters, then
    :class:`RunOptions`' fields as keywords (what its ``**run_options`` takes),
    so that help(), editors and ``inspect`` show the real keywords and defaults."""
    sig = inspect.signature(cls.__init__)
    own = [p for p in list(sig.parameters.values())[1:] if p.kind != p.VAR_KEYWORD]
    kw = inspect.Parameter.KEYWORD_ONLY
    run = [
        inspect.Parameter(f.name, kw, default=f.default, annotation=f.type)
        for f in fields(RunOptions)
    ]
    cls.__signature__ = sig.replace(parameters=own + run)  # type: ignore[attr-defined]
    return cls


@_run_option_keywords
class Restorer:
    """Does what the CLI does, on in-memory images.

    ``task``: upscale, denoise or dejpeg. ``model``: a registry name, a
    checkpoint path or an already loaded model (a ``load_model`` descriptor
    or a bare SCN); by default the registry's model for the task (and
    ``scale``). ``level``: sigma (denoise) or JPEG quality
    (dejpeg, and a JPEG-aware upscaler: the input's quality, None for an
    input that is not a JPEG) for conditioned models. ``keep_luma`` (dejpeg): how much of the
    JPEG's own luma to keep, 0..1; ``keep_input`` (denoise): how much of the
    noisy input to blend back, 0..1. None: the registry entry's measured
    schedule for the level (see :meth:`luma_weight`, :meth:`input_weight`).
    ``told_level``: tell the network the registry entry's calibrated level for
    the true one (see :meth:`told`); False tells it the level as given.
    How it runs: ``options`` (:class:`RunOptions`), or its fields as keywords
    (``device``, ``precision``, ``tile``, ``tile_overlap``, ``tta``).

    ``model`` is then the :class:`~scnrestore.descriptor.ModelDescriptor`;
    :meth:`run` (with :meth:`models`, :meth:`start_notes`, ``engine``) is the
    restorer protocol a batch uses (see :mod:`scnrestore.protocol`).
    """

    def __init__(
        self,
        task: str,
        model: str | Path | SCN | ModelDescriptor | None = None,
        scale: int = 4,
        level: float | None = None,
        num_scales: int | None = None,
        keep_luma: float | None = None,
        keep_input: float | None = None,
        told_level: bool = True,
        options: RunOptions | None = None,
        **run_options: Any,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}")
        self.task = task
        if model is None:
            model = weights.default_model(task, scale)
        self.model = _described(model, num_scales)
        _check_fits(self.model, task, scale if task == "upscale" else 1)
        self.level = level
        for name, share in (("keep_luma", keep_luma), ("keep_input", keep_input)):
            if share is not None and not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must lie in 0..1, not {share:g}")
        self.keep_luma = keep_luma
        self.keep_input = keep_input
        self.told_level = told_level
        opts = replace(options or RunOptions(), **run_options)
        self.engine = Engine(
            self.model.model, opts.device, opts.precision, opts.tile, opts.tile_overlap, opts.tta
        )

    @property
    def conditioned(self) -> bool:
        return self.model.conditioned

    @property
    def policy(self) -> LevelPolicy:
        """What this restorer makes of a level, from its model's entry and its
        ``keep_luma`` / ``keep_input`` / ``told_level`` as they are now (a
        caller may set them after construction, as scripts/guard.py does)."""
        key = TASK_SCHEDULES.get(self.task)
        keep = getattr(self, key) if key is not None else None
        return LevelPolicy(
            self.task, self.conditioned, self.model.entry, keep, calibrated=self.told_level
        )

    @property
    def scale(self) -> int:
        return self.model.scale

    def measured_loss(self, level: float) -> tuple[float, float] | None:
        """(L, gain dB) if the registry's validation figures say this model
        makes images worse at ``level`` (see ``ModelEntry.measured_loss``)."""
        entry = self.model.entry
        return entry.measured_loss(level) if entry is not None else None

    def _level(self, level: float | None) -> float | None:
        return self.level if level is None else level

    def luma_weight(self, level: float | None = None) -> float:
        """The share of the JPEG's luma kept at quality ``level`` (dejpeg; else 0).

        ``keep_luma`` when given, else the registry entry's ``keep_luma``
        schedule (see ``ModelEntry.luma_weight``), else 0 (a model file
        outside the registry has no measured schedule).
        """
        return self.kept_share(level) if self.task == "dejpeg" else 0.0

    def input_weight(self, level: float | None = None) -> float:
        """The share of the noisy input blended back at sigma ``level``
        (denoise; else 0): ``keep_input``, else the entry's schedule, else 0."""
        return self.kept_share(level) if self.task == "denoise" else 0.0

    def kept_share(self, level: float | None = None) -> float:
        """The share of the input this restorer blends back at ``level``:
        :meth:`luma_weight` (dejpeg), :meth:`input_weight` (denoise), else 0."""
        return self.policy.share(self._level(level))

    def told(self, level: float | None = None) -> float | None:
        """The level the network is told for the true ``level`` (None for a
        model that takes none): see :meth:`scnrestore.levels.LevelPolicy.told`
        (the registry entry's ``told_level`` schedule unless
        ``told_level=False``, clamped to the levels it was trained on).
        """
        return self.policy.told(self._level(level))

    def _cond(self, level: float | None) -> float | None:
        return self.policy.condition(self._level(level))

    def restore_array(
        self,
        pixels: np.ndarray,
        level: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Restore H x W x C pixels (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA).

        Colour goes through the network (gray as three equal channels, then
        averaged back); alpha is resized plainly (upscale) or kept unchanged.
        Memory: the result is allocated once, the network writes into it
        directly (RGB, RGBA) and gray / alpha are computed in bands, so no
        full-size float (or widened) copy of the output is made. dejpeg
        moves the output's luma toward the input's by :meth:`luma_weight`
        (leaving its chroma), denoise blends the input back by
        :meth:`input_weight`: in the engine, on the float output before it
        is rounded to the image's dtype.
        """
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        c = pixels.shape[2]
        if c not in (1, 2, 3, 4):
            raise ValueError(f"cannot restore an image with {c} channels")
        alpha = pixels[:, :, -1:] if c in (2, 4) else None
        if alpha is not None and alpha.dtype.kind == "f":  # colour: see engine._converters
            alpha = np.clip(np.nan_to_num(alpha, nan=0.0), 0.0, 1.0)
        color = pixels[:, :, :-1] if alpha is not None else pixels
        gray = color.shape[2] == 1
        rgb = np.repeat(color, 3, axis=2) if gray else np.ascontiguousarray(color)
        cond = self._cond(level)
        h, w = pixels.shape[0] * self.scale, pixels.shape[1] * self.scale
        # dejpeg / denoise (scale 1): the engine blends the input back before
        # it rounds the output (blend_input's sum, on the unrounded output).
        # Gray has no chroma (its three equal channels are averaged back): the
        # plain blend is the luma one there.
        keep = dict(keep=self.kept_share(level), keep_luma_only=self.task == "dejpeg" and not gray)
        if gray:
            colour = self.engine.run(rgb, cond, progress, **keep)
            del rgb
            out = np.empty((h, w, c), pixels.dtype)
            _mean_channels(colour, out[:, :, :1])
            del colour
        else:
            out = np.empty((h, w, c), pixels.dtype)
            self.engine.run(rgb, cond, progress, out=out[:, :, :3], **keep)
        if alpha is not None:
            if self.scale > 1:
                _resize_plane(alpha[:, :, 0], self.scale, out[:, :, -1])
            else:
                out[:, :, -1:] = alpha
        return out

    def restore(
        self,
        image: Image,
        level: float | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Image:
        """Restore a decoded :class:`~scnrestore.imageio.Image`, keeping its metadata.

        Upscaling multiplies the resolution (DPI) by the scale: the output
        prints at the size the input did.
        """
        out = image.with_pixels(self.restore_array(image.pixels, level, progress))
        if image.dpi and self.scale > 1:
            out.dpi = (image.dpi[0] * self.scale, image.dpi[1] * self.scale)
        return out

    # -- the restorer protocol (scnrestore.protocol) -------------------------------

    def run(self, image: Image, level: Level = None, progress: Progress = None) -> Restored:
        """Restore ``image`` at ``level`` (None: the restorer's own; "auto":
        estimated from the image, see :func:`~scnrestore.levels.auto_level`),
        with what a batch says and records of it: the level estimated and a
        warning where validation says the model loses there; for a model that
        takes no level, none is used, and a blind denoiser's "auto" records
        the σ of the noise it removed."""
        level = self.level if level is None else level
        notes: list[str] = []
        blind = False
        if level is not None and not self.conditioned:  # a fixed-level or blind model
            blind = level == "auto" and self.task == "denoise"
            level = None
        elif level == "auto":
            level, notes = self.policy.estimated(image)  # type: ignore[assignment]
        info = self.policy.record(level)  # type: ignore[arg-type]
        out = self.restore(image, level, progress)  # type: ignore[arg-type]
        if blind:  # the model read the noise itself; what it took is its level
            sigma = removed_noise(image.pixels, out.pixels)
            info["noise_removed"] = round(sigma, 2)
            notes.append(Note(f"real-noise model removed noise of σ {sigma:.1f}", ""))
        step = Step(self.task, level, self.scale, self.model.source)  # type: ignore[arg-type]
        return Restored(out, [step], notes, info)

    def models(self) -> list[str]:
        """The model this restorer runs, by name or file (none for an SCN
        handed in without one)."""
        return [self.model.source] if self.model.source else []

    def start_notes(self, level: Level) -> list[str]:
        """What a batch at ``level`` says once, before its first file."""
        return list(self.policy.start_notes(level))


def _described(
    model: str | Path | SCN | ModelDescriptor, num_scales: int | None
) -> ModelDescriptor:
    """``model`` loaded (a name or file) and described; a bare SCN as a file
    outside the registry."""
    from torch import nn

    if isinstance(model, ModelDescriptor):
        return model
    if isinstance(model, nn.Module):
        return ModelDescriptor(model)  # type: ignore[arg-type]
    return load_model(model, "cpu", num_scales=num_scales)


def _check_fits(model: ModelDescriptor, task: str, want: int) -> None:
    """Refuse a model built for another task or scale (CheckpointError, one line)."""
    name = model.name
    job = task + (f" x{want}" if task == "upscale" else "")
    trained = model.trained_task
    if trained in TASKS and trained != task:
        raise CheckpointError(f"{name} was trained for {trained}, not {task}")
    if model.scale != want:
        kind = (
            " with a level input (a denoise or dejpeg model)"
            if model.conditioned and model.scale == 1
            else ""
        )
        raise CheckpointError(f"{name} is a x{model.scale} network{kind}, but {job} needs x{want}")
    if task == "upscale" and model.level_planes > 1:
        raise CheckpointError(
            f"{name} takes {model.level_planes} level planes; a JPEG-aware upscaler takes one"
        )


# Output rows per band in _mean_channels / _resize_plane: bounded temporaries.
_BAND_ROWS = 256


def _mean_channels(a: np.ndarray, dst: np.ndarray) -> None:
    """Mean over the channels of ``a`` into ``dst`` (H x W x 1), in row bands."""
    for r in range(0, a.shape[0], _BAND_ROWS):
        band = a[r : r + _BAND_ROWS]
        if a.dtype.kind == "u":
            mean = (band.astype(np.uint32).sum(axis=2, keepdims=True) + 1) // 3
        else:
            mean = band.mean(axis=2, keepdims=True)
        dst[r : r + _BAND_ROWS] = mean.astype(dst.dtype)


def blend_input(src: np.ndarray, out: np.ndarray, weight: float, luma_only: bool = False) -> None:
    """Move ``out`` toward ``src`` (same shape, H x W x C colour) by ``weight``
    (0..1), in place, in row bands, rounded and clipped to ``out``'s range.

    Plain: out + weight * (src - out) on every channel. ``luma_only``: the
    same amount, weight * (Y_src - Y_out), is added to every colour channel:
    with BT.601 weights (they sum to 1) that moves Y by exactly that and
    leaves Cb / Cr, i.e. the restored colour, as they were (up to rounding
    and clipping). Gray images have no chroma: there the two are the same.
    :class:`Restorer` forms the same sum inside the engine, before the output
    is rounded (on an already rounded 8-bit output a share of a one-level
    difference rounds away: -0.24 dB at σ 1 with half the input kept).
    """
    peak = float(np.iinfo(out.dtype).max) if out.dtype.kind == "u" else 1.0
    for r in range(0, out.shape[0], _BAND_ROWS):
        s = src[r : r + _BAND_ROWS].astype(np.float32)
        if src.dtype.kind == "f":  # as the engine reads float input: NaN -> 0, clipped
            s = np.clip(np.nan_to_num(s, nan=0.0), 0.0, 1.0) * peak
        o = out[r : r + _BAND_ROWS]
        of = o.astype(np.float32)
        diff = s - of
        if luma_only and diff.shape[2] == 3:
            of += weight * (diff @ _LUMA)[:, :, None]
        else:
            of += weight * diff
        if out.dtype.kind == "u":
            np.rint(of, out=of)
        o[...] = np.clip(of, 0.0, peak, out=of)


def _resize_plane(plane: np.ndarray, scale: int, dst: np.ndarray) -> None:
    """Bicubic resize of one plane of any dtype into ``dst``, clipped to its range.

    In bands of output rows (Pillow's ``box``: the same filter taps as one
    resize of the whole plane), so the float image is never output-sized.
    """
    from PIL import Image as PILImage

    h, w = plane.shape
    src = PILImage.fromarray(plane.astype(np.float32), "F")
    band = _BAND_ROWS - _BAND_ROWS % scale  # whole input rows per band
    for r in range(0, h * scale, band):
        r1 = min(r + band, h * scale)
        big = np.asarray(
            src.resize(
                (w * scale, r1 - r), PILImage.Resampling.BICUBIC, box=(0, r / scale, w, r1 / scale)
            )
        )
        if plane.dtype.kind == "u":
            peak = np.iinfo(plane.dtype).max
            dst[r:r1] = np.clip(np.rint(big), 0, peak)
        else:
            dst[r:r1] = np.clip(big, 0.0, 1.0)
