"""Degradations shared by training and evaluation.

They match what users feed the tool: 8-bit images on disk.

* upscale: bicubic downscaling with antialiasing (Pillow's BICUBIC resize, whose
  kernel widens when reducing, as MATLAB's imresize does);
* denoise: additive Gaussian noise of std sigma/255, clipped and rounded to 8 bits;
* dejpeg: Pillow's JPEG encoder at quality q (colour, default 4:2:0), decoded back.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

__all__ = [
    "bicubic_downscale",
    "bicubic_upscale",
    "add_gaussian_noise",
    "jpeg_roundtrip",
    "crop_to_multiple",
    "dihedral",
    "make_input",
]


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 flips / transposes of an H x W (x C) array (k in 0..7):
    transposed if bit 2 of ``k`` is set, then rotated by 90 degrees (k & 3) times."""
    if k & 4:
        a = a.swapaxes(0, 1)
    return np.ascontiguousarray(np.rot90(a, k & 3))


def crop_to_multiple(img: np.ndarray, m: int) -> np.ndarray:
    """Crop bottom/right so height and width are multiples of ``m``."""
    h, w = img.shape[:2]
    return img[: h - h % m, : w - w % m]


def bicubic_downscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Downscale an H x W x 3 uint8 image by ``scale`` (H, W multiples of it)."""
    h, w = img.shape[:2]
    if h % scale or w % scale:
        raise ValueError(f"{w}x{h} is not a multiple of {scale}")
    pil = Image.fromarray(img)
    return np.asarray(pil.resize((w // scale, h // scale), Image.Resampling.BICUBIC))


def shrink(img: np.ndarray, factor: float) -> np.ndarray:
    """``img`` resized by ``factor`` <= 1 (Pillow BICUBIC, antialiased, uint8)."""
    if factor == 1:
        return img
    h, w = img.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.BICUBIC))


def add_gaussian_noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add N(0, sigma/255) noise to a uint8 image; clip and round to uint8."""
    noisy = img.astype(np.float32) + rng.normal(0.0, sigma, img.shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def jpeg_roundtrip(img: np.ndarray, quality: int) -> np.ndarray:
    """Encode a uint8 RGB image as JPEG at ``quality`` with Pillow and decode it."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def bicubic_upscale(img: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic upscaling with Pillow: the baseline SR is measured against."""
    h, w = img.shape[:2]
    pil = Image.fromarray(img)
    return np.asarray(pil.resize((w * scale, h * scale), Image.Resampling.BICUBIC))


def make_input(
    task: str,
    clean: np.ndarray,
    scale: int,
    level: float | None,
    rng: np.random.Generator,
    jpeg: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Degrade a clean uint8 image for ``task``.

    Returns (model input, baseline): for upscale the low-resolution image and
    its bicubic upscale (``jpeg``: the low-resolution image saved as a JPEG
    of that quality and decoded, as a photo from the web is); otherwise the
    noisy / JPEG image, twice. ``clean`` must be cropped to a multiple of
    ``scale`` already.
    """
    if task == "upscale":
        lr = bicubic_downscale(clean, scale)
        if jpeg is not None:
            lr = jpeg_roundtrip(lr, int(jpeg))
        return lr, bicubic_upscale(lr, scale)
    if jpeg is not None:
        raise ValueError("jpeg applies to upscale only (dejpeg takes the quality as its level)")
    if level is None:
        raise ValueError(f"{task} needs a level (sigma or quality)")
    if task == "denoise":
        noisy = add_gaussian_noise(clean, float(level), rng)
        return noisy, noisy
    if task == "dejpeg":
        j = jpeg_roundtrip(clean, int(level))
        return j, j
    raise ValueError(f"unknown task {task!r}")
