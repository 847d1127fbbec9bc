"""What the benchmark scripts share: timing that waits for the device, and
the line that says what ran where."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def best_of(fn: Callable[[], object], repeat: int, device: torch.device | str) -> float:
    """Shortest of ``repeat`` timed calls of ``fn``, each waited for on CUDA."""
    dev = torch.device(device)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - t0)
    return min(times)


def where(device: torch.device | str) -> str:
    """``torch VERSION, CARD`` or ``torch VERSION, N CPU threads``."""
    dev = torch.device(device)
    what = (
        torch.cuda.get_device_name(dev)
        if dev.type == "cuda"
        else f"{torch.get_num_threads()} CPU threads"
    )
    return f"torch {torch.__version__}, {what}"
