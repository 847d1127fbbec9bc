"""Degradations shared by training and evaluation.

They match what users feed the tool: 8-bit images on disk.

* upscale: bicubic downscaling with antialiasing (Pillow's BICUBIC resize, whose
  kernel widens when reducing, as MATLAB's imresize does);
* denoise: additive Gaussian noise of std sigma/255, clipped and rounded to 8 bits;
* dejpeg: Pillow's JPEG encoder at quality q (colour, default 4:2:0), decoded back;
* real camera noise (``add_camera_noise``, for the blind real-noise model):
  shot and read noise on linear raw intensities, white-balance gains, a Bayer
  mosaic and its demosaicing, a colour matrix, sRGB gamma and JPEG.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

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
    "add_camera_noise",
    "CameraNoise",
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


# -- real camera noise -------------------------------------------------------
#
# A photo from a camera is not clean + white Gaussian noise. The sensor counts
# photons (shot noise, variance proportional to the signal) and adds read
# noise; each pixel sees one colour of a Bayer mosaic and the other two are
# interpolated from its neighbours (so the noise is spatially correlated over
# 2-3 pixels), then white balance and a colour matrix mix the channels (chroma
# noise), the sRGB tone curve lifts the shadows' noise, the camera may smooth
# the noise, and JPEG removes the finest scale of what is left. The model below
# follows that order, after Brooks et al., "Unprocessing Images for Learned Raw
# Denoising" (CVPR 2019: shot/read noise and their joint log-linear prior,
# white-balance gains, colour matrices), Guo et al., "Toward Convolutional
# Blind Denoising of Real Photographs" (CBDNet, CVPR 2019: the in-camera
# pipeline with demosaicing and JPEG) and Wang et al., Real-ESRGAN (2021:
# random blur and JPEG on top). Only the noise goes through the mosaic, so the
# clean image stays the exact target.


@dataclass(frozen=True)
class CameraNoise:
    """Ranges the camera-noise parameters are drawn from (log-uniform shot noise,
    read noise from Brooks et al.'s log-linear fit, uniform otherwise)."""

    shot: tuple[float, float] = (5e-5, 1.2e-2)  # raw variance per unit of signal
    red_gain: tuple[float, float] = (1.6, 2.4)  # white balance, green = 1
    blue_gain: tuple[float, float] = (1.3, 2.0)
    matrix_mix: tuple[float, float] = (0.0, 0.5)  # colour-matrix off-diagonal strength
    blur: tuple[float, float] = (0.0, 1.2)  # Gaussian sigma (px) of in-camera smoothing
    blur_share: float = 0.5  # share of patches whose noise is smoothed
    chroma_keep: tuple[float, float] = (0.3, 1.0)  # chroma noise kept after camera NR
    # Where chroma noise is cut: "linear" (on the raw noise, before the tone
    # curve) or "srgb" (on the noise the tone curve made, in YCbCr, where a
    # camera's noise reduction works; the curve's per-channel slopes otherwise
    # turn grey linear noise into colour noise).
    chroma_in: str = "linear"

    jpeg: tuple[int, int] = (60, 95)
    jpeg_share: float = 0.8

    def __post_init__(self) -> None:
        if self.chroma_in not in ("linear", "srgb"):
            raise ValueError(f"chroma_in must be 'linear' or 'srgb', not {self.chroma_in!r}")


# The named camera models (``tasks.CAMERA_MODELS``): what each changes from
# ``CameraNoise``'s defaults. "processed" was fitted with
# ``benchmarks/noise_profile.py`` to the spatial and colour statistics of real
# high-ISO noise (statistics only: no real pixel is trained on).
_CAMERA_MODELS: dict[str, dict] = {
    "brooks": {},
    "processed": {
        "blur": (0.6, 1.5),
        "blur_share": 1.0,
        "chroma_keep": (0.05, 0.3),
        "chroma_in": "srgb",
    },
}


def camera_model(name: str, shot: tuple[float, float] | None = None) -> CameraNoise:
    """The ``CameraNoise`` of a named camera model, with ``shot`` as its
    shot-noise range where given."""
    if name not in _CAMERA_MODELS:
        raise ValueError(f"camera model must be one of {', '.join(_CAMERA_MODELS)}, not {name!r}")
    extra = {"shot": tuple(shot)} if shot is not None else {}
    return CameraNoise(**_CAMERA_MODELS[name], **extra)


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


# BT.601 RGB -> YCbCr (the JPEG convention), for the chroma of sRGB noise
# (benchmarks/noise_profile.py measures it with the same matrix).
YCBCR = np.array(
    [[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]], np.float32
)
YCBCR_INV = np.linalg.inv(YCBCR).astype(np.float32)


def _scale_chroma(delta: np.ndarray, keep: float) -> np.ndarray:
    """``delta`` (H x W x 3, sRGB) with its Cb and Cr parts scaled by ``keep``."""
    ycc = delta @ YCBCR.T
    ycc[..., 1:] *= keep
    return ycc @ YCBCR_INV.T


def _demosaic_noise(noise: np.ndarray) -> np.ndarray:
    """Bilinear demosaicing of the RGGB samples of an H x W x 3 noise field:
    each pixel keeps its own colour's noise, the others are the mean of the
    nearest samples of theirs (so they are correlated with the neighbours')."""
    h, w, _ = noise.shape
    mask = np.zeros((h, w, 3), np.float32)
    mask[0::2, 0::2, 0] = 1
    mask[0::2, 1::2, 1] = 1
    mask[1::2, 0::2, 1] = 1
    mask[1::2, 1::2, 2] = 1
    sampled = noise * mask
    k_rb = np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]], np.float32) / 4
    k_g = np.array([[0, 1, 0], [1, 4, 1], [0, 1, 0]], np.float32) / 4
    out = np.empty_like(noise)
    for c, k in ((0, k_rb), (1, k_g), (2, k_rb)):
        out[:, :, c] = _filter3(sampled[:, :, c], k)
    return out


def _filter3(a: np.ndarray, k: np.ndarray) -> np.ndarray:
    """3 x 3 correlation with reflected borders (the mosaic's neighbours mirror)."""
    p = np.pad(a, 1, mode="reflect")
    h, w = a.shape
    return sum(k[i, j] * p[i : i + h, j : j + w] for i in range(3) for j in range(3))


def _gaussian_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of each channel of an H x W x C array (reflected borders)."""
    r = max(1, math.ceil(3 * sigma))
    t = np.arange(-r, r + 1, dtype=np.float32)
    k = np.exp(-(t**2) / (2 * sigma**2))
    k /= k.sum()
    p = np.pad(a, ((r, r), (0, 0), (0, 0)), mode="reflect")
    a = sum(k[i] * p[i : i + a.shape[0]] for i in range(2 * r + 1))
    p = np.pad(a, ((0, 0), (r, r), (0, 0)), mode="reflect")
    return sum(k[i] * p[:, i : i + a.shape[1]] for i in range(2 * r + 1))


def add_camera_noise(
    img: np.ndarray, rng: np.random.Generator, params: CameraNoise | None = None
) -> np.ndarray:
    """``img`` (H x W x 3 uint8, even sides for the mosaic) as a camera would
    have recorded it at a random ISO: noisy, processed, often a JPEG (uint8)."""
    p = params or CameraNoise()
    lin = _srgb_to_linear(img.astype(np.float32) / 255.0)
    wb = np.array([rng.uniform(*p.red_gain), 1.0, rng.uniform(*p.blue_gain)], np.float32)
    mix = rng.uniform(*p.matrix_mix)
    # A colour matrix with rows summing to one (grey stays grey): 1 + 2m on the
    # diagonal, -m off it; raw = matrix^-1 (lin) / wb.
    ccm = (np.eye(3) * (1 + 3 * mix) - mix).astype(np.float32)
    raw = np.clip((lin @ np.linalg.inv(ccm).T.astype(np.float32)) / wb, 0.0, 1.0)
    log_shot = rng.uniform(math.log(p.shot[0]), math.log(p.shot[1]))
    log_read = 2.18 * log_shot + 1.20 + rng.normal(0.0, 0.26)
    var = math.exp(log_shot) * raw + math.exp(log_read)
    noise = rng.standard_normal(img.shape).astype(np.float32) * np.sqrt(var)
    noise = _demosaic_noise(noise)
    if rng.random() < p.blur_share:
        noise = _gaussian_blur(noise, rng.uniform(max(p.blur[0], 0.3), p.blur[1]))
    noise = (noise * wb) @ ccm.T
    keep = rng.uniform(*p.chroma_keep)
    if p.chroma_in == "srgb":
        base = _linear_to_srgb(lin)
        out = base + _scale_chroma(_linear_to_srgb(lin + noise) - base, keep)
    else:
        grey = noise.mean(axis=2, keepdims=True)
        noise = grey + keep * (noise - grey)
        out = _linear_to_srgb(lin + noise)
    out = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    if rng.random() < p.jpeg_share:
        out = jpeg_roundtrip(out, int(rng.integers(p.jpeg[0], p.jpeg[1] + 1)))
    return out
