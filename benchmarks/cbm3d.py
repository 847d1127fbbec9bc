"""CBM3D on the validation photos: the anchor a denoise model must beat.

    pip install bm3d
    python benchmarks/cbm3d.py [--val ../shared/data/val] [--sigmas 15,25,50] [--model NAME|PATH]

Noise is added exactly as `scnrestore eval` adds it (per-image seeds, clipped
and rounded to 8 bits), so the figures compare one to one. With --model, the
same images also go through that scnrestore denoise model and both means are
printed side by side.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from scnrestore.metrics import psnr
from scnrestore.training import degrade
from scnrestore.training.evaluate import load_images

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    ap.add_argument("--sigmas", default="15,25,50")
    ap.add_argument("--model")
    ap.add_argument("--limit", type=int, default=0, help="only the first N images")
    args = ap.parse_args()
    import bm3d

    images = load_images(args.val)[: args.limit or None]
    restorer = None
    if args.model:
        from scnrestore import Restorer

        restorer = Restorer("denoise", args.model)
    results = {}
    for sigma in map(float, args.sigmas.split(",")):
        rows = []
        for idx, (name, clean) in enumerate(images):
            noisy, _ = degrade.make_input("denoise", clean, 1, sigma, np.random.default_rng(idx))
            t0 = time.perf_counter()
            den = bm3d.bm3d_rgb(noisy.astype(np.float64) / 255, sigma / 255)
            den8 = np.clip(np.rint(den * 255), 0, 255).astype(np.uint8)
            row = {"image": name, "noisy": psnr(noisy, clean), "cbm3d": psnr(den8, clean),
                   "cbm3d_s": time.perf_counter() - t0}  # fmt: skip
            if restorer is not None:
                row["scn"] = psnr(restorer.restore_array(noisy, sigma), clean)
            rows.append(row)
            shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}
            print(json.dumps({"sigma": sigma, **shown}), flush=True)
        mean = {k: float(np.mean([r[k] for r in rows])) for k in rows[0] if k != "image"}
        results[sigma] = mean
        print(f"sigma {sigma:g}: " + ", ".join(f"{k} {v:.2f}" for k, v in mean.items()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
