"""Speed, memory and quality of scnrestore's inference paths.

    python benchmarks/bench.py [--tasks upscale2,denoise] [--size 256] [--json out.json]
    python benchmarks/bench.py --tasks upscale2 --model runs/upscale_x2/model.safetensors

For each task and precision it prints: input megapixels per second through
the tiled engine, the time that rate gives for a 12 MP photo, the peak RSS of
the process so far, the PSNR change against fp32 on the validation images
(--val, default ../shared/data/val; skipped if absent), and the tiling
overhead (tiled vs whole-image time). It also times plain eager fp32 PyTorch
of the same network and weights (weight norm unfolded, NCHW, no tiling) and
reports the speed-up of each path over it. Start-up: wall time of
``scnrestore --help`` and ``scnrestore models list``.

Models: ``--model PATH`` (one task only), else the shipped model of each task
when present, else a randomly initialised paper-size network (speed does not
depend on the weights; the PSNR column then says "n/a").
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

# isort: off
import scnrestore  # noqa: F401  (before torch: it sets up torch's CPU allocator)
import torch

# isort: on
from _timing import where

from scnrestore.engine import Engine
from scnrestore.model import SCN, SCNConfig, condition_value, fold_weight_norm

ROOT = Path(__file__).resolve().parents[1]
TASKS = {
    "upscale2": ("upscale", 2),
    "upscale3": ("upscale", 3),
    "upscale4": ("upscale", 4),
    "denoise": ("denoise", 1),
    "dejpeg": ("dejpeg", 1),
}
LEVEL = {"upscale": None, "denoise": 25.0, "dejpeg": 20.0}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_or_random(
    task: str, scale: int, model_path: Path | None = None
) -> tuple[torch.nn.Module, bool]:
    """(unfolded weight-norm model, trained?); ``model_path`` must load."""
    from scnrestore import weights
    from scnrestore.checkpoint import load_state_dict, read_metadata
    from scnrestore.model import config_from_state_dict

    def load(path: Path, hp: dict) -> torch.nn.Module:
        meta = read_metadata(path).get("model_config") or {}
        hp = {k: meta[k] for k in ("num_scales", "image_mean") if k in meta} | hp
        sd = load_state_dict(path)
        wn = any(k.endswith(".weight_v") for k in sd)  # else already folded
        model = SCN(config_from_state_dict(sd, **hp), weight_norm=wn)
        model.load_state_dict(sd)
        if int(model.scale) != scale or bool(model.num_cond_channels) != (task != "upscale"):
            raise SystemExit(f"{path}: not a model for {task} x{scale}")
        return model.eval()

    if model_path is not None:
        return load(model_path, {}), True
    try:
        path, hp, _ = weights.resolve(weights.default_model_name(task, scale))
        return load(path, hp), True
    except Exception as exc:  # say why: a random network has no PSNR to report
        print(f"{task} x{scale}: shipped weights not loaded ({type(exc).__name__}: {exc});"
              " timing a random network of the same size", file=sys.stderr)  # fmt: skip
        torch.manual_seed(0)
        cond = 0 if task == "upscale" else 1
        return SCN(SCNConfig(scale=scale, num_cond_channels=cond)).eval(), False


def timeit(fn, repeat: int) -> float:
    fn()  # warm-up: oneDNN primitive creation, allocator
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def eager_fp32(
    model: torch.nn.Module, img: np.ndarray, cond: float | None, device: str = "cpu"
) -> np.ndarray:
    """The baseline: plain eager fp32 PyTorch, whole image, NCHW, weight norm live."""
    x = torch.from_numpy(img.astype(np.float32) / 255).permute(2, 0, 1)[None].to(device)
    if cond is not None:
        x = torch.cat([x, torch.full_like(x[:, :1], cond)], 1)
    with torch.no_grad():
        y = model.to(device)(x)
    return (y.clamp(0, 1)[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)


def val_psnr_delta(
    folded, task: str, precision: str, val: Path, scale: int, device: str = "cpu", crop: int = 0
) -> float | None:
    """PSNR at ``precision`` minus fp32's on the images in ``val`` (None: no folder)."""
    from scnrestore.training.evaluate import load_images

    if not val.is_dir():
        return None
    images = load_images(val)
    if crop:  # centre crops: emulated bf16 (a CPU without it) is ~10x slower than fp32
        images = [(name, _centre_crop(im, crop)) for name, im in images]
    res = precision_psnr(folded, task, ("fp32", precision), images, scale, device)
    return res[precision] - res["fp32"]


def precision_psnr(
    folded: torch.nn.Module,
    task: str,
    precisions: tuple[str, ...],
    images: list[tuple[str, np.ndarray]],
    scale: int,
    device: str = "cpu",
) -> dict[str, float]:
    """Mean PSNR (PSNR-Y for upscale) on ``images`` (name, clean uint8 RGB) at
    each precision, degraded and restored as ``scnrestore eval`` does."""
    from scnrestore.api import Restorer
    from scnrestore.training.evaluate import evaluate, summarise

    key = "psnr_y" if task == "upscale" else "psnr"
    res = {}
    for p in precisions:
        r = Restorer(task, folded, scale=scale, device=device, precision=p)
        res[p] = summarise(evaluate(r, images, LEVEL[task]))[key]
    return res


def _centre_crop(img: np.ndarray, side: int) -> np.ndarray:
    h, w = img.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return img[top : top + side, left : left + side]


def startup() -> dict[str, float]:
    out = {}
    for name, args in (("help", ["--help"]), ("models_list", ["models", "list"])):
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "scnrestore", *args], capture_output=True)
            times.append(time.perf_counter() - t0)
        out[name] = min(times)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tasks", default="upscale2,upscale4,denoise")
    ap.add_argument("--size", type=int, default=256, help="input side for the speed runs")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    ap.add_argument("--no-quality", action="store_true", help="skip the PSNR-vs-fp32 column")
    ap.add_argument(
        "--val-crop", type=int, default=0, help="measure PSNR on centre crops of this side"
    )
    ap.add_argument("--model", type=Path, help="checkpoint file to use (with a single --tasks)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps")
    ap.add_argument("--no-startup", action="store_true", help="skip the start-up timing")
    args = ap.parse_args()
    if args.model is not None and "," in args.tasks:
        ap.error("--model needs a single task (--tasks upscale2, say)")

    from PIL import Image

    photo = ROOT / "examples" / "coffee.png"
    with Image.open(photo) as im:
        src = np.asarray(im.convert("RGB").resize((args.size, args.size), Image.Resampling.LANCZOS))
    mp = args.size * args.size / 1e6
    big = np.tile(src, (3, 3, 1))  # 9x the pixels: several tiles
    rows = []
    dev = args.device
    print(f"{where(dev)}, input {args.size}px")
    hdr = f"{'task':9} {'path':22} {'MP/s':>7} {'s/12MP':>8} {'x eager':>8} {'RSS MiB':>8} {'dPSNR':>7} {'tile ovh':>8}"  # noqa: E501
    print(hdr)
    for key in args.tasks.split(","):
        task, scale = TASKS[key]
        model, trained = load_or_random(task, scale, args.model)
        print(f"{key}: {'model ' + str(args.model) if args.model else 'default model'}"
              f" ({'trained' if trained else 'random weights, no PSNR'})")  # fmt: skip
        cond = None if task == "upscale" else condition_value(task, LEVEL[task])
        t_eager = timeit(lambda m=model, c=cond: eager_fp32(m, src, c, dev), args.repeat)
        folded = fold_weight_norm(copy.deepcopy(model).cpu())  # same weights, folded
        rows.append(_row(key, "eager fp32 (baseline)", mp, t_eager, t_eager, None, None))
        print(_fmt(rows[-1]))
        for prec in args.precisions.split(","):
            whole = Engine(folded, dev, prec, tile=0)
            tiled = Engine(folded, dev, prec, tile=None)
            t_whole = timeit(lambda e=whole, c=cond: e.run(src, c), args.repeat)
            t_tiled = timeit(lambda e=tiled, c=cond: e.run(big, c), 1) / 9
            dpsnr = None
            if trained and not args.no_quality and prec != "fp32":
                dpsnr = val_psnr_delta(folded, task, prec, args.val, scale, dev, args.val_crop)
            rows.append(
                _row(key, f"scnrestore {prec}", mp, t_whole, t_eager, dpsnr, t_tiled / t_whole - 1)
            )
            print(_fmt(rows[-1]))
    st = {} if args.no_startup else startup()
    if st:
        print(f"start-up: --help {st['help']:.2f} s, models list {st['models_list']:.2f} s")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "startup_s": st}, indent=1))


def _row(task, path, mp, t, t_eager, dpsnr, tile_overhead) -> dict:
    return {
        "task": task,
        "path": path,
        "mp_per_s": mp / t,
        "s_per_12mp": 12 / (mp / t),
        "speedup_vs_eager": t_eager / t,
        "peak_rss_mib": peak_rss_mib(),
        "psnr_delta_db": dpsnr,
        "tiling_overhead": tile_overhead,
    }


def _fmt(r: dict) -> str:
    d = "n/a" if r["psnr_delta_db"] is None else f"{r['psnr_delta_db']:+.3f}"
    o = "" if r["tiling_overhead"] is None else f"{100 * r['tiling_overhead']:+.0f}%"
    return (
        f"{r['task']:9} {r['path']:22} {r['mp_per_s']:7.3f} {r['s_per_12mp']:8.1f} "
        f"{r['speedup_vs_eager']:8.2f} {r['peak_rss_mib']:8.0f} {d:>7} {o:>8}"
    )


if __name__ == "__main__":
    main()
