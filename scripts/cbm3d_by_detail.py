"""Where a denoise model loses to CBM3D: PSNR split by how detailed the clean image is.

    pip install bm3d
    python scripts/cbm3d_by_detail.py [--val ../shared/data/val] [--sigma 15] [--model NAME|PATH]

Each photo is noised exactly as `scnrestore eval` does it (per-image seeds,
clipped and rounded to 8 bits), denoised by CBM3D and by the model (told the
true σ, nothing blended back, fp32), and cut into BLOCK-px blocks. The blocks
are binned by the clean block's mean |Laplacian| (grey, 0-255;
``scnrestore.training.sampler.patch_detail``, the measure ``--detail-floor`` uses), and
each bin prints its share of the blocks, both PSNRs, the difference, and its
share of the model's squared error. It says which content training should see
more of.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from scnrestore.training import degrade
from scnrestore.training.evaluate import load_images
from scnrestore.training.sampler import patch_detail

ROOT = Path(__file__).resolve().parents[1]
EDGES = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0, float("inf"))


def _psnr(mse: float) -> float:
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    ap.add_argument("--sigma", type=float, default=15.0)
    ap.add_argument("--model", default="scn-denoise")
    ap.add_argument("--block", type=int, default=16)
    args = ap.parse_args()
    import bm3d

    from scnrestore import Restorer

    restorer = Restorer("denoise", args.model, precision="fp32")
    b, sigma = args.block, args.sigma
    det, se_cb, se_scn = [], [], []  # per block, over all photos
    for idx, (name, clean) in enumerate(load_images(args.val)):
        noisy, _ = degrade.make_input("denoise", clean, 1, sigma, np.random.default_rng(idx))
        den = bm3d.bm3d_rgb(noisy.astype(np.float64) / 255, sigma / 255)
        cb = np.clip(np.rint(den * 255), 0, 255).astype(np.uint8)
        scn = restorer.restore_array(noisy, sigma)
        ref = clean.astype(np.float64)
        e_cb, e_scn = (cb - ref) ** 2, (scn - ref) ** 2
        print(f"{name}: CBM3D {_psnr(e_cb.mean()):.2f}  model {_psnr(e_scn.mean()):.2f}")
        for y in range(0, clean.shape[0] - b + 1, b):
            for x in range(0, clean.shape[1] - b + 1, b):
                sl = (slice(y, y + b), slice(x, x + b))
                det.append(patch_detail(clean[sl]))
                se_cb.append(e_cb[sl].mean())
                se_scn.append(e_scn[sl].mean())
    d, c, s = np.array(det), np.array(se_cb), np.array(se_scn)
    print(f"all {len(d)} blocks of {b} px at σ {sigma:g}: CBM3D {_psnr(c.mean()):.2f}  "
          f"model {_psnr(s.mean()):.2f}")  # fmt: skip
    print("detail      blocks  CBM3D  model   diff  share of model's error")
    for lo, hi in zip(EDGES[:-1], EDGES[1:], strict=True):
        m = (d >= lo) & (d < hi)
        if not m.any():
            continue
        pc, ps = _psnr(c[m].mean()), _psnr(s[m].mean())
        label = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">= {lo:g}"
        print(f"{label:<10} {m.mean():6.1%} {pc:6.2f} {ps:6.2f} {ps - pc:+6.2f}  "
              f"{s[m].sum() / s.sum():6.1%}")  # fmt: skip


if __name__ == "__main__":
    main()
