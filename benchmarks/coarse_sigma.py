"""Can a σ read at a coarser scale tell real camera noise from a clean photo's texture?

    python benchmarks/coarse_sigma.py [--sets realnoise,val,CBSD68,CSet14,B100]
        [--save benchmarks/results/coarse_sigma]

Real camera noise is grainy blobs 2-4 px wide, so Donoho's estimator on the
finest Haar band (``scnrestore.estimate.estimate_sigma``) reads it as σ ≈ 1.
The natural repair is to read the noise at a coarser scale. For each image
this prints two readings at box-averaging scales k = 1, 2, 4 (both read white
noise of std s as s at every k):

* ``med k``: k times Donoho's estimate (``estimate_sigma``, the tool's own)
  on the k x k box-averaged image;
* ``flat k``: the same band cut into 8 x 8 blocks, the 10th percentile of
  the blocks' RMS times k (the flattest tenth of the picture, where texture
  is least).

Rows per set: median (10th-90th percentile) over its images. For the real
pairs (the PolyU layout of benchmarks/realnoise.py) both the noisy shot and the
clean mean of the same scene are read; only statistics are printed, no pixel
is written. A reading is of use only if the noisy shots read clearly above
every clean set.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from scnrestore.estimate import estimate_sigma

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SCALES = (1, 2, 4)
BLOCK = 8


def _box(x: np.ndarray, k: int) -> np.ndarray:
    h, w = x.shape[0] // k * k, x.shape[1] // k * k
    return x[:h, :w].reshape(h // k, k, w // k, k, -1).mean(axis=(1, 3))


def _diagonal(x: np.ndarray) -> np.ndarray:
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    return (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2


def readings(img: np.ndarray) -> dict[str, float]:
    """``med k`` and ``flat k`` for k in SCALES, on the 0-255 scale."""
    out = {}
    for k in SCALES:
        boxed = _box(img.astype(np.float64), k)
        out[f"med {k}"] = k * estimate_sigma(boxed / 255.0)
        d = _diagonal(boxed) * k
        h, w = d.shape[0] // BLOCK * BLOCK, d.shape[1] // BLOCK * BLOCK
        blocks = d[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK, 3)
        rms = np.sqrt((blocks**2).mean(axis=(1, 3))).mean(axis=-1)
        out[f"flat {k}"] = float(np.percentile(rms, 10)) if rms.size else float("nan")
    return out


def _rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def set_folder(name: str, root: Path) -> Path:
    """Where a set lives: the standard sets under ``root``, val and the real
    pairs beside it."""
    return root.parent / name if name in ("val", "realnoise") else root / name


def read_set(name: str, folder: Path) -> dict[str, list[dict[str, float]]]:
    if name == "realnoise":
        names = sorted(p.name for p in (folder / "noisy").iterdir())
        return {
            "real noisy shots": [readings(_rgb(folder / "noisy" / n)) for n in names],
            "real clean means": [readings(_rgb(folder / "clean" / n)) for n in names],
        }
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".bmp"))
    return {name: [readings(_rgb(p)) for p in files]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sets", default="realnoise,val,CBSD68,CSet14,B100")
    ap.add_argument("--root", type=Path, default=SHARED / "bench", help="the standard sets")
    ap.add_argument("--save", type=Path, help="write SAVE.txt (table) and SAVE.json")
    args = ap.parse_args()
    rows: dict[str, list[dict[str, float]]] = {}
    for name in args.sets.split(","):
        folder = set_folder(name, args.root)
        if not folder.is_dir():
            raise SystemExit(f"{folder}: not found (see ../shared/README.md)")
        rows.update(read_set(name, folder))
    keys = [f"{kind} {k}" for kind in ("med", "flat") for k in SCALES]
    lines = [
        "# σ read at coarser scales: median (10th-90th percentile) over each set's images",
        f"# python benchmarks/coarse_sigma.py --sets {args.sets}",
        "| images | n | " + " | ".join(keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    for label, rs in rows.items():
        cells = []
        for key in keys:
            lo, mid, hi = np.percentile([r[key] for r in rs], [10, 50, 90])
            cells.append(f"{mid:.2f} ({lo:.2f}-{hi:.2f})")
        lines.append(f"| {label} | {len(rs)} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.with_suffix(".txt").write_text("\n".join(lines) + "\n")
        args.save.with_suffix(".json").write_text(json.dumps(rows) + "\n")


if __name__ == "__main__":
    main()
