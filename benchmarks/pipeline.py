"""How fast does the training data pipeline alone feed patches (no model)?

    python benchmarks/pipeline.py [--data ../shared/data/train] [--images 8]
        [--device cpu|cuda] [--threads 1] [--seconds 3] [--pipelines host,device]

For each training set-up (upscale x2 at 48 px, denoise at 64 px, dejpeg at
96 px, JPEG-aware x2 at 48 px; the detail floor 10 and image scales 1, 0.5
the recent CPU stages use) and batch 16 and 64, it prints patches per second
of the host sampler (numpy + Pillow per patch, train.PatchSampler) and of the
device pipeline (torch ops from images and a JPEG bank made once,
devicedata.DeviceSampler), the device pipeline's start-up time (the
bank, in worker processes) and the data it keeps (images, LR, bank).
Then what the CPU trainer consumes, steps/s x batch from the CPU stages'
logs in training-records/*/ (the fastest of each task's latest three CPU stages, by
median it_s), and the ratio device pipeline / consumption: the issue wants
>= 10x.

--images N uses the first N training images: the rate per patch does not
depend on how many there are, only the start-up time and memory do.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from _timing import where  # noqa: E402

from scnrestore.training.config import TrainConfig  # noqa: E402
from scnrestore.training.devicedata import DeviceSampler  # noqa: E402
from scnrestore.training.evaluate import load_images  # noqa: E402
from scnrestore.training.sampler import PatchSampler  # noqa: E402

SETUPS = {
    "upscale_x2": dict(task="upscale", scale=2, patch=48),
    "denoise": dict(task="denoise", patch=64, level_focus=25),
    "dejpeg": dict(task="dejpeg", patch=96),
    "jpeg_x2": dict(task="upscale", scale=2, patch=48, jpeg_range=(30, 100), jpeg_clean=0.2),
}
# the training-records/ folders whose CPU stages tell what the trainer consumes
LOGS = {
    "upscale_x2": "upscale_x*",
    "denoise": "denoise",
    "dejpeg": "dejpeg",
    "jpeg_x2": "upscale_x*",
}


def rate(draw, batch: int, seconds: float, device: torch.device) -> float:
    """Patches per second of ``draw()`` (one batch a call), after one warm-up call."""
    draw()
    n, t0 = 0, time.perf_counter()
    while True:
        out = draw()
        n += 1
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        dt = time.perf_counter() - t0
        if dt >= seconds and n >= 3:
            return n * batch / dt
        del out


def consumption(pattern: str) -> tuple[float, str]:
    """Patches/s the CPU trainer used: the fastest of the latest three CPU
    stages' (median it_s) x batch, and which stages."""
    runs = []
    for run_json in ROOT.glob(f"training-records/{pattern}/*cpu*.run.json"):
        log = run_json.with_name(run_json.name.replace(".run.json", ".log.jsonl"))
        if not log.exists():
            continue
        doc = json.loads(run_json.read_text())
        speeds = [json.loads(ln).get("it_s", 0) for ln in log.read_text().splitlines() if ln]
        speeds = [s for s in speeds if s > 0]
        if speeds:
            when = json.loads(log.read_text().splitlines()[-1]).get("time", 0)
            runs.append((when, statistics.median(speeds) * doc["config"]["batch"], run_json.name))
    runs.sort()
    latest = runs[-3:]
    if not latest:
        return float("nan"), "no CPU logs"
    names = ", ".join(f"{n.split('.')[0]} {r:.1f}" for _, r, n in latest)
    return max(r for _, r, _ in latest), f"{pattern}: {names}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "train"))
    ap.add_argument("--images", type=int, default=8, help="first N images (0: all)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--seconds", type=float, default=3.0, help="timed per measurement")
    ap.add_argument("--batches", default="16,64")
    ap.add_argument("--pipelines", default="host,device")
    ap.add_argument("--setups", default=",".join(SETUPS))
    ap.add_argument("--workers", type=int, default=None, help="bank processes (default: all CPUs)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    images = [im for _, im in load_images(args.data)]
    if args.images:
        images = images[: args.images]
    mp = sum(im.shape[0] * im.shape[1] for im in images) / 1e6
    print(f"{where(dev)}; {len(images)} images ({mp:.1f} MP) from {args.data}; "
          f"detail floor 10, image scales 1,0.5")  # fmt: skip
    batches = [int(b) for b in args.batches.split(",")]
    pipelines = args.pipelines.split(",")
    print(f"{'set-up':11} {'batch':>5} " + " ".join(f"{p + ' p/s':>11}" for p in pipelines)
          + f" {'start s':>8} {'data MB':>8} {'trainer p/s':>11} {'ratio':>7}")  # fmt: skip
    notes = []
    for name in args.setups.split(","):
        used, source = consumption(LOGS[name])
        notes.append(source)
        cfg = TrainConfig(data=args.data, out="-", batch=batches[0], detail_floor=10.0,
                          image_scales=(1.0, 0.5), **SETUPS[name])  # fmt: skip
        sampler = None
        if "host" in pipelines:
            sampler = PatchSampler(cfg, images, np.random.default_rng(0))
        ds, start, mb = None, float("nan"), float("nan")
        if "device" in pipelines:
            t0 = time.perf_counter()
            ds = DeviceSampler(cfg, images, dev, workers=args.workers)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            start = time.perf_counter() - t0
            mb = (ds.src.numel() + (ds.hr.numel() if ds.hr is not ds.src else 0)) / 1e6
        for b in batches:
            cfg.batch = b  # both samplers read it per batch
            rates = {}
            if sampler is not None:
                rates["host"] = rate(sampler.batch, b, args.seconds, dev)
            if ds is not None:
                rates["device"] = rate(ds.next, b, args.seconds, dev)
            best = rates.get("device", max(rates.values()))
            cols = " ".join(f"{rates[p]:11.0f}" for p in pipelines)
            tail = f"{start:8.1f} {mb:8.0f} {used:11.1f} {best / used:6.0f}x"
            print(f"{name:11} {b:5d} {cols} {tail}", flush=True)
        del sampler, ds
    print(
        "trainer p/s: the fastest of the latest three CPU stages, median it_s x batch "
        "(training-records/*/*cpu*.log.jsonl):"
    )
    for n in dict.fromkeys(notes):
        print("  " + n)


if __name__ == "__main__":
    main()
