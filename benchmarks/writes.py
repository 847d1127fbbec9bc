"""How fast can a batch's outputs be written, with one writer or several?

    python benchmarks/writes.py [--images DIR] [--count 8] [--scale 4] [--slots 1,2,4]

When the network is fast (a GPU), a batch is paced by encoding its outputs:
an x4 output has 16x the input's pixels. This feeds ``--count`` outputs of
real photo content (crops of the images in ``--images``, bicubically enlarged
``--scale`` times, as an upscale's output would be) through the CLI's own
write pipeline with 1, 2, 4 ... write slots, with no network at all, and
prints output MP/s per slot count and PNG level. Run it on the machine whose
cores you want to measure; the default slot count is ``write_slots()``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from scnrestore import batch
from scnrestore.imageio import Image

ROOT = Path(__file__).resolve().parents[1]


class _Quiet:
    def done(self, job: batch.Job) -> None:
        if job.status != "ok":
            raise SystemExit(f"{job.dst}: {job.error}")

    def note(self, msg: str) -> None:
        pass

    def tile_progress(self, name: str) -> None:
        return None


def outputs(images: Path, count: int, scale: int, side: int) -> list[np.ndarray]:
    """``count`` upscale-like outputs: photo crops enlarged ``scale`` times."""
    paths = sorted(p for p in images.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not paths:
        raise SystemExit(f"no images in {images}")
    out = []
    for i in range(count):
        with PILImage.open(paths[i % len(paths)]) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = min(side, w, h)
            x, y = (w - s) * (i % 3) // 2, (h - s) * (i % 2)
            crop = im.crop((x, y, x + s, y + s))
            out.append(np.asarray(crop.resize((s * scale, s * scale), PILImage.BICUBIC)))
    return out


def run(arrays: list[np.ndarray], slots: int, level: int, folder: Path) -> float:
    """Seconds to write every array through a pipeline with ``slots`` writers."""
    pipe = batch.Pipeline(_Quiet(), slots=slots)  # type: ignore[arg-type]
    enc = batch.Encoding(95, level)
    t0 = time.perf_counter()
    for i, a in enumerate(arrays):
        job = batch.Job(folder / f"in{i}.png", folder / f"out{i}.png")
        pipe.write(job, (Image(a), "PNG"), enc, time.time())
    pipe.finish()
    seconds = time.perf_counter() - t0
    for p in folder.iterdir():
        p.unlink()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    shared = ROOT.parent / "shared" / "data" / "val"
    ap.add_argument("--images", type=Path, default=shared if shared.is_dir() else ROOT / "examples")
    ap.add_argument("--count", type=int, default=8)
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--side", type=int, default=256, help="crop side before enlarging")
    ap.add_argument("--slots", default="", help="comma list (default: 1, 2, 4 ... up to cores)")
    ap.add_argument("--levels", default="6,1", help="PNG zlib levels")
    args = ap.parse_args()

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    slots = [int(s) for s in args.slots.split(",")] if args.slots else []
    if not slots:
        slots = [1]
        while slots[-1] * 2 <= (cores or 1):
            slots.append(slots[-1] * 2)
    arrays = outputs(args.images, args.count, args.scale, args.side)
    mp = sum(a.shape[0] * a.shape[1] for a in arrays) / 1e6
    print(
        f"{cores} usable cores, write_slots() = {batch.write_slots()}; {len(arrays)} outputs, "
        f"{mp:.1f} MP in all, from {args.images}"
    )
    print(f"{'level':>5} {'slots':>5} {'seconds':>8} {'out MP/s':>9} {'speed-up':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for level in (int(v) for v in args.levels.split(",")):
            base = None
            for n in slots:
                s = run(arrays, n, level, Path(tmp))
                base = base or s
                print(f"{level:5d} {n:5d} {s:8.2f} {mp / s:9.2f} {base / s:7.2f}x")


if __name__ == "__main__":
    main()
