"""How much of the input should dejpeg / denoise blend back into the network's output?

    python benchmarks/keep_input.py 80,90,95 [--task dejpeg] [--alphas 0,0.5,1] [--crop N]
    python benchmarks/keep_input.py 1,2,3 --task denoise

For each level (JPEG quality, or sigma), every photo of ``--val``
(centre-cropped to ``--crop`` pixels when given, for large training images) is
degraded as ``scnrestore eval`` does (same seeds) and restored by the shipped
model in fp32 with nothing blended back, kept unrounded (the image is fed as
float). Then, for each alpha, the blend the tool applies
(``scnrestore.api.blend_input``, on the unrounded output, rounded to 8 bits
after, as the engine does) is formed: dejpeg moves the
output's luma toward the JPEG's by alpha (BT.601; Cb/Cr stay the network's),
denoise moves the whole output toward the noisy input by alpha. alpha 0 is
the network alone, alpha 1 the input's luma (dejpeg) or the input (denoise).
Prints mean PSNR (RGB) and PSNR-Y against the clean photo, for the input and
for each alpha. Above 95 a dejpeg network is told 95, as ``--quality auto``
does for files saved above the model's range.
"""

from __future__ import annotations

import numpy as np
from _sweep import sweep_images, sweep_parser

from scnrestore.api import Restorer, blend_input
from scnrestore.metrics import psnr, psnr_y
from scnrestore.training.degrade import make_input


def main() -> None:
    p = sweep_parser(__doc__)
    p.add_argument("--alphas", default="0,1", help="comma-separated shares of the input kept")
    a = p.parse_args()
    alphas = [float(x) for x in a.alphas.split(",")]
    images = sweep_images(a)
    for lv in (float(x) for x in a.levels.split(",")):
        # Restorer tells a dejpeg network min(lv, 95), as for --quality auto.
        r = Restorer(a.task, a.model, level=lv, precision="fp32", keep_luma=0.0, keep_input=0.0)
        rows = []
        for idx, (_, clean) in enumerate(images):
            inp, _ = make_input(a.task, clean, 1, lv, np.random.default_rng(idx))
            inp_f = inp.astype(np.float32) / 255
            out = r.restore_array(inp_f)  # unrounded, in [0, 1]
            row = [psnr(clean, inp), psnr_y(clean, inp)]
            for al in alphas:
                b = out.copy()
                blend_input(inp_f, b, al, luma_only=a.task == "dejpeg")
                b = np.rint(b * 255).astype(np.uint8)
                row += [psnr(clean, b), psnr_y(clean, b)]
            rows.append(row)
        m = np.mean(rows, axis=0)
        cells = [f"input {m[0]:.3f}/{m[1]:.3f}"]
        cells += [f"a={al:g} {m[2 + 2 * i]:.3f}/{m[3 + 2 * i]:.3f}" for i, al in enumerate(alphas)]
        name = "q" if a.task == "dejpeg" else "sigma"
        print(f"{name} {lv:g} (PSNR/PSNR-Y): " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
