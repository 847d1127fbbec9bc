"""scnrestore: image restoration with Scale-wise Convolutional Networks.

Public API (torch is imported on first use, not at ``import scnrestore``)::

    load_model(name_or_path, device="cpu", **hyperparameters) -> ModelDescriptor
        (callable: the network; .model the torch.nn.Module; .scale, .trained_task, .entry, ...)
    Restorer(task, model=None, scale=4, level=None, ...).restore(image) -> Image
    Chain(scale=4, jpeg="auto", denoise=None, ...).run(image) -> (image, steps, notes, info)
    Restorer / Chain .run(image) -> Restored, .models(): the restorer protocol
        (scnrestore.protocol) a batch uses
    read_image(path) -> Image;  write_image(path, image)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any


# Transparent huge pages for torch's CPU buffers of 2 MB and more (torch >=
# 2.2 reads this once, at its first allocation, so it is set before torch is
# imported). A 512 px tile allocates hundreds of MB of activations per block,
# each buffer fresh from the kernel: with 4 KB pages that was 1.47 M page
# faults per tile and 20 % of the time (benchmarks/bench.py, docs/performance.md).
# THP_MEM_ALLOC_ENABLE=0 in the environment turns it off.
# Only where the kernel has THP: elsewhere torch's madvise fails with a warning.
def _kernel_has_thp() -> bool:
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[never]" not in f.read()
    except OSError:
        return False


if _kernel_has_thp():
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from ._version import __version__  # noqa: E402

__all__ = ["load_model", "Restorer", "Chain", "read_image", "write_image", "Image", "__version__"]

_LAZY = {
    "load_model": "api",
    "Restorer": "api",
    "Chain": "chain",
    "read_image": "imageio",
    "write_image": "imageio",
    "Image": "imageio",
}

if TYPE_CHECKING:
    from .api import Restorer, load_model
    from .chain import Chain
    from .imageio import Image, read_image, write_image


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'scnrestore' has no attribute {name!r}")
