"""Never worse than doing nothing: `scnrestore denoise` (σ auto) on clean and
nearly clean photos.

    python benchmarks/clean_inputs.py [--sets val,CBSD68] [--cases clean,s1,s2,q90]
        [--model NAME|PATH] [--save benchmarks/results/clean_inputs]

For each image of each set (../shared/data/val, ../shared/data/bench/NAME) it
makes these inputs and runs what `scnrestore denoise photo` runs by default
(the blind real-noise model where the registry ships it; --model overrides):

* ``clean``: the photo itself. There is nothing to remove; the score is
  PSNR(output, photo): how far the tool moved a clean picture (inf: not at all).
* ``s1``, ``s2``: white Gaussian noise of σ 1 / 2 (8-bit, seeded per image), and
  ``q90``, ``q95``: the photo saved as a JPEG at quality 90 / 95 - inputs a
  user calls clean. Their score is the gain over the input: PSNR(output,
  photo) - PSNR(input, photo); below 0 the tool made the photo worse.

The table gives the mean and the worst image per set and case; SAVE.json has
every image.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def set_dir(name: str) -> Path:
    return SHARED / "val" if name == "val" else SHARED / "bench" / name


def make_input(case: str, clean: np.ndarray, index: int) -> np.ndarray:
    from scnrestore.training import degrade

    if case == "clean":
        return clean
    if case.startswith("s"):
        return degrade.add_gaussian_noise(clean, float(case[1:]), np.random.default_rng(index))
    if case.startswith("q"):
        return degrade.jpeg_roundtrip(clean, int(case[1:]))
    raise SystemExit(f"unknown case {case!r} (clean, sN, qN)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sets", default="val,CBSD68")
    ap.add_argument("--cases", default="clean,s1,s2,q90")
    ap.add_argument("--model", help="default: what scnrestore denoise runs without --sigma")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--save", type=Path)
    args = ap.parse_args()

    from scnrestore import Restorer
    from scnrestore.api import auto_level
    from scnrestore.imageio import Image
    from scnrestore.metrics import psnr
    from scnrestore.training.evaluate import load_images
    from scnrestore.weights import auto_denoise_model

    name = args.model or auto_denoise_model() or "scn-denoise"
    restorer = Restorer("denoise", name, precision=args.precision)
    cases = args.cases.split(",")
    rows, lines = [], []
    t0 = time.perf_counter()
    for set_name in args.sets.split(","):
        folder = set_dir(set_name)
        if not folder.is_dir():
            raise SystemExit(f"{folder}: not found (the standard sets: see ../shared/README.md)")
        for index, (img_name, clean) in enumerate(load_images(folder)):
            row: dict[str, object] = {"set": set_name, "image": img_name}
            for case in cases:
                x = make_input(case, clean, index)
                level = None
                if restorer.conditioned:
                    level = auto_level("denoise", Image(pixels=x, format="PNG"))
                out = restorer.restore_array(x, level)
                after = psnr(out, clean)
                row[case] = after if case == "clean" else after - psnr(x, clean)
            rows.append(row)
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v
                              for k, v in row.items()}), flush=True)  # fmt: skip
    where = platform.processor() or platform.machine()
    lines.append(f"# scnrestore denoise (σ auto) with {name} on clean / nearly clean photos; "
                 f"{where}, precision {args.precision}")  # fmt: skip
    lines.append(
        "# clean: PSNR(output, photo), inf = untouched; s1/s2/q90/q95: dB gained over the input"
    )
    lines.append(f"# python benchmarks/clean_inputs.py --sets {args.sets} --cases {args.cases}"
                 + (f" --model {args.model}" if args.model else ""))  # fmt: skip
    lines.append("| set | " + " | ".join(f"{c} mean | {c} worst" for c in cases) + " |")
    lines.append("|---|" + "---|---|" * len(cases))
    for set_name in args.sets.split(","):
        sel = [r for r in rows if r["set"] == set_name]
        cells = []
        for c in cases:
            v = np.array([r[c] for r in sel], np.float64)
            cells += [f"{v.mean():.2f}" if np.isfinite(v).all() else "inf", f"{v.min():+.2f}"]
        lines.append(f"| {set_name} ({len(sel)}) | " + " | ".join(cells) + " |")
    lines.append(f"# {time.perf_counter() - t0:.0f} s")
    print("\n".join(lines))
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.with_suffix(".json").write_text(json.dumps({"rows": rows}, indent=1) + "\n")
        args.save.with_suffix(".txt").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
