"""Real camera noise: scnrestore denoise against the noisy shot and CBM3D.

    pip install bm3d      # only for --cbm3d
    python benchmarks/realnoise.py [--data ../shared/data/realnoise] [--sigmas auto,5,10,15]
        [--cbm3d 5,10,15,20] [--model NAME|PATH] [--limit N] [--save benchmarks/results/realnoise]

The folder holds ``noisy/NAME`` and ``clean/NAME`` pairs (the PolyU layout:
one high-ISO shot and the mean of ~500 shots of the same scene). Every image
is scored by PSNR on RGB (8 bits) against its clean mean; the table gives the
mean over the pairs and, per method, the worst image's gain over the noisy
input. ``auto`` in --sigmas is what ``scnrestore denoise`` does by default (the
blind real-noise model where it ships, else the σ-conditioned model told the
σ estimated from each image); a number tells the σ-conditioned model that σ
for every image (``--sigma N``). --cbm3d runs CBM3D (``bm3d.bm3d_rgb``) at each
single σ, the classical anchor. Per-image rows go to SAVE.json, the table to
SAVE.txt. The images themselves are never written anywhere.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "realnoise"


def load_pairs(
    folder: Path, limit: int = 0, every: int = 1
) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, noisy, clean) uint8 RGB arrays for every ``every``-th name (sorted)
    in both noisy/ and clean/, the first ``limit`` of them (0: all)."""
    from PIL import Image

    noisy_dir, clean_dir = folder / "noisy", folder / "clean"
    if not noisy_dir.is_dir() or not clean_dir.is_dir():
        raise SystemExit(
            f"{folder}: needs noisy/ and clean/ (e.g. the PolyU real-world noisy image "
            "benchmark's CroppedImages, github.com/csjunxu/PolyU-Real-World-Noisy-Images-Dataset)"
        )
    names = sorted(p.name for p in noisy_dir.iterdir() if (clean_dir / p.name).is_file())
    pairs = []
    for name in names[::every][: limit or None]:
        with Image.open(noisy_dir / name) as a, Image.open(clean_dir / name) as b:
            pairs.append((name, np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB"))))
    return pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--sigmas", default="auto", help="auto and/or told σ values, comma-separated")
    ap.add_argument("--cbm3d", default="", help="CBM3D at these σ (needs pip install bm3d)")
    ap.add_argument(
        "--cbm3d-from",
        type=Path,
        help="reuse the CBM3D columns of an earlier SAVE.json of this script "
        "(only the pairs it scored are measured)",
    )
    ap.add_argument(
        "--model",
        help="the model of 'auto' (default: what scnrestore denoise runs without --sigma: "
        "the blind real-noise model where it ships)",
    )
    ap.add_argument("--sigma-model", default="scn-denoise", help="the model told each σ")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--limit", type=int, default=0, help="only the first N pairs")
    ap.add_argument("--every", type=int, default=1, help="only every N-th pair (a quick look)")
    ap.add_argument("--save", type=Path, help="write SAVE.json (per image) and SAVE.txt (table)")
    args = ap.parse_args()

    from scnrestore import Restorer
    from scnrestore.api import auto_level
    from scnrestore.imageio import Image
    from scnrestore.metrics import psnr

    pairs = load_pairs(args.data, args.limit, args.every)
    methods = [s.strip() for s in args.sigmas.split(",") if s.strip()]
    from scnrestore.api import removed_noise
    from scnrestore.weights import auto_denoise_model

    auto_name = args.model or auto_denoise_model() or "scn-denoise"
    auto_r = told_r = None
    if "auto" in methods:
        auto_r = Restorer("denoise", auto_name, precision=args.precision)
    if any(m != "auto" for m in methods):
        told_r = Restorer("denoise", args.sigma_model, precision=args.precision)
    cbm3d = [float(s) for s in args.cbm3d.split(",") if s.strip()]
    earlier = {}
    if args.cbm3d_from:
        for r in json.loads(args.cbm3d_from.read_text())["rows"]:
            earlier[r["image"]] = {k: v for k, v in r.items() if k.startswith("cbm3d_")}
    rows = []
    t_start = time.perf_counter()
    for name, noisy, clean in pairs:
        row: dict[str, object] = {"image": name, "noisy": psnr(noisy, clean)}
        if args.cbm3d_from:
            if name not in earlier:  # a CBM3D run stopped early: the pairs it scored
                continue
            row.update(earlier[name])
        for m in methods:
            if m == "auto":  # as scnrestore denoise without --sigma
                assert auto_r is not None
                if auto_r.conditioned:
                    level = auto_level("denoise", Image(pixels=noisy, format="JPEG"))
                    row["auto_sigma"] = level
                    out = auto_r.restore_array(noisy, level)
                else:
                    out = auto_r.restore_array(noisy)
                    row["auto_sigma"] = removed_noise(noisy, out)
            else:
                assert told_r is not None
                out = told_r.restore_array(noisy, float(m))
            row[f"scn_{m}"] = psnr(out, clean)
        for s in cbm3d:
            import bm3d

            den = bm3d.bm3d_rgb(noisy.astype(np.float64) / 255, s / 255)
            den8 = np.clip(np.rint(den * 255), 0, 255).astype(np.uint8)
            row[f"cbm3d_{s:g}"] = psnr(den8, clean)
        rows.append(row)
        if args.save:  # as it goes: a long CBM3D run stopped halfway keeps its rows
            args.save.parent.mkdir(parents=True, exist_ok=True)
            args.save.with_suffix(".json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}),
              flush=True)  # fmt: skip
    keys = [k for k in rows[0] if k not in ("image", "noisy", "auto_sigma")]
    noisy_mean = float(np.mean([r["noisy"] for r in rows]))
    lines = [
        f"# {len(rows)} pairs from {args.data.name} (every {args.every}); PSNR RGB (dB) "
        f"against clean/; auto: {auto_name}; told σ: {args.sigma_model}; "
        f"{platform.processor() or platform.machine()}",
        f"# python benchmarks/realnoise.py --sigmas {args.sigmas}"
        + (f" --every {args.every}" if args.every != 1 else "")
        + (f" --limit {args.limit}" if args.limit else "")
        + (f" --cbm3d {args.cbm3d}" if args.cbm3d else "")
        + (f" --cbm3d-from {args.cbm3d_from}" if args.cbm3d_from else "")
        + (f" --model {args.model}" if args.model else "")
        + (f" --sigma-model {args.sigma_model}" if args.sigma_model != "scn-denoise" else ""),
        f"{'method':<14} {'mean':>7} {'gain':>6} {'worst gain':>10}",
        f"{'noisy input':<14} {noisy_mean:7.2f} {0:+6.2f} {0:+10.2f}",
    ]
    summary = {"noisy": noisy_mean}
    for k in keys:
        vals = np.array([r[k] for r in rows], np.float64)
        gains = vals - np.array([r["noisy"] for r in rows])
        summary[k] = float(vals.mean())
        lines.append(f"{k:<14} {vals.mean():7.2f} {gains.mean():+6.2f} {gains.min():+10.2f}")
    told = [k for k in keys if k.startswith("scn_") and k != "scn_auto"]
    if len(told) > 1:  # the ceiling of a perfect per-photo σ reader for this model
        best = np.array([max(r[k] for k in told) for r in rows])
        gains = best - np.array([r["noisy"] for r in rows])
        summary["best_told_per_image"] = float(best.mean())
        cells = f"{best.mean():7.2f} {gains.mean():+6.2f} {gains.min():+10.2f}"
        lines.append(f"{'best told σ':<14} {cells}")
    if "auto_sigma" in rows[0]:
        sig = [r["auto_sigma"] for r in rows]
        what = "estimated σ" if auto_r is not None and auto_r.conditioned else "σ removed"
        lines.append(f"# auto, {what}: median {np.median(sig):.1f}, {min(sig):.1f}-{max(sig):.1f}")
    lines.append(f"# {time.perf_counter() - t_start:.0f} s")
    print("\n".join(lines))
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.with_suffix(".json").write_text(
            json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n"
        )
        args.save.with_suffix(".txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
