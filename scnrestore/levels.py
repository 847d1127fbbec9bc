"""Level policy: what a restorer makes of a level (sigma, JPEG quality).

The one parser of a level as the user gives it (``--sigma``, ``--quality``,
upscale's ``--jpeg`` / ``--denoise``, the API's keywords); the level estimated
from an image (:func:`auto_level`); and :class:`LevelPolicy`: the level a
network is told for the true one (the registry entry's ``told_level``
schedule, clamped to what it was trained on), the share of the input blended
back (``keep_luma`` / ``keep_input``), and what is recorded and said about a
level (:func:`level_info`, the notes a batch prints).

Imports no numpy or torch at start-up: the command line parses levels with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from .tasks import (
    JPEG_QUALITIES,
    LEVEL_FLAG,
    LEVEL_NOUN,
    LEVEL_RANGES,
    STEP_FLAG,
    TASK_SCHEDULES,
    TOLD_LEVEL,
    TRAINED_RANGES,
    condition_value,
)

if TYPE_CHECKING:
    import numpy as np

    from .imageio import Image
    from .weights import ModelEntry

__all__ = [
    "LevelPolicy",
    "Note",
    "parse_level",
    "auto_level",
    "level_info",
    "removed_noise",
]


class Note(str):
    """A message for the user about one image: its text, and its ``kind``:
    "note" (a batch prints ``note: FILE: text``), "warning" (``warning:
    FILE: text``) or "" (``FILE: text``: what was found, e.g. the level
    estimated)."""

    kind: str

    def __new__(cls, text: str, kind: str = "note") -> Note:
        note = super().__new__(cls, text)
        note.kind = kind
        return note


def parse_level(
    value: str | float | None, task: str, flag: str | None = None, *, step: bool = False
) -> float | str | None:
    """A level as given: None, "auto" (estimated per image) or a number within
    ``task``'s range; ValueError naming ``flag`` otherwise (by default the
    task's own option, ``--sigma`` / ``--quality``). ``step``: one of
    upscale's steps (``--jpeg``, ``--denoise``), where "off" is None too."""
    if value is None:
        return None
    if step:
        flag, default = STEP_FLAG[task]
        choices = ", ".join(sorted(("auto", "off"), key=lambda c: c != default))
    flag = flag or LEVEL_FLAG[task]
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto" or (step and text == "off"):
            return None if text == "off" else "auto"
        try:
            number = float(text)
        except ValueError:
            if step:
                raise ValueError(
                    f"{flag} must be {choices} or a {LEVEL_NOUN[task]}, not {value!r}"
                ) from None
            raise ValueError(f"{value!r} is not a number or 'auto'") from None
    else:
        number = float(value)
    lo, hi = LEVEL_RANGES[task]
    if not lo <= number <= hi:
        if step:
            raise ValueError(
                f"{flag} {LEVEL_NOUN[task]} must be between {lo:g} and {hi:g}, not {number:g}"
            )
        raise ValueError(f"{flag} must be between {lo:g} and {hi:g} (or auto), not {value}")
    return number


def auto_level(task: str, image: Image) -> float:
    """The level of one image, estimated: its noise sigma (denoise), or the
    quality it was saved with, read from its quantisation tables (dejpeg);
    within the task's range. A dejpeg image that is not a JPEG file has no
    such tables: ValueError."""
    from .estimate import estimate_jpeg_quality, estimate_sigma

    if task not in LEVEL_RANGES:
        raise ValueError(f"{task} takes no level")
    lo, hi = LEVEL_RANGES[task]
    if task == "denoise":
        return float(min(max(round(estimate_sigma(image.pixels), 1), lo), hi))
    if image.format != "JPEG" or "quantization" not in image.info:
        raise ValueError(f"not a JPEG file ({image.format}): its quality must be given")
    return float(min(max(estimate_jpeg_quality(image.info["quantization"]), lo), hi))


def removed_noise(before: np.ndarray, after: np.ndarray) -> float:
    """The standard deviation (0-255 scale) of what denoising took away: the
    noise level a blind model found in an image, as a user reads a σ.
    Colour channels only (alpha is kept unchanged); RMS of the difference."""
    import numpy as np

    c = min(before.shape[-1], 3) if before.ndim == 3 else 1
    a = before[..., :c] if before.ndim == 3 else before
    b = after[..., :c] if after.ndim == 3 else after
    peak = float(np.iinfo(a.dtype).max) if a.dtype.kind == "u" else 1.0
    d = (a.astype(np.float64) - b.astype(np.float64)) * (255.0 / peak)
    return float(np.sqrt(np.mean(d * d)))


#: The σ estimate reads white noise; a camera's grain, spatially correlated
#: and partly smoothed, reads low: the 49 real high-ISO shots of PolyU read
#: 1.0-1.5 where told σ 5-16 was best for them (docs/realnoise.md). Below this
#: estimate a batch says how to treat such a photo.
GRAIN_READS_BELOW = 2.0
GRAIN_HINT = (
    "little white noise found; a camera's grain reads low here: for it tell a "
    f"level, e.g. {LEVEL_FLAG['denoise']} 10"
)


@dataclass(frozen=True)
class LevelPolicy:
    """What one model makes of a level.

    ``task``: the task it runs; ``conditioned``: whether its network takes a
    level; ``entry``: its registry entry (None for a file outside the
    registry: no measured schedules); ``keep``: the share of the input to
    blend back, fixed (None: the entry's schedule for the task, see
    ``ModelEntry.share``); ``calibrated``: tell the network the entry's
    ``told_level`` for the true level (False: the level as given).
    """

    task: str
    conditioned: bool
    entry: ModelEntry | None = None
    keep: float | None = None
    calibrated: bool = True

    def share(self, level: float | None) -> float:
        """The share of the input blended back at ``level``: ``keep`` when
        given, else the entry's schedule for the task (keep_luma for dejpeg,
        keep_input for denoise), else 0 (no schedule, no level, or a task
        that blends nothing back)."""
        key = TASK_SCHEDULES.get(self.task)
        if key is None:
            return 0.0
        if self.keep is not None:
            return float(self.keep)
        if level is None or self.entry is None:
            return 0.0
        return self.entry.share(key, level)

    def told(self, level: float | None) -> float | None:
        """The level the network is told for the true ``level`` (None for a
        network that takes none): the entry's ``told_level`` schedule (if
        ``calibrated``), clamped to the levels it was trained on (a dejpeg
        network is told 95 for a quality-99 file).

        A JPEG-aware upscaler's level is the input's JPEG quality; None (or
        100) is an input that is not a JPEG, told as quality 100.
        """
        if not self.conditioned:
            return None
        entry = self.entry
        if self.task == "upscale":
            if level is None:
                return 100.0
            lo, hi = JPEG_QUALITIES
            if not lo <= level <= hi:
                raise ValueError(f"JPEG quality {level:g} is outside {lo:g}..{hi:g}")
            lo, hi = (entry and entry.level_range) or JPEG_QUALITIES
            return min(max(float(level), lo), hi)
        if level is None:
            raise ValueError(f"{self.task} needs a level (--sigma / --quality)")
        lo, hi = LEVEL_RANGES[self.task]
        if not lo <= level <= hi:
            raise ValueError(f"{self.task} level {level:g} is outside {lo:g}..{hi:g}")
        if entry is not None and self.calibrated:
            level = entry.told_level(level)
        lo, hi = (entry and entry.level_range) or TRAINED_RANGES[self.task]
        return min(max(level, lo), hi)

    def condition(self, level: float | None) -> float | None:
        """The level-plane value for ``level`` (None: the network takes none)."""
        told = self.told(level)
        return None if told is None else condition_value(self.task, told)

    def record(self, level: float | None) -> dict[str, Any]:
        """What a batch's JSON records of ``level``: the level, the level told
        (2 decimals) and the share of the input blended back (4 decimals)."""
        out: dict[str, Any] = {}
        if level is not None:
            out["level"] = level
            if self.conditioned:
                out[TOLD_LEVEL] = round(self.told(level), 2)  # type: ignore[arg-type]
        key = TASK_SCHEDULES.get(self.task)
        if key is not None:
            out[key] = round(self.share(level), 4)
        return out

    def warning(self, level: float) -> Note | None:
        """A warning where the entry's validation figures say the model makes
        images worse at ``level`` (see ``ModelEntry.measured_loss``)."""
        loss = self.entry.measured_loss(level) if self.entry is not None else None
        if loss is None:
            return None
        at, gain = loss
        sym, harm = ("σ", "noise") if self.task == "denoise" else ("quality", "artefacts")
        return Note(
            f"{self.entry.name} made validation photos worse at {sym} {at:g} "  # type: ignore[union-attr]
            f"({gain:+.2f} dB PSNR); at {sym} {level:g} it may remove detail rather than {harm}",
            "warning",
        )

    def start_notes(self, level: float | str | None) -> list[Note]:
        """What to say once, before the first image of a batch run at ``level``:
        that the model takes no level, or that it loses at this one."""
        if level is None or level == "auto":
            return []
        if not self.conditioned:  # e.g. the published per-sigma SCN denoisers
            return [Note(f"the model takes no level; {LEVEL_FLAG[self.task]} is not used")]
        warning = self.warning(float(level))
        return [warning] if warning is not None else []

    def estimated(self, image: Image) -> tuple[float, list[Note]]:
        """``image``'s own level (see :func:`auto_level`), with a note of it
        and the warning where the model loses at that level."""
        level = auto_level(self.task, image)
        what = "sigma" if self.task == "denoise" else "JPEG quality"
        notes = [Note(f"estimated {what} {level:g}", "")]
        if self.task == "denoise" and level < GRAIN_READS_BELOW:
            notes.append(Note(GRAIN_HINT))
        warning = self.warning(level)
        return level, notes + ([warning] if warning is not None else [])


class _Levelled(Protocol):
    task: str
    conditioned: bool

    def kept_share(self, level: float | None = None) -> float: ...
    def told(self, level: float | None = None) -> float | None: ...


def level_info(restorer: _Levelled, level: float | None) -> dict[str, float]:
    """What ``restorer`` makes of ``level``, as the CLI's JSON and ``eval`` record it:
    the share of the input it blends back (``keep_luma`` / ``keep_input``, for
    the tasks that have one) and the level its network is told (``told_level``,
    for a model that takes a level). A chain takes none: {}."""
    info: dict[str, float] = {}
    key = TASK_SCHEDULES.get(restorer.task)
    if key is not None:
        info[key] = restorer.kept_share(level)
    if level is not None and restorer.conditioned:
        info[TOLD_LEVEL] = restorer.told(level)  # type: ignore[assignment]
    return info
