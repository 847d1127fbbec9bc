"""Any output size (--outscale) against bicubic on the standard sets.

    python benchmarks/outscale.py                         # Set5, Set14 at x3.5 and x8
    python benchmarks/outscale.py --factors 1.5,3.5,6,8 --sets Set5 --orders

The protocol of ../shared/README.md, for a factor F that is not a trained
scale: the HR image is cropped to a multiple of F's denominator (7 for 3.5),
LR = Pillow BICUBIC (antialiased) to HR / F, PSNR on BT.601 luma with a border
of ceil(F) shaved. "bicubic" is Pillow BICUBIC of LR to the HR size;
"scnrestore" is what ``upscale --outscale F`` runs (scnrestore.outsize:
the trained scale at or above F, twice above 4, then an antialiased resize).
``--orders`` adds, for two-pass factors, the other order of the two scales.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from fractions import Fraction
from pathlib import Path

# isort: off
import scnrestore  # noqa: F401  (before torch: it sets up torch's CPU allocator)

# isort: on
import numpy as np
from PIL import Image as PILImage

from scnrestore.chain import Chain
from scnrestore.imageio import Image
from scnrestore.metrics import psnr_y
from scnrestore.outsize import OutSize, Resized, passes, resize
from scnrestore.training.standard import SETS, load_set

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BENCH = ROOT.parent / "shared" / "data" / "bench"


def degrade(hr: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """(HR cropped so that HR / factor is whole, its bicubic LR)."""
    step = Fraction(factor).limit_denominator(100).numerator
    h, w = hr.shape[0] // step * step, hr.shape[1] // step * step
    hr = hr[:h, :w]
    size = (round(w / factor), round(h / factor))
    lr = np.asarray(PILImage.fromarray(hr).resize(size, PILImage.Resampling.BICUBIC))
    return hr, lr


def other_order(lr: np.ndarray, factor: float, size: tuple[int, int], options: dict) -> np.ndarray:
    """The two passes of ``factor`` in the other order, then the same resize."""
    out = lr
    for s in reversed(passes(factor)):
        out = Chain(s, "off", None, **options).restore_array(out)
    return resize(out, *size)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", type=Path, default=DEFAULT_BENCH)
    ap.add_argument("--sets", default="Set5,Set14")
    ap.add_argument("--factors", default="3.5,8")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--orders", action="store_true", help="also the other order of two passes")
    args = ap.parse_args()
    options = {"device": args.device, "precision": args.precision}
    sets = [s for s in args.sets.split(",") if s]
    absent = [s for s in sets if not (args.root / SETS.get(s, s)).is_dir()]
    if absent:
        print(f"error: no {', '.join(absent)} under {args.root} (see benchmarks/standard.py)",
              file=sys.stderr)  # fmt: skip
        return 2
    print(f"$ python benchmarks/outscale.py {' '.join(sys.argv[1:])}".rstrip())
    head = "| set | factor | passes | bicubic | scnrestore | gain |"
    print(head + (" other order |" if args.orders else ""))
    print("|---|---|---|---|---|---|" + ("---|" if args.orders else ""))
    for factor in (float(f) for f in args.factors.split(",")):
        runner = Resized(OutSize(factor), "off", None, **options)
        for name in sets:
            images, _ = load_set(args.root / SETS.get(name, name))
            t0 = time.time()
            bic, ours, alt = [], [], []
            for _, clean in images:
                hr, lr = degrade(clean, factor)
                shave = math.ceil(factor)
                size = (hr.shape[1], hr.shape[0])
                up = np.asarray(PILImage.fromarray(lr).resize(size, PILImage.Resampling.BICUBIC))
                out = runner.run(Image(lr)).image.pixels
                assert out.shape == hr.shape, (out.shape, hr.shape)
                bic.append(psnr_y(up, hr, shave))
                ours.append(psnr_y(out, hr, shave))
                if args.orders and len(passes(factor)) == 2:
                    alt.append(psnr_y(other_order(lr, factor, size, options), hr, shave))
            b, o = float(np.mean(bic)), float(np.mean(ours))
            route = " → ".join(f"x{s}" for s in passes(factor))
            route += " → resize" if math.prod(passes(factor)) != factor else ""
            extra = f" {float(np.mean(alt)):.2f} |" if alt else (" – |" if args.orders else "")
            print(f"| {name} | {factor:g} | {route} | {b:.2f} | {o:.2f} | {o - b:+.2f} |{extra}",
                  flush=True)  # fmt: skip
            print(f"  ({len(images)} images, {time.time() - t0:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
