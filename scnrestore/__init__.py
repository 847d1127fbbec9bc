"""scnrestore: image restoration with Scale-wise Convolutional Networks.

Public API (torch is imported on first use, not at ``import scnrestore``)::

    load_model(name_or_path, device="cpu", **hyperparameters) -> torch.nn.Module
    Restorer(task, model=None, scale=4, level=None, ...).restore(image)
    read_image(path) -> Image;  write_image(path, image)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["load_model", "Restorer", "read_image", "write_image", "Image", "__version__"]

_LAZY = {
    "load_model": "api",
    "Restorer": "api",
    "read_image": "imageio",
    "write_image": "imageio",
    "Image": "imageio",
}

if TYPE_CHECKING:
    from .api import Restorer, load_model
    from .imageio import Image, read_image, write_image


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'scnrestore' has no attribute {name!r}")
