"""Would keeping the JPEG's own luma beat the dejpeg model at high quality?

    python benchmarks/dejpeg_luma.py 80,90,95 [--val ../shared/data/val]

For each quality q, every val photo is JPEG-encoded at q (the degradation of
``scnrestore eval``), restored by the shipped dejpeg model in fp32, and a
"hybrid" is formed: the model's output shifted per pixel by the luma it
changed (Y_input - Y_output, BT.601 weights, which sum to 1, so the shift
leaves Cb/Cr as the model made them). Prints mean PSNR (RGB) and PSNR-Y of the
JPEG input, the model output and the hybrid against the clean photo.
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("qualities", help="comma-separated, e.g. 80,90,95")
    p.add_argument("--val", default="../shared/data/val")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    images = load_images(a.val)
    for q in (int(x) for x in a.qualities.split(",")):
        r = Restorer("dejpeg", level=q, precision="fp32")
        rows = []
        for idx, (_, clean) in enumerate(images):
            inp, _ = make_input("dejpeg", clean, 1, q, np.random.default_rng(idx))
            out = r.restore_array(inp)
            shift = inp.astype(np.float64) @ LUMA - out.astype(np.float64) @ LUMA
            hyb = np.clip(np.rint(out + shift[..., None]), 0, 255).astype(np.uint8)
            rows.append([psnr(clean, x) for x in (inp, out, hyb)]
                        + [psnr_y(clean, x) for x in (inp, out, hyb)])
        m = np.mean(rows, axis=0)
        print(f"q {q}: PSNR input {m[0]:.3f} model {m[1]:.3f} hybrid {m[2]:.3f} | "
              f"PSNR-Y input {m[3]:.3f} model {m[4]:.3f} hybrid {m[5]:.3f}", flush=True)


if __name__ == "__main__":
    main()
