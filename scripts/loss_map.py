"""Where on one image a candidate loses to a reference model, and what it draws there.

    python scripts/loss_map.py runs/cpu47_x2_mix --name scn-x2 --set val --image coffee.png
    python scripts/loss_map.py runs/dn26_mid --name scn-denoise --set CBSD68 \
        --image 102061.png --level 25 --against baseline --out /tmp/102061_s25

The guard (scripts/guard.py) names an image that loses more than its bound;
this says where the loss lives and why. The image is degraded and restored
exactly as the guard scores it (scnrestore.training.evaluate, same seed, same
path: the reference on its default path, the candidate with the entry's
schedule), so the two figures printed are the guard's. Then the extra squared
error (candidate minus reference, on the metric's channel: luma for SR, RGB
otherwise) is split

  - by detail: ten bands of the clean image's local gradient (a loss in the
    flat tenth is banding or tint; in the busiest tenth, texture or aliasing);
  - by place: the BLOCK x BLOCK tiles that hold most of it, with each tile's
    own PSNR change. "3 of 240 tiles hold 90 %" is one region to look at, not
    a drift over the whole photo.

--out PREFIX writes PREFIX.png: the worst tile with a tile of context round
it, enlarged, side by side: clean | input (bicubic upscale for SR) | reference
| candidate; and PREFIX.json, the figures printed.

--against: the shipped model of --name (default); "baseline", the weights
benchmarks/results/guard_cache/baselines.json names for it (read back from this
repository's git history, where the shipped file of that sha256 was committed);
or any checkpoint file. Exit 2 when the image, set or weights cannot be found.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import guard  # noqa: E402  (scripts/guard.py: the guard's sets, levels and restorers)

from scnrestore.metrics import psnr, psnr_y, rgb_to_y  # noqa: E402
from scnrestore.training.evaluate import eval_input  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BANDS = 10


@dataclass
class Case:
    """One image at one level, restored by both models."""

    name: str
    clean: np.ndarray  # cropped to a multiple of the scale, uint8 RGB
    baseline: np.ndarray  # what the input looks like at the output size
    reference: np.ndarray
    candidate: np.ndarray
    shave: int
    metric: str  # psnr_y | psnr


def _figure(case: Case, out: np.ndarray) -> float:
    f = psnr_y if case.metric == "psnr_y" else psnr
    return float(f(out, case.clean, case.shave))


def _plane(case: Case, img: np.ndarray) -> np.ndarray:
    """The metric's channel(s), shaved: luma (H, W) or RGB mean-squared-ready (H, W, 3)."""
    a = rgb_to_y(img) if case.metric == "psnr_y" else np.asarray(img, np.float64)
    s = case.shave
    return a[s:-s, s:-s] if s else a


def error_maps(case: Case) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-pixel squared error of reference and candidate, and the clean
    image's local detail (gradient magnitude), all H x W on the shaved frame."""
    clean = _plane(case, case.clean)
    ref = (_plane(case, case.reference) - clean) ** 2
    cand = (_plane(case, case.candidate) - clean) ** 2
    lum = clean if clean.ndim == 2 else clean.mean(axis=2)
    if ref.ndim == 3:
        ref, cand = ref.mean(axis=2), cand.mean(axis=2)
    gy, gx = np.gradient(lum)
    return ref, cand, np.hypot(gx, gy)


def by_detail(ref: np.ndarray, cand: np.ndarray, detail: np.ndarray) -> list[dict[str, float]]:
    """The extra error in each tenth of the pixels by detail (flattest first):
    its share of the whole image's extra error and the band's PSNR change."""
    extra = float((cand - ref).sum())
    order = np.argsort(detail, axis=None, kind="stable")
    rows = []
    for part in np.array_split(order, BANDS):
        r, c = ref.flat[part], cand.flat[part]
        rows.append({
            "detail": round(float(detail.flat[part].mean()), 2),
            "share": float((c - r).sum()) / abs(extra) if extra else 0.0,
            "delta_db": _db(r.mean(), c.mean()),
        })  # fmt: skip
    return rows


def _db(ref_mse: float, cand_mse: float) -> float:
    """PSNR change from reference to candidate for these mean squared errors."""
    if ref_mse <= 0 or cand_mse <= 0:
        return 0.0
    return float(10 * np.log10(ref_mse / cand_mse))


def by_block(ref: np.ndarray, cand: np.ndarray, block: int) -> list[dict[str, Any]]:
    """Every whole BLOCK x BLOCK tile (origin top left, in shaved-frame pixels)
    with its share of the image's extra error and its PSNR change, worst first."""
    extra = float((cand - ref).sum())
    h, w = ref.shape
    rows = []
    for y in range(0, h - block + 1, block):
        for x in range(0, w - block + 1, block):
            r, c = ref[y : y + block, x : x + block], cand[y : y + block, x : x + block]
            rows.append({
                "y": y, "x": x,
                "share": float((c - r).sum()) / abs(extra) if extra else 0.0,
                "delta_db": _db(float(r.mean()), float(c.mean())),
            })  # fmt: skip
    rows.sort(key=lambda t: -t["share"])
    return rows


def concentration(blocks: list[dict[str, Any]], share: float = 0.5) -> int:
    """How many of the worst tiles it takes to hold ``share`` of the extra error
    (all of them where the candidate is better overall)."""
    total = 0.0
    for i, b in enumerate(blocks, 1):
        total += b["share"]
        if total >= share:
            return i
    return len(blocks)


def restore_case(ref_r: Any, cand_r: Any, lv: Any, images: list, name: str, schedule: Any) -> Case:
    """Degrade ``name`` as evaluate() does (evaluate.eval_input: its index in
    ``images`` seeds the noise) and restore it with both; the reference on its
    default path."""
    idx = [n for n, _ in images].index(name)
    jpeg = None if lv.jpeg is None else int(lv.jpeg)
    clean, inp, base = eval_input(lv.task, images[idx][1], lv.scale, lv.level, idx, jpeg)
    guard.prepare(ref_r, lv, None)
    guard.prepare(cand_r, lv, schedule)
    told = lv.level if jpeg is None else jpeg
    return Case(
        name, clean, base, ref_r.restore_array(inp, told), cand_r.restore_array(inp, told),
        lv.scale if lv.task == "upscale" else 0, lv.metric,
    )  # fmt: skip


def crop_panel(case: Case, worst: dict[str, Any], block: int, zoom: int) -> tuple[Any, tuple]:
    """The worst tile with one tile of context round it (in image pixels), as
    clean | input | reference | candidate side by side, enlarged ``zoom`` times."""
    from PIL import Image

    s, (h, w) = case.shave, case.clean.shape[:2]
    y0, x0 = max(0, worst["y"] + s - block), max(0, worst["x"] + s - block)
    y1, x1 = min(h, worst["y"] + s + 2 * block), min(w, worst["x"] + s + 2 * block)
    ph, pw = (y1 - y0) * zoom, (x1 - x0) * zoom
    canvas = Image.new("RGB", (4 * pw + 3 * 4, ph), (255, 255, 255))
    for i, img in enumerate((case.clean, case.baseline, case.reference, case.candidate)):
        crop = Image.fromarray(np.ascontiguousarray(img[y0:y1, x0:x1]))
        canvas.paste(crop.resize((pw, ph), Image.NEAREST), (i * (pw + 4), 0))
    return canvas, (y0, x0, y1, x1)


def baseline_file(name: str, cache_dir: Path, work: Path, repo: Path = ROOT) -> Path:
    """The weights baselines.json names for ``name``, read from ``repo``'s git
    history of scnrestore/models/NAME.safetensors into ``work``."""
    doc = json.loads((cache_dir / "baselines.json").read_text())
    if name not in doc:
        raise FileNotFoundError(f"{cache_dir / 'baselines.json'}: no baseline for {name}")
    want = doc[name]["sha256"]
    rel = f"scnrestore/models/{name}.safetensors"
    log = subprocess.run(["git", "-C", str(repo), "log", "--format=%H", "--", rel],
                         capture_output=True, text=True, check=False)  # fmt: skip
    for commit in log.stdout.split():
        blob = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{rel}"],
                              capture_output=True, check=False).stdout  # fmt: skip
        if hashlib.sha256(blob).hexdigest() == want:
            out = work / f"{name}-{want[:12]}.safetensors"
            out.write_bytes(blob)
            return out
    raise FileNotFoundError(f"{rel}: no commit in this repository holds sha256 {want[:12]}")


def report(case: Case, block: int) -> dict[str, Any]:
    ref, cand, detail = error_maps(case)
    blocks = by_block(ref, cand, block)
    return {
        "image": case.name,
        "metric": case.metric,
        "reference": round(_figure(case, case.reference), 4),
        "candidate": round(_figure(case, case.candidate), 4),
        "delta": round(_figure(case, case.candidate) - _figure(case, case.reference), 4),
        "by_detail": by_detail(ref, cand, detail),
        "block": block,
        "tiles": len(blocks),
        "half_in": concentration(blocks, 0.5),
        "ninety_in": concentration(blocks, 0.9),
        "worst": blocks[:8],
    }


def text(doc: dict[str, Any], against: str) -> str:
    lines = [
        f"{doc['image']} ({doc['set']} {doc['level']}, {doc['metric']}): "
        f"{against} {doc['reference']:.3f}, candidate {doc['candidate']:.3f} "
        f"({doc['delta']:+.3f} dB)",
        "extra squared error by detail, flattest tenth first (share of the image's; band dB):",
        "  " + "  ".join(f"{r['share']:+.2f}" for r in doc["by_detail"]),
        "  " + "  ".join(f"{r['delta_db']:+.2f}" for r in doc["by_detail"]),
        f"{doc['half_in']} of {doc['tiles']} tiles ({doc['block']} px) hold half of it, "
        f"{doc['ninety_in']} hold 90 %; the worst (y, x of the shaved frame):",
    ]
    for b in doc["worst"]:
        where = f"({b['y']}, {b['x']})"
        lines.append(f"  {where}: {b['share']:+.1%} of it, {b['delta_db']:+.2f} dB there")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("candidate", type=Path, help="a checkpoint file or a run folder")
    ap.add_argument("--name", required=True, help="the registry name it would replace")
    ap.add_argument("--set", required=True, help=f"one of {', '.join(guard.ALL_SETS)}")
    ap.add_argument("--image", required=True, help="file name within the set")
    ap.add_argument("--level", default="", help="σ / quality / x2 q70 level (default: the first)")
    ap.add_argument("--against", default="shipped", help="shipped | baseline | a checkpoint")
    ap.add_argument("--block", type=int, default=32, help="tile side in pixels")
    ap.add_argument("--out", type=Path, metavar="PREFIX", help="write PREFIX.png and PREFIX.json")
    ap.add_argument("--zoom", type=int, default=3)
    ap.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16", "fp16"))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--root", type=Path, default=guard.DEFAULT_BENCH)
    ap.add_argument("--val", type=Path, default=guard.DEFAULT_VAL)
    ap.add_argument("--cache-dir", type=Path, default=guard.CACHE_DIR)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        task, scale, jpeg = guard.model_kind(args.name)
        levels = guard.plan(task, scale, jpeg, [args.set], [args.level] if args.level else None)
        missing = guard.missing_data(levels, args.root, args.val)
        if missing:
            raise FileNotFoundError(missing)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lv = levels[0]
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    opts = guard.Options(precision=args.precision, root=args.root, val=args.val)
    with tempfile.TemporaryDirectory() as work:
        try:
            cand = guard.candidate_file(args.candidate)
            if not cand.is_file():
                raise FileNotFoundError(f"{cand}: no such checkpoint")
            ref_name: Any = args.name
            if args.against == "baseline":
                ref_name = baseline_file(args.name, args.cache_dir, Path(work))
            elif args.against != "shipped":
                ref_name = Path(args.against)
                if not ref_name.is_file():
                    raise FileNotFoundError(f"{ref_name}: no such checkpoint")
            images = guard.set_images(lv, opts, {})
            if args.image not in [n for n, _ in images]:
                raise FileNotFoundError(f"{args.image}: not in {lv.set}")
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        shipped_r, cand_r = guard.restorers(task, scale, args.name, cand, opts)
        ref_r = shipped_r
        if ref_name != args.name:
            ref_r = guard.restorers(task, scale, args.name, Path(ref_name), opts)[1]
        schedule = shipped_r.model.entry.raw.get(guard.TASK_SCHEDULES.get(task, ""))
        case = restore_case(ref_r, cand_r, lv, images, args.image, schedule)
    doc = {"set": lv.set, "level": lv.label, "against": args.against,
           "candidate_path": str(cand), **report(case, args.block)}  # fmt: skip
    print(text(doc, args.against))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        panel, box = crop_panel(case, doc["worst"][0], args.block, args.zoom)
        doc["panel_box"] = {"y0": box[0], "x0": box[1], "y1": box[2], "x1": box[3]}
        panel.save(args.out.with_suffix(".png"))
        args.out.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {args.out.with_suffix('.png')} (clean | input | {args.against} | candidate, "
              f"rows {box[0]}-{box[2]}, columns {box[1]}-{box[3]}) and .json")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
