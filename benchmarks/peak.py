"""Speed against the machine's own limit: how much of this device's matrix
throughput the engine turns into restored pixels, and what the faster
precision costs in quality.

    python benchmarks/peak.py [--json out.json]
    python benchmarks/peak.py --tasks upscale2 --photo-mp 0.1 --gemm-size 1024 --val-crop 96 \\
        --repeat 1                            (a quick check: under a minute of CPU on 2 cores)

It prints, in one run:

1. GEMM peak: TFLOP/s of ``a @ b`` on --gemm-size square matrices (default
   4096) at the precision ``auto`` picks on this device (or --precision) and
   at fp32; best of --repeat after a warm-up.
2. Per task (--tasks): the network's FLOPs per input pixel, counted from
   the model itself (forward hooks on every Conv2d call, 2 * k * k * cin *
   cout per output pixel, on a 64 x 64 input, summed over the pyramid levels;
   bias adds and the bilinear resampling are not counted). The paper-size x2
   network counts 3.20 MFLOP per input pixel, 3.13 of them in the blocks'
   3 x 3 convs.
3. The engine's achieved rate on a photo (examples/coffee.png mirrored out to
   --photo-mp megapixels): ``Engine(model, device, precision)`` with its
   default tile, best of --repeat after a warm-up. Input MP/s, achieved
   TFLOP/s (counted FLOPs per pixel x input pixels / time: tile overlap and
   padding are overhead, not work) and that rate as a share of the
   same-precision GEMM peak.
4. Precision cost: PSNR (PSNR-Y for upscale) at that precision minus fp32,
   degraded and restored as ``scnrestore eval`` does, on the validation photos
   (--val, default ../shared/data/val; skipped if absent) and on the same
   photos downscaled 3x with Lanczos ("val/3"). Downscaling packs more detail
   into each pixel: with the shipped x2 model fp32 scores 32.6 dB PSNR-Y on
   val/3 (31.9 on 96 px crops) against 33.7 on 96 px crops of the photos, so
   val/3 is not a high-PSNR set. --val-crop N takes centre crops (after
   the downscale) for speed where bf16 is emulated. Where the precision is fp32
   the cost is 0 by definition; --precision bf16 measures bf16's. Models:
   --model PATH (one task), else the shipped model, else random weights (no
   precision cost then).

--json PATH writes every figure with the CPU model, its flags of interest,
the card (CUDA), torch version, threads and the load average at the start:
other processes on the machine lower every rate.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np

# isort: off
import scnrestore  # noqa: F401  (before torch: it sets up torch's CPU allocator)
import torch

# isort: on
from _timing import best_of, cpu_kind, device_name
from bench import LEVEL, ROOT, TASKS, _centre_crop, load_or_random, precision_psnr

from scnrestore.engine import Engine
from scnrestore.model import condition_value, fold_weight_norm
from scnrestore.runtime import resolve_precision

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DOWN = 3  # the second quality set: the val photos downscaled this many times


def conv_flops_per_pixel(model: torch.nn.Module, side: int = 64) -> float:
    """FLOPs of every Conv2d call per input pixel (2 per multiply-add).

    Runs a copy of ``model`` on the meta device (shapes only, no arithmetic)
    with a ``side`` x ``side`` input, rounded up to the model's pad multiple so
    that no padding is counted; a block's convs fire once per pyramid level.
    Counts conditioning planes (``num_cond_channels``) as input channels.
    """
    m = int(getattr(model, "pad_multiple", 1))
    side = -(-side // m) * m
    cin = int(model.num_channels) + int(getattr(model, "num_cond_channels", 0))
    meta = copy.deepcopy(model).to("meta").eval()
    total = 0

    def count(conv: torch.nn.Conv2d, _inp: object, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = conv.kernel_size
        macs_per_px = kh * kw * (conv.in_channels // conv.groups) * conv.out_channels
        n, _, oh, ow = out.shape
        total += 2 * macs_per_px * n * oh * ow

    hooks = [
        mod.register_forward_hook(count)
        for mod in meta.modules()
        if isinstance(mod, torch.nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            meta(torch.empty(1, cin, side, side, device="meta"))
    finally:
        for h in hooks:
            h.remove()
    return total / (side * side)


def gemm_tflops(n: int, precision: str, device: torch.device, repeat: int) -> float:
    """TFLOP/s of an n x n by n x n matmul at ``precision`` (best of ``repeat``)."""
    gen = torch.Generator(device="cpu").manual_seed(0)
    a, b = (torch.randn(n, n, generator=gen).to(device, DTYPES[precision]) for _ in range(2))
    with torch.inference_mode():
        a @ b  # warm-up: kernel selection, allocator
        t = best_of(lambda: a @ b, repeat, device)
    return 2 * n**3 / t / 1e12


def photo(mp: float) -> np.ndarray:
    """examples/coffee.png mirrored out (or cropped) to about ``mp`` MP at 3:2."""
    from PIL import Image

    with Image.open(ROOT / "examples" / "coffee.png") as im:
        src = np.asarray(im.convert("RGB"))
    h = max(16, round((mp * 1e6 / 1.5) ** 0.5))
    w = round(1.5 * h)
    ph, pw = max(0, h - src.shape[0]), max(0, w - src.shape[1])
    big = np.pad(src, ((0, ph), (0, pw), (0, 0)), mode="symmetric") if ph or pw else src
    return np.ascontiguousarray(big[:h, :w])


def downscaled(images: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    """Each image downscaled :data:`DOWN` times with Lanczos."""
    from PIL import Image

    out = []
    for name, im in images:
        h, w = im.shape[:2]
        size = (max(1, w // DOWN), max(1, h // DOWN))
        small = Image.fromarray(im).resize(size, Image.Resampling.LANCZOS)
        out.append((name, np.asarray(small)))
    return out


def smoothed(images: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray]]:
    """Each image downscaled 2x and back with Lanczos: smooth, high-PSNR content."""
    from PIL import Image

    out = []
    for name, im in images:
        h, w = im.shape[:2]
        pil = Image.fromarray(im)
        small = pil.resize((max(1, w // 2), max(1, h // 2)), Image.Resampling.LANCZOS)
        out.append((name, np.asarray(small.resize((w, h), Image.Resampling.LANCZOS))))
    return out


def quality_sets(val: Path, crop: int) -> dict[str, list[tuple[str, np.ndarray]]]:
    """{"val": the photos, "val/3": downscaled, "smooth": softened}, centre-cropped."""
    from scnrestore.training.evaluate import load_images

    if not val.is_dir():
        return {}
    images = load_images(val)
    sets = {"val": images, f"val/{DOWN}": downscaled(images), "smooth": smoothed(images)}
    if crop:
        sets = {k: [(n, _centre_crop(im, crop)) for n, im in v] for k, v in sets.items()}
    return sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--gemm-size", type=int, default=4096, help="side of the GEMM matrices")
    ap.add_argument("--photo-mp", type=float, default=1.0, help="megapixels of the speed photo")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs (after a warm-up)")
    ap.add_argument(
        "--precision", default="auto", help="auto (the engine's choice here), bf16, fp16 or fp32"
    )
    ap.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    ap.add_argument(
        "--val-crop", type=int, default=0, help="measure PSNR on centre crops of this side"
    )
    ap.add_argument("--no-quality", action="store_true", help="skip the precision cost")
    ap.add_argument(
        "--channels-last",
        action="store_true",
        help="NHWC activations on every device (default: on the CPU only, as the engine does)",
    )
    ap.add_argument(
        "--no-speed", action="store_true", help="skip the timings (GEMM peak, engine rate)"
    )
    ap.add_argument("--model", type=Path, help="checkpoint file to use (with a single --tasks)")
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    keys = args.tasks.split(",")
    if unknown := [k for k in keys if k not in TASKS]:
        ap.error(f"unknown task(s) {', '.join(unknown)} (use {', '.join(TASKS)})")
    if args.model is not None and len(keys) > 1:
        ap.error("--model needs a single task (--tasks upscale2, say)")

    dev = torch.device(args.device)
    prec = resolve_precision(args.precision, dev)
    cpu = cpu_kind()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    threads = torch.get_num_threads()
    flags = " ".join(f for f, on in cpu["flags"].items() if on) or "none of interest"
    print(f"CPU {cpu['model_name']} (flags: {flags}); torch {torch.__version__}, {threads} threads")
    if dev.type != "cpu":
        print(f"device {dev}: {device_name(dev)}")
    if load is not None:
        busy = " (other processes are running: every rate is lower)" if load >= 0.5 else ""
        print(f"load average at start {load:.2f} on {os.cpu_count()} cores{busy}")
    print(f"precision {args.precision} -> {prec} on {dev.type}")

    precs = list(dict.fromkeys((prec, "fp32")))
    if args.no_speed:
        peak = {p: float("nan") for p in precs}
    else:
        peak = {p: gemm_tflops(args.gemm_size, p, dev, args.repeat) for p in precs}
        print(
            f"GEMM {args.gemm_size}^2 peak: "
            + ", ".join(f"{p} {peak[p]:.3f} TFLOP/s" for p in precs)
            + f" (best of {args.repeat})"
        )

    img = photo(args.photo_mp)
    h, w = img.shape[:2]
    in_px = h * w
    print(f"photo: examples/coffee.png mirrored to {w} x {h} ({in_px / 1e6:.2f} MP)")

    sets = {} if args.no_quality or prec == "fp32" else quality_sets(args.val, args.val_crop)
    if prec == "fp32":
        print("precision cost: 0 by definition (fp32 is the reference); --precision bf16 measures")
    elif not args.no_quality and not sets:
        print(f"precision cost: skipped, no folder {args.val}")

    rows = []
    hdr = (
        f"{'task':9} {'prec':5} {'MFLOP/px':>8} {'tile':>5} {'MP/s':>7} {'TFLOP/s':>8} "
        f"{'% peak':>7} {'dB val':>8} {'(fp32)':>7} {f'dB val/{DOWN}':>9} {'(fp32)':>7}"
        f" {'dB smooth':>9} {'(fp32)':>7}"
    )
    print(hdr)
    for key in keys:
        task, scale = TASKS[key]
        model, trained = load_or_random(task, scale, args.model)
        folded = fold_weight_norm(copy.deepcopy(model).cpu())
        flops_px = conv_flops_per_pixel(folded)
        cond = None if task == "upscale" else condition_value(task, LEVEL[task])
        engine = Engine(folded, dev, prec, channels_last=True if args.channels_last else None)
        tile = engine.auto_tile(w)
        t = float("nan")
        if not args.no_speed:
            engine.run(img, cond)  # warm-up: oneDNN primitives for these tile shapes
            t = best_of(lambda e=engine, c=cond: e.run(img, c), args.repeat, dev)
        achieved = flops_px * in_px / t / 1e12
        cost: dict[str, dict[str, float] | None] = {}
        for name in sets or ("val", f"val/{DOWN}", "smooth"):
            if prec == "fp32":
                cost[name] = {"delta_db": 0.0}
            elif sets and trained:
                res = precision_psnr(folded, task, ("fp32", prec), sets[name], scale, args.device)
                cost[name] = {"delta_db": res[prec] - res["fp32"], "fp32_db": res["fp32"]}
            else:
                cost[name] = None
        row = {
            "task": key,
            "trained": trained,
            "precision": prec,
            "mflop_per_input_px": flops_px / 1e6,
            "tile": tile,
            "channels_last": engine.channels_last,
            "seconds": t,
            "input_mp_per_s": in_px / 1e6 / t,
            "achieved_tflops": achieved,
            "peak_share": achieved / peak[prec],
            "precision_cost": cost,
            "metric": "psnr_y" if task == "upscale" else "psnr",
        }
        rows.append(row)
        print(_fmt(row))
    print(
        "dB: PSNR (PSNR-Y for upscale) at the precision minus fp32's, (fp32): fp32's own; "
        f"val/{DOWN}: the val photos downscaled {DOWN}x; smooth: downscaled 2x and back"
        + (f", centre crops of {args.val_crop} px" if args.val_crop else "")
    )
    if args.json:
        doc = {
            "command": shlex.join([Path(sys.executable).name, *sys.argv]),
            "cpu": cpu,
            "device": str(dev),
            "device_name": device_name(dev),
            "torch": torch.__version__,
            "torch_threads": threads,
            "load_average_at_start": load,
            "precision_requested": args.precision,
            "precision": prec,
            "gemm": {"size": args.gemm_size, "repeat": args.repeat, "tflops": peak},
            "photo": {"source": "examples/coffee.png", "width": w, "height": h},
            "quality": {
                "val": str(args.val) if sets else None,
                "val_crop": args.val_crop,
                "downscaled_set_factor": DOWN,
            },
            "tasks": rows,
        }
        args.json.write_text(json.dumps(doc, indent=1) + "\n")


def _fmt(r: dict) -> str:
    def db(c: dict | None, k: str, fmt: str) -> str:
        return "n/a" if c is None or k not in c else format(c[k], fmt)

    cost = r["precision_cost"]
    val, down, smooth = cost["val"], cost[f"val/{DOWN}"], cost.get("smooth")
    return (
        f"{r['task']:9} {r['precision']:5} {r['mflop_per_input_px']:8.3f} {r['tile']:5d} "
        f"{r['input_mp_per_s']:7.3f} {r['achieved_tflops']:8.3f} {100 * r['peak_share']:6.1f}% "
        f"{db(val, 'delta_db', '+.3f'):>8} {db(val, 'fp32_db', '.2f'):>7} "
        f"{db(down, 'delta_db', '+.3f'):>9} {db(down, 'fp32_db', '.2f'):>7}"
        f" {db(smooth, 'delta_db', '+.3f'):>9} {db(smooth, 'fp32_db', '.2f'):>7}"
    )


if __name__ == "__main__":
    main()
