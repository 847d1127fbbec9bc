"""Would keeping (part of) the JPEG's own luma beat the dejpeg model at high quality?

    python benchmarks/dejpeg_luma.py 80,90,95 [--alphas 0,0.5,1] [--val DIR] [--crop N]

For each quality q, every photo of ``--val`` (centre-cropped to ``--crop``
pixels when given, for large training images) is JPEG-encoded at q (the
degradation of ``scnrestore eval``) and restored by the shipped dejpeg model
in fp32. Then, for each alpha, a blend is formed: the model's output shifted
per pixel by alpha times the luma it changed (Y_input - Y_output, BT.601
weights, which sum to 1, so the shift leaves Cb/Cr as the model made them).
alpha 0 is the model's output, alpha 1 keeps the JPEG's luma exactly. Prints
mean PSNR (RGB) and PSNR-Y against the clean photo, for the JPEG input and
for each alpha.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from scnrestore.api import Restorer
from scnrestore.degrade import make_input
from scnrestore.evaluate import load_images
from scnrestore.metrics import psnr, psnr_y

LUMA = np.array([0.299, 0.587, 0.114])


def centre_crop(a: np.ndarray, n: int) -> np.ndarray:
    h, w = a.shape[:2]
    t, left = max(0, (h - n) // 2), max(0, (w - n) // 2)
    return a[t : t + n, left : left + n]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("qualities", help="comma-separated, e.g. 80,90,95")
    p.add_argument("--alphas", default="0,1", help="comma-separated luma-keep weights")
    p.add_argument("--val", default="../shared/data/val")
    p.add_argument("--crop", type=int, default=0, help="centre crop size (0: whole photo)")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    alphas = [float(x) for x in a.alphas.split(",")]
    images = [(n, centre_crop(c, a.crop) if a.crop else c) for n, c in load_images(a.val)]
    print(f"{len(images)} photos from {a.val}" + (f", centre {a.crop} px" if a.crop else ""))
    for q in (int(x) for x in a.qualities.split(",")):
        # Above the model's range the CLI's --quality auto conditions it on its top (95).
        r = Restorer("dejpeg", level=min(q, 95), precision="fp32")
        rows = []
        for idx, (_, clean) in enumerate(images):
            inp, _ = make_input("dejpeg", clean, 1, q, np.random.default_rng(idx))
            out = r.restore_array(inp)
            shift = inp.astype(np.float64) @ LUMA - out.astype(np.float64) @ LUMA
            row = [psnr(clean, inp), psnr_y(clean, inp)]
            for al in alphas:
                b = np.clip(np.rint(out + al * shift[..., None]), 0, 255).astype(np.uint8)
                row += [psnr(clean, b), psnr_y(clean, b)]
            rows.append(row)
        m = np.mean(rows, axis=0)
        cells = [f"input {m[0]:.3f}/{m[1]:.3f}"]
        cells += [f"a={al:g} {m[2 + 2 * i]:.3f}/{m[3 + 2 * i]:.3f}" for i, al in enumerate(alphas)]
        print(f"q {q} (PSNR/PSNR-Y): " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
