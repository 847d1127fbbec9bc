"""Upscaling JPEG photos: today's plain upscaler, the two-command chain, and
the default path (scnrestore.Chain: JPEG-aware where a model ships), against
bicubic, with time per image.

Each clean photo is cropped to a multiple of the scale, downscaled with
Pillow's BICUBIC (as ``scnrestore eval`` does), saved as a JPEG at quality q
and decoded. Then:

* ``plain``: ``Restorer("upscale")`` on the decoded JPEG (``upscale --jpeg off``);
* ``two commands``: ``dejpeg --quality auto`` (output rounded to 8 bits, as a
  file would be) then ``upscale --jpeg off``;
* ``default``: ``scnrestore upscale`` as it runs by default: ``Chain(jpeg=q)``.

PSNR-Y with ``scale`` pixels shaved, mean over the photos; the gain is over
bicubic upscaling of the decoded JPEG. "clean" rows use no JPEG.

    python benchmarks/jpeg_upscale.py ../shared/data/val --scales 2,4 --qualities 70,80,90,95,100
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder")
    ap.add_argument("--scales", default="2,4")
    ap.add_argument("--qualities", default="70,80,90")
    ap.add_argument("--clean", action="store_true", help="also rows without JPEG")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--model", help="JPEG-aware upscaler for the default path (file or name)")
    ap.add_argument("--crop", type=int, default=0, help="centre crop side (0: whole photos)")
    ap.add_argument("--json", help="write the rows here too")
    args = ap.parse_args()

    from scnrestore.api import Restorer
    from scnrestore.chain import Chain, describe
    from scnrestore.metrics import psnr_y
    from scnrestore.training import degrade
    from scnrestore.training.evaluate import load_images

    images = load_images(args.folder)
    if args.crop:
        images = [(n, _centre(a, args.crop)) for n, a in images]
    rows = []
    print(f"{'input':>10} {'scale':>5} {'bicubic':>8} {'plain':>7} {'2 cmds':>7} {'default':>7} "
          f"{'-2cmds':>7} {'s plain':>8} {'s def':>7}  steps")  # fmt: skip
    dejpeg = Restorer("dejpeg", precision=args.precision)
    for scale in (int(s) for s in args.scales.split(",")):
        plain = Restorer("upscale", scale=scale, precision=args.precision)
        chain = Chain(scale=scale, precision=args.precision, model=args.model)
        qualities: list[int | None] = [int(q) for q in args.qualities.split(",") if q]
        if args.clean:
            qualities = [None, *qualities]
        for q in qualities:
            acc: dict[str, list[float]] = {
                k: [] for k in ("bic", "plain", "two", "def", "tp", "td")
            }
            steps = ""
            for _, clean in images:
                clean = degrade.crop_to_multiple(clean, scale)
                lr, bic = degrade.make_input("upscale", clean, scale, None, None, q)  # type: ignore[arg-type]
                t0 = time.perf_counter()
                out_plain = plain.restore_array(lr)
                t1 = time.perf_counter()
                out_def = chain.restore_array(lr, q)
                t2 = time.perf_counter()
                steps = describe(chain.plan_for(q))
                if q is None:
                    out_two = out_plain
                else:
                    out_two = plain.restore_array(dejpeg.restore_array(lr, q))
                acc["bic"].append(psnr_y(bic, clean, scale))
                acc["plain"].append(psnr_y(out_plain, clean, scale))
                acc["two"].append(psnr_y(out_two, clean, scale))
                acc["def"].append(psnr_y(out_def, clean, scale))
                acc["tp"].append(t1 - t0)
                acc["td"].append(t2 - t1)
            m = {k: float(np.mean(v)) for k, v in acc.items()}
            row = {
                "input": "clean" if q is None else f"jpeg q{q}",
                "scale": scale,
                "bicubic": m["bic"],
                "plain_gain": m["plain"] - m["bic"],
                "two_commands_gain": m["two"] - m["bic"],
                "default_gain": m["def"] - m["bic"],
                "default_over_two_commands": m["def"] - m["two"],
                "seconds_plain": m["tp"],
                "seconds_default": m["td"],
                "steps": steps,
            }
            rows.append(row)
            gains = (row["plain_gain"], row["two_commands_gain"], row["default_gain"])
            print(f"{row['input']:>10} {scale:>5} {m['bic']:8.2f} "
                  + " ".join(f"{g:+7.2f}" for g in gains)
                  + f" {row['default_over_two_commands']:+7.2f} {m['tp']:8.2f} {m['td']:7.2f}"
                  + f"  {steps}", flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"folder": args.folder, "precision": args.precision, "rows": rows}, f, indent=1
            )


def _centre(a: np.ndarray, side: int) -> np.ndarray:
    h, w = a.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return a[top : top + side, left : left + side]


if __name__ == "__main__":
    main()
