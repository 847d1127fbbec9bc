"""Which level should a conditioned network be told, for a given true level?

    python benchmarks/told_level.py 5,10,20,40 --task dejpeg --factors 0.9,1,1.15,1.3
    python benchmarks/told_level.py 15,25,50 --task denoise --val ../shared/data/train --crop 192

dejpeg and denoise networks take the JPEG quality / noise sigma as an input
plane. Trained with L1 on a range of levels, a network need not be best when
told the true level. For each level, every photo of ``--val`` (centre-cropped
to ``--crop`` pixels when given) is degraded as ``scnrestore eval`` does (same
seeds) and restored by the model in fp32, told ``factor x level`` (clipped to
the task's range) for each factor, with nothing blended back (``keep_luma`` /
``keep_input`` 0). Prints mean PSNR (RGB) against the clean photo per factor,
its gain over the true level, and the best factor; ``--json`` writes them.
The registry's ``told_level`` schedule is chosen from this on the training
images and checked on the validation photos.
"""

from __future__ import annotations

import json

import numpy as np
from _sweep import sweep_images, sweep_parser

from scnrestore.api import LEVEL_RANGES, Restorer
from scnrestore.metrics import psnr
from scnrestore.training.degrade import make_input


def main() -> None:
    p = sweep_parser(__doc__)
    p.add_argument("--factors", default="0.9,1,1.15,1.3", help="told level / true level")
    p.add_argument("--json", help="write the per-level means here")
    a = p.parse_args()
    factors = [float(x) for x in a.factors.split(",")]
    images = sweep_images(a)
    lo, hi = LEVEL_RANGES[a.task]
    # told_level=False: the network is told exactly what restore_array is given.
    r = Restorer(a.task, a.model, precision="fp32", keep_luma=0.0, keep_input=0.0, told_level=False)
    results = []
    for lv in (float(x) for x in a.levels.split(",")):
        told = [min(max(f * lv, lo), hi) for f in factors]
        rows = []
        for idx, (_, clean) in enumerate(images):
            inp, _ = make_input(a.task, clean, 1, lv, np.random.default_rng(idx))
            rows.append([psnr(clean, inp)] + [psnr(clean, r.restore_array(inp, t)) for t in told])
        m = np.mean(rows, axis=0)
        ref = m[1 + factors.index(1.0)] if 1.0 in factors else m[1]
        best = int(np.argmax(m[1:]))
        cells = [f"{t:g}: {v:.3f} ({v - ref:+.3f})" for t, v in zip(told, m[1:])]
        name = "q" if a.task == "dejpeg" else "sigma"
        head = f"{name} {lv:g}: input {m[0]:.3f} | "
        print(head + "  ".join(cells) + f" | best told {told[best]:g}", flush=True)
        results.append(
            {"level": lv, "input": m[0], "told": told, "psnr": list(m[1:]), "best": told[best]}
        )
    if a.json:
        with open(a.json, "w") as f:
            doc = {"task": a.task, "val": a.val, "crop": a.crop, "levels": results}
            json.dump(doc, f, indent=1)


if __name__ == "__main__":
    main()
