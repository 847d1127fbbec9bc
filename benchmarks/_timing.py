"""What the benchmark scripts share: timing that waits for the device, and
the line that says what ran where (and on which CPU)."""

from __future__ import annotations

import platform
import re
import time
from collections.abc import Callable
from pathlib import Path

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


CPU_FLAGS = ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2")


def cpu_kind() -> dict[str, object]:
    """The CPU's model name (/proc/cpuinfo) and which of :data:`CPU_FLAGS`,
    the extensions that set its bf16 / fp32 matmul speed, it has."""
    name, have = platform.processor() or platform.machine() or "unknown CPU", set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    name = m.group(1).strip() if m else name
    f = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    have = set(f.group(1).split()) if f else have
    return {"model_name": name, "flags": {flag: flag in have for flag in CPU_FLAGS}}


def device_name(device: torch.device | str) -> str:
    """The CUDA card's name, else the CPU's model name."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return str(cpu_kind()["model_name"])
