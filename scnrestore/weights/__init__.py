"""The weights registry: which models exist, what they are, where their files are.

The registry is ``weights.toml`` (shipped inside the package; the one at the
repository's top level is a symbolic link to it), one table per model::

    format = 1
    base_url = "https://example.org/scnrestore/v1/"   # for relative file names / urls

    [models.scn-x2]
    task = "upscale"
    scale = 2
    file = "scn-x2.safetensors"                 # a plain name: the cache file's name
    sha256 = "..."                              # 64 hex digits, required
    size = 4903912                              # bytes, required
    urls = ["https://mirror-a/scn-x2.safetensors", "scn-x2.safetensors"]
    embedded = false                            # true: shipped in scnrestore/models/
    num_blocks = 16                             # architecture, checked against the tensors
    num_scales = 4                              # what the tensors cannot tell
    image_mean = 0.5
    licence = "MIT"
    provenance = "scnrestore train upscale -s 2 --data DIV2K/train ..."
    quality = { set5_psnr_y = 37.6 }

A dejpeg entry may add ``keep_luma = [[90, 0.0], [95, 0.5], [99, 1.0]]``:
points (JPEG quality, weight), linear between them and flat beyond, saying
how much of the JPEG's own luma to keep at each quality (see
``ModelEntry.luma_weight``); a denoise entry ``keep_input``, points (sigma,
weight): how much of the noisy input to blend back (a nearly clean photo is
best left nearly alone). Measured on validation photos, not trained.

A denoise or dejpeg entry may add ``told_level = [[5, 5], [10, 12], [40, 44]]``:
points (true level, level the network is told), linear between them and
keeping the nearest end's ratio beyond them. A network trained with L1 over a
range of levels need not do best when told the true one (see
``ModelEntry.told_level``); measured for these weights by
``benchmarks/told_level.py``, so a new set of weights starts without one.

A user registry (``$SCNRESTORE_REGISTRY`` or ``weights.toml`` in the
platformdirs config dir) is merged over the shipped one, entry by entry.
:func:`resolve` maps a name to a local file: embedded, else cached, else
downloaded by :mod:`scnrestore.weights.download` (``$SCNRESTORE_WEIGHTS_URL`` replaces
``base_url`` and is tried first).

This module never imports torch: ``scnrestore models list`` stays instant.
"""

from __future__ import annotations

from ..errors import DownloadError, RegistryError
from ..tasks import SCHEDULES, TASK_SCHEDULES, TASKS, TOLD_LEVEL
from .download import is_safe_name, url_problem
from .registry import (
    EMBEDDED_DIR,
    PACKAGE_DIR,
    SHIPPED_REGISTRY,
    ModelEntry,
    auto_denoise_model,
    default_model,
    default_model_name,
    jpeg_model_name,
    load_registry,
    real_noise_model_name,
    user_registry_path,
)
from .schedules import schedule_weight, told_level
from .store import describe, download_urls, fetch, local_path, resolve, verify, where

__all__ = [
    "ModelEntry",
    "RegistryError",
    "DownloadError",
    "load_registry",
    "auto_denoise_model",
    "real_noise_model_name",
    "user_registry_path",
    "default_model_name",
    "jpeg_model_name",
    "default_model",
    "resolve",
    "fetch",
    "download_urls",
    "local_path",
    "where",
    "verify",
    "describe",
    "is_safe_name",
    "url_problem",
    "PACKAGE_DIR",
    "SHIPPED_REGISTRY",
    "EMBEDDED_DIR",
    "schedule_weight",
    "SCHEDULES",
    "TASK_SCHEDULES",
    "TASKS",
    "told_level",
    "TOLD_LEVEL",
]
