"""Device and precision selection, shared by the engine and by training."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = [
    "PRECISIONS",
    "resolve_device",
    "resolve_precision",
    "autocast",
    "cpu_has_bf16",
    "cpu_bf16_pays",
    "measure_cpu_bf16",
]

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# bf16 costs about 0.01 dB (docs/performance.md), so ``auto`` takes it on a
# CPU only where it is clearly faster than fp32.
BF16_MIN_SPEEDUP = 1.1
PROBE_FILE = "cpu_precision.json"
_MEASURED: dict[str, dict[str, float]] = {}  # this process's probe results, by CPU key
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(name: str = "auto") -> torch.device:
    """Turn ``auto|cpu|cuda|cuda:N|mps`` into a torch.device that exists here.

    ``auto`` picks CUDA, then MPS, then CPU. Raises ValueError for a device
    that is malformed or not available on this machine.
    """
    import torch

    name = (name or "auto").strip().lower()
    if not _DEVICE_RE.match(name):
        raise ValueError(f"unknown device {name!r} (use auto, cpu, cuda, cuda:N or mps)")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested, but CUDA is not available")
        dev = torch.device(name)
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {name!r} requested, but only {torch.cuda.device_count()} "
                "CUDA device(s) exist"
            )
        return dev
    if name == "mps" and not (
        getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
    ):
        raise ValueError("device 'mps' requested, but MPS is not available")
    return torch.device(name)


@functools.cache
def _cpu_flags() -> str:
    """/proc/cpuinfo, read once per process ("" where there is none)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _torch_cpu_probe(name: str) -> bool:
    import torch

    fn = getattr(torch.cpu, name, None)
    if fn is None:
        return False
    try:
        return bool(fn())
    except Exception:  # pragma: no cover - private API drift
        return False


def cpu_has_bf16() -> bool:
    """True when this CPU computes bf16 natively (AVX512-BF16 or AMX)."""
    if _torch_cpu_probe("_is_avx512_bf16_supported") or cpu_has_amx():
        return True
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", _cpu_flags()))


def cpu_has_amx() -> bool:
    """True when this CPU has AMX tiles (bf16 matrix units)."""
    if _torch_cpu_probe("_is_amx_tile_supported"):
        return True
    return bool(re.search(r"\bamx_bf16\b", _cpu_flags()))


def _cpu_key() -> str:
    """Names this CPU and torch build: a probe result holds for this pair."""
    import platform

    import torch

    match = re.search(r"^model name\s*:\s*(.+)$", _cpu_flags(), re.M)
    model = match.group(1).strip() if match else (platform.processor() or platform.machine())
    return f"{model} | torch {torch.__version__}"


def measure_cpu_bf16(repeat: int = 3, size: int = 96) -> dict[str, float]:
    """Time SCN-shaped convolutions on the CPU in fp32 and in bf16 autocast.

    Two residual units of the paper-size body (3x3 convs 32->128->32, ReLU,
    channels_last, as the engine runs them) on a ``size`` x ``size`` map; the
    two precisions alternate so that a busy machine slows both alike. Returns
    the best time of each and ``speedup`` = fp32 time / bf16 time. About a
    second on a 2-core CPU.
    """
    import torch

    device = torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    layers: list[torch.nn.Module] = []
    for _ in range(2):
        layers += [
            torch.nn.Conv2d(32, 128, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.Conv2d(128, 32, 3, padding=1),
        ]
    net = torch.nn.Sequential(*layers).eval().to(memory_format=torch.channels_last)
    x = torch.rand(1, 32, size, size, generator=gen).contiguous(memory_format=torch.channels_last)
    best = {"fp32": float("inf"), "bf16": float("inf")}
    with torch.inference_mode():
        for rep in range(repeat + 1):
            for precision in best:
                with autocast(device, precision):
                    t0 = time.perf_counter()
                    net(x)
                    dt = time.perf_counter() - t0
                if rep:  # the first round builds the kernels
                    best[precision] = min(best[precision], dt)
    return {
        "fp32_s": best["fp32"],
        "bf16_s": best["bf16"],
        "speedup": best["fp32"] / best["bf16"],
    }


def cpu_bf16_pays(cache: Path | None = None) -> bool:
    """True when bf16 autocast is worth its cost on this CPU.

    No native bf16: never. AMX: always (3-5x fp32 for this network).
    AVX512-BF16 without AMX differs by vendor: 2.2x fp32 on an AMD EPYC, 0.8x
    on an Intel Xeon without AMX (docs/performance.md), so it is measured once
    (:func:`measure_cpu_bf16`) and the result kept in ``cpu_precision.json``
    in the cache dir, keyed by CPU model and torch version. Delete the file
    to measure again. bf16 is taken at :data:`BF16_MIN_SPEEDUP` or more.
    """
    if not cpu_has_bf16():
        return False
    if cpu_has_amx():
        return True
    from .files import cache_dir

    path = (cache if cache is not None else cache_dir()) / PROBE_FILE
    key = _cpu_key()
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    entry = data.get(key)
    if not (isinstance(entry, dict) and isinstance(entry.get("speedup"), (int, float))):
        # Once per process at most, even where the cache cannot be written.
        entry = _MEASURED.get(key)
        if entry is None:
            entry = _MEASURED[key] = measure_cpu_bf16()
        data[key] = entry
        from .files import atomic_output  # leaves nothing behind on failure

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(path) as tmp:
                tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        except OSError:  # a read-only cache: the next process measures again
            pass
    return float(entry["speedup"]) >= BF16_MIN_SPEEDUP


def resolve_precision(precision: str, device: torch.device) -> str:
    """Resolve ``auto`` to the fastest precision that keeps quality here.

    bf16 on CUDA cards that support it, fp16 on other CUDA cards; on the
    CPU bf16 where :func:`cpu_bf16_pays` (AMX, or AVX512-BF16 measured
    faster), else fp32; fp32 on MPS.
    """
    import torch

    precision = (precision or "auto").lower()
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r} (use {', '.join(PRECISIONS)})")
    if precision != "auto":
        if precision == "fp16" and device.type == "cpu":
            raise ValueError("fp16 is not supported on the CPU; use bf16 or fp32")
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_bf16_pays():
        return "bf16"
    return "fp32"


@contextlib.contextmanager
def autocast(device: torch.device, precision: str) -> Iterator[None]:
    """Mixed-precision context for ``precision`` (a no-op for fp32)."""
    import torch

    if precision == "fp32":
        yield
        return
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
