"""A loaded network with what callers need to know of it (after spandrel's
``ImageModelDescriptor``): the module is left as it is; what it was trained
for, where it came from, its scale, level input, channels and size needs
travel beside it.

:func:`scnrestore.api.load_model` makes one; :class:`~scnrestore.api.Restorer`
and :class:`~scnrestore.engine.Engine` take one (or a bare SCN, described as
a file outside the registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from os import PathLike
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from .model import SCN, SCNConfig
    from .weights import ModelEntry

__all__ = ["ModelDescriptor", "model_name"]

# How a network may be tiled (spandrel's ModelTiling): SCN's tiles blend
# seamlessly when they start on its pad multiple (see engine.tile_starts).
TILING_SUPPORTED = "supported"


@dataclass(eq=False)
class ModelDescriptor:
    """An SCN and its papers.

    ``model``: the network (eval mode, weight norm folded); ``trained_task``:
    what it was trained for, from its registry entry or else its file's
    metadata (None: not known); ``entry``: its registry entry (None for a
    file outside the registry: no measured schedules); ``source``: the
    registry name or file it was loaded from.

    Calling the descriptor calls the network (N x C x H x W float in [0, 1]
    in, restored image out, no tiling); ``scale``, ``config``,
    ``num_scales`` are the network's.
    """

    model: SCN
    trained_task: str | None = None
    entry: ModelEntry | None = None
    source: str = ""

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def to(self, device: str | torch.device) -> ModelDescriptor:
        """Move the network to ``device`` (in place, as ``nn.Module.to``); returns self."""
        self.model = self.model.to(device)
        return self

    @property
    def config(self) -> SCNConfig:
        return self.model.config

    @property
    def scale(self) -> int:
        return int(self.model.scale)

    @property
    def num_scales(self) -> int:
        return int(self.model.num_scales)

    @property
    def channels(self) -> int:
        """Colour channels in and out (3: RGB)."""
        return int(self.model.num_channels)

    @property
    def level_planes(self) -> int:
        """Level planes the network takes after its colour (0: none)."""
        return int(self.model.num_cond_channels)

    @property
    def conditioned(self) -> bool:
        """Whether the network is told a level (sigma, JPEG quality)."""
        return bool(self.level_planes)

    @property
    def pad_multiple(self) -> int:
        """Inputs are padded to a multiple of this; tiles start on it."""
        return int(self.model.pad_multiple)

    @property
    def tiling(self) -> str:
        """Tiling advice: tiles are fine (blended without seams)."""
        return TILING_SUPPORTED

    @property
    def name(self) -> str:
        """``model NAME`` as messages name it (``model`` alone when unknown)."""
        return f"model {self.source}".rstrip()


def model_name(model: object) -> str:
    """The name a model goes by: a descriptor's source, a registry name or
    file as given; "" for a network handed in bare."""
    if isinstance(model, ModelDescriptor):
        return model.source
    return str(model) if isinstance(model, str | PathLike) else ""
