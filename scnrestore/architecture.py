"""An SCN's hyperparameters, ``SCNConfig``: plain data, without torch.

model.py builds the network from it; a training run's settings
(``training.config.TrainConfig``) take their network fields from it, and
``scnrestore train --help`` shows them, without loading the network code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["SCNConfig"]


@dataclass(frozen=True)
class SCNConfig:
    """Hyperparameters of an SCN. Defaults are the paper's."""

    scale: int = 2
    num_blocks: int = 16
    num_residual_units: int = 32
    width_multiplier: float = 4
    num_scales: int = 4
    image_mean: float = 0.5
    num_channels: int = 3
    num_cond_channels: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
