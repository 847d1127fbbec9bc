"""Evaluation: degrade clean images as training does, restore, measure.

Restoration goes through :class:`~scnrestore.api.Restorer`, i.e. the same
tiled engine users get. Noise is seeded per image (its index in name order),
so numbers are reproducible run to run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..imageio.formats import IMAGE_EXTS
from ..metrics import psnr, psnr_y, ssim
from . import degrade

if TYPE_CHECKING:
    from ..api import Restorer

__all__ = [
    "EvalRow",
    "eval_input",
    "evaluate",
    "summarise",
    "level_result",
    "eval_document",
    "load_images",
]


@dataclass
class EvalRow:
    """Scores of one image at one level: the model's and the baseline's."""

    image: str
    level: float | None
    psnr: float
    psnr_y: float
    ssim: float
    base_psnr: float
    base_psnr_y: float
    base_ssim: float
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def eval_input(
    task: str,
    clean: np.ndarray,
    scale: int,
    level: float | None,
    index: int,
    jpeg: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How :func:`evaluate` degrades the ``index``-th image (name order) of a
    set: (the clean image cropped to a multiple of ``scale``, the model input,
    the baseline); the noise is seeded by ``index``."""
    clean = degrade.crop_to_multiple(clean, scale)
    inp, base = degrade.make_input(task, clean, scale, level, np.random.default_rng(index), jpeg)
    return clean, inp, base


def evaluate(
    restorer: Restorer,
    images: list[tuple[str, np.ndarray]],
    level: float | None = None,
    on_image: Callable[[EvalRow], None] | None = None,
    jpeg: int | None = None,
) -> list[EvalRow]:
    """Degrade each clean uint8 RGB image, restore it, and score both.

    Upscale: bicubic-downscaled input, bicubic baseline, PSNR / PSNR-Y / SSIM
    with ``scale`` pixels shaved; ``jpeg``: the downscaled input is saved as a
    JPEG of that quality, which the restorer is told (a
    :class:`~scnrestore.chain.Chain` picks its steps from it; a plain
    upscaler ignores it) and the bicubic baseline starts from. Denoise /
    dejpeg: the noisy / JPEG input is the baseline, nothing shaved.
    ``restorer``: anything with ``task``, ``scale`` and ``restore_array``.
    """
    import time

    task, scale = restorer.task, restorer.scale
    shave = scale if task == "upscale" else 0
    rows = []
    for idx, (name, clean) in enumerate(images):
        clean, inp, base = eval_input(task, clean, scale, level, idx, jpeg)
        t0 = time.perf_counter()
        out = restorer.restore_array(inp, level if jpeg is None else jpeg)
        dt = time.perf_counter() - t0
        row = EvalRow(
            image=name,
            level=level if jpeg is None else jpeg,
            psnr=psnr(out, clean, shave),
            psnr_y=psnr_y(out, clean, shave),
            ssim=ssim(out, clean, shave),
            base_psnr=psnr(base, clean, shave),
            base_psnr_y=psnr_y(base, clean, shave),
            base_ssim=ssim(base, clean, shave),
            seconds=dt,
        )
        rows.append(row)
        if on_image:
            on_image(row)
    return rows


def summarise(rows: list[EvalRow]) -> dict[str, float]:
    """Mean of every score over ``rows``, plus the gains over the baseline."""
    keys = ("psnr", "psnr_y", "ssim", "base_psnr", "base_psnr_y", "base_ssim", "seconds")
    mean = {k: float(np.mean([getattr(r, k) for r in rows])) for k in keys}
    mean["gain_psnr"] = mean["psnr"] - mean["base_psnr"]
    mean["gain_psnr_y"] = mean["psnr_y"] - mean["base_psnr_y"]
    return mean


def level_result(
    level: float | None, rows: list[EvalRow], extra: dict[str, float] | None = None
) -> dict[str, Any]:
    """One entry of ``scnrestore eval --json``'s ``results``: per image and mean,
    and ``extra`` figures for the level: the share of the input blended back
    (e.g. {"keep_luma": 0.6}) and the level the network was told."""
    extra = {k: round(v, 4) for k, v in (extra or {}).items()}
    return {"level": level, **extra, "images": [r.to_dict() for r in rows],
            "mean": summarise(rows)}  # fmt: skip


def eval_document(restorer: Restorer, results: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole ``scnrestore eval --json`` document for ``level_result`` entries."""
    return {
        "task": restorer.task,
        "scale": restorer.scale,
        "shave": restorer.scale if restorer.task == "upscale" else 0,
        "device": str(restorer.engine.device),
        "precision": restorer.engine.precision,
        "results": results,
    }


def load_images(directory: str | os.PathLike[str]) -> list[tuple[str, np.ndarray]]:
    """All images of a directory (sorted by name) as uint8 RGB arrays."""
    from PIL import Image

    paths = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not paths:
        raise ValueError(f"{directory}: no images found")
    out = []
    for p in paths:
        with Image.open(p) as im:
            out.append((p.name, np.asarray(im.convert("RGB"))))
    return out
