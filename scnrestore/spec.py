"""Which network(s) and how to run them, as a small picklable value.

A :class:`RestorerSpec` names the task, the model and how it runs (device,
precision, tiles, ...) and :meth:`~RestorerSpec.build` makes the object that
restores: a :class:`~scnrestore.chain.Chain` for upscale (JPEG, noise, scale),
a :class:`~scnrestore.api.Restorer` otherwise. The command line builds its
model through it, and so does each worker of :mod:`scnrestore.distributed`,
which receives the spec pickled rather than the model itself.

>>> from scnrestore.spec import RestorerSpec
>>> spec = RestorerSpec("denoise", tile=256, precision="fp32")
>>> restorer = spec.build()               # a Restorer; loads the model

Nothing here imports torch or numpy until :meth:`~RestorerSpec.build` runs:
the command line imports this module at start-up (``--help`` stays instant).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .tasks import TASK_SCHEDULES, TASKS

if TYPE_CHECKING:
    from .api import Restorer
    from .chain import Chain
    from .outsize import OutSize, Resized

__all__ = ["RestorerSpec", "DEFAULT_OVERLAP", "DEFAULT_STEPS"]

# engine.DEFAULT_OVERLAP, repeated so that start-up (--help, models list) does
# not import the engine and with it numpy (0.13 s here); a test keeps them equal.
DEFAULT_OVERLAP = 32
#: upscale's steps unless told otherwise: a JPEG input's artefacts removed in
#: the same pass (its quality read from the file), no denoising.
DEFAULT_STEPS: tuple[str, str] = ("auto", "off")


@dataclass(frozen=True)
class RestorerSpec:
    """The model of a run and how it runs; :meth:`build` makes it.

    ``task``: upscale, denoise or dejpeg. ``scale``: upscale's factor (the
    default model is the registry's for it). ``model``: a registry name or a
    checkpoint file (None: the registry's model for the task). ``num_scales``:
    pyramid levels of a checkpoint that does not record them. ``device``,
    ``precision``, ``tile``, ``tile_overlap``, ``tta``: as
    :class:`~scnrestore.api.Restorer` takes them. ``keep``: the share of the
    input blended back (keep_input for denoise, keep_luma for dejpeg; None:
    the model's schedule). ``calibration``: tell the network the model's
    calibrated level (Restorer's ``told_level``). ``steps``: upscale's
    (jpeg, denoise) as :class:`~scnrestore.chain.Chain` takes them; None: the
    upscale network alone, a Restorer (no JPEG or noise step). ``size``:
    upscale to any size (--outscale, --width, --height; see
    :mod:`scnrestore.outsize`): :meth:`build` makes a
    :class:`~scnrestore.outsize.Resized` with ``steps``, ``scale`` unused.

    The level of a denoise / dejpeg run is not here: it is the batch's
    (:class:`scnrestore.batch.BatchOptions`), a number or ``"auto"`` for each
    file, passed at each ``restore``.
    """

    task: str
    scale: int = 4
    model: str | None = None
    num_scales: int | None = None
    device: str = "auto"
    precision: str = "auto"
    tile: int | None = None
    tile_overlap: int = DEFAULT_OVERLAP
    tta: bool = False
    keep: float | None = None
    calibration: bool = True
    steps: tuple[str, str] | None = DEFAULT_STEPS
    size: OutSize | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}")
        if self.steps is not None:  # a list (from JSON, say) as the tuple it stands for
            object.__setattr__(self, "steps", tuple(self.steps))

    @property
    def chained(self) -> bool:
        """Whether :meth:`build` makes a Chain (upscale with its steps)."""
        return self.task == "upscale" and self.steps is not None

    def build(self) -> Restorer | Chain | Resized:
        """The Chain (upscale with steps) or Restorer this spec describes,
        its model loaded. Raises what they raise for a model that cannot be
        had or does not fit (RegistryError, CheckpointError, ValueError,
        OSError)."""
        from .api import Restorer

        run: dict[str, Any] = dict(
            device=self.device,
            precision=self.precision,
            tile=self.tile,
            tile_overlap=self.tile_overlap,
            tta=self.tta,
            num_scales=self.num_scales,
        )
        if self.size is not None:
            from .outsize import Resized

            if self.task != "upscale" or self.model is not None:
                raise ValueError("an output size is for upscale with the shipped models")
            jpeg, denoise = self.steps or ("off", "off")
            return Resized(self.size, jpeg, denoise, **run)
        if self.chained:
            from .chain import Chain

            assert self.steps is not None
            jpeg, denoise = self.steps
            return Chain(self.scale, jpeg, denoise, model=self.model, **run)
        schedule = TASK_SCHEDULES.get(self.task)
        return Restorer(
            self.task,
            self.model,
            scale=self.scale,
            told_level=self.calibration,
            **run,
            **({schedule: self.keep} if schedule else {}),
        )
