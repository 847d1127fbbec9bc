"""What the level sweeps (keep_input.py, told_level.py) share: their common
arguments and the photos they run on."""

from __future__ import annotations

import argparse

import numpy as np
import torch

from scnrestore.training.evaluate import load_images


def centre_crop(a: np.ndarray, n: int) -> np.ndarray:
    h, w = a.shape[:2]
    t, left = max(0, (h - n) // 2), max(0, (w - n) // 2)
    return a[t : t + n, left : left + n]


def sweep_parser(doc: str) -> argparse.ArgumentParser:
    """levels, --task, --val, --crop, --model, --threads; add the sweep's own."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("levels", help="comma-separated, e.g. 10,40,90 (dejpeg) or 1,2,15 (denoise)")
    p.add_argument("--task", choices=("dejpeg", "denoise"), default="dejpeg")
    p.add_argument("--val", default="../shared/data/val")
    p.add_argument("--crop", type=int, default=0, help="centre crop size (0: whole photo)")
    p.add_argument("--model", help="registry name or file (default: the task's shipped model)")
    p.add_argument("--threads", type=int, default=1)
    return p


def sweep_images(a: argparse.Namespace) -> list[tuple[str, np.ndarray]]:
    """Set the thread count; the photos of ``--val``, centre-cropped if asked."""
    torch.set_num_threads(a.threads)
    images = [(n, centre_crop(c, a.crop) if a.crop else c) for n, c in load_images(a.val)]
    print(f"{len(images)} photos from {a.val}" + (f", centre {a.crop} px" if a.crop else ""))
    return images
