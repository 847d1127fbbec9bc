"""The restorer protocol: what a batch (local or on Ray) asks of the object that restores.

:class:`~scnrestore.api.Restorer` (one network), :class:`~scnrestore.chain.Chain`
(upscale with its JPEG and noise steps) and :class:`~scnrestore.outsize.Resized`
(any output size) all answer it:

- ``run(image, level=None, progress=None) -> Restored``: the image restored, the
  steps that ran, notes for the user and what the JSON records of its level;
- ``models()``: every model it may need, so that a batch has them all (fetched,
  checked) before its first file;
- ``start_notes(level)``: what to say once, before the first file;
- ``engine``: the device and precision it runs with.

The batch knows nothing else of them. Imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from .imageio import Image

__all__ = ["Step", "Restored", "RestorerLike", "describe", "Level", "Progress"]

#: A level as a restorer takes it: a number, "auto" (estimated per image) or None.
Level = float | str | None
#: A tile-progress callback (tiles done, tiles in all), or None.
Progress = Callable[[int, int], None] | None


@dataclass(frozen=True)
class Step:
    """One network pass.

    ``task``: dejpeg, denoise or upscale; ``level``: the JPEG quality (dejpeg,
    and a JPEG-aware upscale), sigma (denoise), else None; ``model``: the
    registry name or file that ran it.
    """

    task: str
    level: float | None = None
    scale: int = 1
    model: str = ""

    @property
    def joint(self) -> bool:
        """An upscale that also removes JPEG artefacts (one pass)."""
        return self.task == "upscale" and self.level is not None

    def __str__(self) -> str:
        if self.task == "dejpeg":
            return f"dejpeg q{self.level:g}"
        if self.task == "denoise":
            return "denoise real" if self.level is None else f"denoise σ{self.level:g}"
        return f"x{self.scale}" + (f" jpeg q{self.level:g}" if self.joint else "")

    def to_dict(self) -> dict[str, Any]:
        return {"step": str(self), "task": self.task, "level": self.level, "model": self.model}


def describe(steps: list[Step]) -> str:
    """The steps as one line: ``dejpeg q30 → denoise σ8 → x4``."""
    return " → ".join(str(s) for s in steps)


class Restored(NamedTuple):
    """What a restorer's ``run`` gives: the image, the steps that ran, notes
    for the user (:class:`~scnrestore.levels.Note`: str with a kind), and
    ``info``: what a batch's JSON records for the file (the level, the level
    told, the share kept; the steps of a chain; the noise a blind model removed)."""

    image: Image
    steps: list[Step]
    notes: list[str]
    info: Mapping[str, Any] = MappingProxyType({})

    @property
    def plain(self) -> bool:
        """One network pass that is no chain: what ``--jpeg off`` on a clean input runs
        (a JPEG-aware upscale is one pass, but not a plain one)."""
        return len(self.steps) == 1 and not self.steps[0].joint


class RestorerLike(Protocol):
    """The protocol (see the module's docstring)."""

    task: str

    @property
    def engine(self) -> Any: ...

    def run(self, image: Image, level: Level = None, progress: Progress = None) -> Restored: ...

    def models(self) -> list[str]: ...

    def start_notes(self, level: Level) -> list[str]: ...
