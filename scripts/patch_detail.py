"""How much detail training patches carry, and what ``--detail-floor`` does to it.

    python scripts/patch_detail.py ../shared/data/train ../shared/data/val --floors 4,10,15

For each directory, draws random PATCH-px crops (uniform, as the trainer does
without a floor) and prints quantiles of their mean |Laplacian| of grey
(``scnrestore.training.sampler.patch_detail``), the per-image medians, and for each floor
the acceptance rate and quantiles of the patches the trainer would keep.
"""

from __future__ import annotations

import argparse

import numpy as np

from scnrestore.training.evaluate import load_images
from scnrestore.training.sampler import patch_detail

QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def fmt(values: np.ndarray) -> str:
    return " ".join(f"{v:6.2f}" for v in np.quantile(values, QUANTILES))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--per-image", type=int, default=200, help="patches drawn per image")
    ap.add_argument("--floors", default="4,10,15", help="detail floors to simulate")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    p = args.patch
    print(f"mean |Laplacian| of {p}-px patches; quantiles {', '.join(map(str, QUANTILES))}")
    for d in args.dirs:
        values, medians = [], []
        for name, img in load_images(d):
            h, w = img.shape[:2]
            v = [
                patch_detail(img[t : t + p, s : s + p])
                for t, s in zip(rng.integers(0, h - p + 1, args.per_image),
                                rng.integers(0, w - p + 1, args.per_image))
            ]  # fmt: skip
            values += v
            medians.append(f"{name}={np.median(v):.1f}")
        a = np.asarray(values)
        print(f"{d}: {len(a)} patches   {fmt(a)}")
        print("  per-image medians: " + " ".join(medians))
        for floor in (float(f) for f in args.floors.split(",") if f):
            keep = np.minimum(1.0, a / floor)
            kept = a[rng.random(len(a)) < keep]
            print(f"  floor {floor:g}: keeps {keep.mean():5.1%}   {fmt(kept)}")


if __name__ == "__main__":
    main()
