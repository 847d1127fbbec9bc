"""Images per second on a local Ray cluster with 1, 2, ... workers (scnrestore[ray]).

    python benchmarks/distributed.py [--count 32] [--size 128] [--workers 1,2] [--scale 2]

Crops ``--count`` squares of ``--size`` pixels from the example photos, then
upscales them with the embedded model through scnrestore.distributed on a
local cluster of all this machine's CPUs, once per worker count (one CPU and
one torch thread per worker), each time into a fresh folder. Prints, per
worker count, images/s over the whole call (cluster already up; workers
started and the model loaded inside it) and the mean seconds a worker spent
on one image (read, restore, write), plus local ``scnrestore upscale`` runs
of the same files with ``--local-threads`` torch threads as the baseline
(1: what one worker uses). On a shared machine the figures are lower bounds.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from scnrestore import distributed
from scnrestore.batch import BatchOptions
from scnrestore.spec import RestorerSpec

ROOT = Path(__file__).resolve().parents[1]


def _cpu_name() -> str:
    """The CPU's name and the vector extensions that set torch's CPU speed."""
    name, flags = platform.processor() or "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    ext = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return f"{name} ({', '.join(ext) or 'no AVX2'})"


def make_inputs(folder: Path, count: int, size: int) -> list[Path]:
    photos = []
    for name in ("chelsea.png", "coffee.png", "astronaut_noisy25.png"):
        with PILImage.open(ROOT / "examples" / name) as im:
            photos.append(np.asarray(im.convert("RGB")))
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        a = photos[i % len(photos)]
        y = int(rng.integers(0, a.shape[0] - size))
        x = int(rng.integers(0, a.shape[1] - size))
        p = folder / f"crop{i:03d}.png"
        PILImage.fromarray(a[y : y + size, x : x + size]).save(p)
        paths.append(p)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=32)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--local-threads", default="1", help="local baselines (0: none)")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    cpus = os.cpu_count() or 1
    tmp = Path(tempfile.mkdtemp(prefix="scn-dist-bench-"))
    (tmp / "in").mkdir()
    make_inputs(tmp / "in", args.count, args.size)
    print(f"CPU: {_cpu_name()}, {cpus} cores; load average {os.getloadavg()[0]:.1f} at start")
    what = f"{args.count} crops of {args.size}x{args.size} px"
    print(f"{what}, upscale x{args.scale}, embedded model")
    for threads in [int(t) for t in args.local_threads.split(",") if int(t) > 0]:
        t0 = time.time()
        r = subprocess.run(
            [sys.executable, "-m", "scnrestore", "upscale", str(tmp / "in"), "-s",
             str(args.scale), "-o", str(tmp / f"local{threads}"), "-q"],
            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)},
        )  # fmt: skip
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        dt = time.time() - t0
        print(f"local CLI (no Ray), {threads} thread(s): {args.count / dt:.2f} images/s "
              f"({dt:.1f} s, process start and model load included)")  # fmt: skip
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray_tmp = tempfile.mkdtemp(prefix="ray")
    with distributed.connect(None, num_cpus=cpus, _temp_dir=ray_tmp):
        for n in counts:
            t0 = time.time()
            report = distributed.restore_dataset(
                [str(tmp / "in")], RestorerSpec("upscale", args.scale),
                BatchOptions("upscale", scale=args.scale, output=tmp / f"ray{n}"),
                cluster=distributed.ClusterOptions(workers=n, cpus_per_worker=1),
            )  # fmt: skip
            dt = time.time() - t0
            if report.done != args.count:
                raise SystemExit(f"{report.failed} failed; see {report.manifest}")
            per_image = sum(j.seconds for j in report.jobs) / len(report.jobs)
            print(f"ray, {n} worker(s) x 1 CPU: {args.count / dt:.2f} images/s "
                  f"({dt:.1f} s, workers' start and model load included); "
                  f"{per_image:.2f} s per image in a worker; {report.device}, "
                  f"{report.precision}")  # fmt: skip
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(ray_tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
