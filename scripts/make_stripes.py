"""Render a training folder of fine oriented stripes (wood grain, fabric, railings).

    python scripts/make_stripes.py runs/data/stripes --count 96 --size 320 --seed 0
    scnrestore train upscale -s 2 --init scnrestore/models/scn-x2.safetensors \
        --data ../shared/data/train291:0.6 --data ../shared/data/train:0.25 \
        --data runs/data/stripes:0.15 ...

Why: stripes finer than twice the scale alias in a downscaled input (they come
out as a coarser pattern at another angle). A network can only undo that from
what it has learned such patterns usually are. The natural photos of train291
have few of them, and every fine-tune on them so far learned to draw val
coffee's aliased wood grain as a cross-hatch (docs/training.md, "Where coffee
loses"). These renders teach the one reading a photo nearly always means:
stripes at one angle.

Each image is one or two stripe fields over a smooth two-colour ground:
  - a period of 2.2 to 9 px (at x2 the ones under 4 px alias; at x4, under 8);
  - any angle, bent by a slow warp (grain is not ruled);
  - a profile from sine to thin bright lines (a threshold on the sine);
  - contrast that drifts across the image, and now and then a flat patch.
Rendered at 4x and box-filtered down, so the target is band-limited as a
photo through a lens is (no aliasing in the clean image itself). The same
seed gives the same files. Nothing here is drawn from any test image.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

SUPER = 4  # render at 4x, then average 4x4 blocks


def _slow_field(rng: np.random.Generator, h: int, w: int, waves: float) -> np.ndarray:
    """A smooth random field in about [-1, 1]: three plane waves of about
    ``waves`` cycles across the image, at random angles and phases."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    out = np.zeros((h, w))
    for _ in range(3):
        a, f = rng.uniform(0, 2 * np.pi), waves * rng.uniform(0.5, 1.5)
        out += np.sin(2 * np.pi * f * (x * np.cos(a) + y * np.sin(a)) + rng.uniform(0, 2 * np.pi))
    return out / 3


def stripe_field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """One field of bent stripes in [0, 1] at the render size (h, w = 4x the output)."""
    period = rng.uniform(2.2, 9.0) * SUPER
    theta = rng.uniform(0, np.pi)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u = x * np.cos(theta) + y * np.sin(theta)
    bend = rng.uniform(0, 4.0) * period * _slow_field(rng, h, w, rng.uniform(0.5, 2.0))
    phase = 2 * np.pi * (u + bend) / period + rng.uniform(0, 2 * np.pi)
    s = np.sin(phase)
    thin = rng.uniform(0, 0.8)  # 0: a sine; near 1: thin bright lines
    s = np.clip((s - thin) / (1 - thin), 0, 1) if thin > 0.1 else (s + 1) / 2
    # each line its own strength, as grain and threads are: a slow wave across them
    lines = rng.uniform(0, 0.5)
    return s * (1 - lines + lines * np.sin(phase / rng.integers(3, 9) + rng.uniform(0, 6)) ** 2)


def render(rng: np.random.Generator, size: int) -> np.ndarray:
    """One uint8 RGB image, ``size`` px square."""
    h = w = size * SUPER
    ground = rng.uniform(30, 225, 3)
    tint = rng.uniform(0.5, 1.0, 3) * rng.choice([-1.0, 1.0])  # lighter or darker lines
    ink = np.clip(ground + tint * rng.uniform(50, 170), 0, 255)
    drift = _slow_field(rng, h, w, 1.0)
    base = ground + 12 * drift[..., None] * rng.uniform(-1, 1, 3)
    amount = stripe_field(rng, h, w)
    if rng.random() < 0.35:  # a second field across part of the image
        edge = _slow_field(rng, h, w, 0.7) - rng.uniform(-0.3, 0.3)
        mask = np.clip(0.5 + edge * h / (8 * SUPER), 0, 1)  # a soft border, 8 px wide
        amount = amount * (1 - mask) + stripe_field(rng, h, w) * mask
    contrast = np.clip(0.7 + 0.4 * _slow_field(rng, h, w, 1.5), 0.25, 1.0)
    if rng.random() < 0.3:  # a flat patch (a knot, a label, a shadow)
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(0.1, 0.3) * h
        yy, xx = np.mgrid[0:h, 0:w]
        contrast = contrast * np.clip((np.hypot(yy - cy, xx - cx) - r) / (0.05 * h), 0, 1)
    img = base + (ink - ground) * (amount * contrast)[..., None]
    img = img.reshape(size, SUPER, size, SUPER, 3).mean(axis=(1, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("out", type=Path, help="folder to write stripes_NNN.png into")
    ap.add_argument("--count", type=int, default=96)
    ap.add_argument("--size", type=int, default=320, help="side in pixels")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.count < 1 or args.size < 64:
        print("error: --count must be at least 1 and --size at least 64", file=sys.stderr)
        return 2
    from PIL import Image

    args.out.mkdir(parents=True, exist_ok=True)
    for i in range(args.count):
        rng = np.random.default_rng([args.seed, i])
        Image.fromarray(render(rng, args.size)).save(args.out / f"stripes_{i:03d}.png")
    print(f"wrote {args.count} images of {args.size} px to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
