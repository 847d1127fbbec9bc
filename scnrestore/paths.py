"""Where scnrestore keeps files between runs (no torch, no network)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """``$SCNRESTORE_CACHE_DIR``, else the platformdirs user cache dir.

    Downloaded checkpoints live here, and so does the CPU precision probe
    (``cpu_precision.json``, see :mod:`scnrestore.runtime`).
    """
    env = os.environ.get("SCNRESTORE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("scnrestore"))
