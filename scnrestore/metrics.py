"""Image quality metrics: PSNR on RGB, PSNR on Y (BT.601, as SR benchmarks), SSIM."""

from __future__ import annotations

import numpy as np

__all__ = ["psnr", "psnr_y", "ssim", "rgb_to_y"]


def _shave(a: np.ndarray, border: int) -> np.ndarray:
    return a[border:-border, border:-border] if border > 0 else a


def psnr(a: np.ndarray, b: np.ndarray, border: int = 0, peak: float = 255.0) -> float:
    """PSNR in dB between two images of the same shape (uint8 scale by default)."""
    a = _shave(np.asarray(a, np.float64), border)
    b = _shave(np.asarray(b, np.float64), border)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0:
        return float("inf")
    return 10.0 * np.log10(peak * peak / mse)


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma in [16, 235] from 8-bit RGB, as MATLAB's rgb2ycbcr."""
    x = np.asarray(img, np.float64) / 255.0
    return 16.0 + 65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2]


def psnr_y(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    """PSNR on the Y channel with ``border`` pixels shaved (the SR convention)."""
    return psnr(rgb_to_y(a), rgb_to_y(b), border)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    ax = np.arange(size) - size // 2
    g = np.exp(-(ax**2) / (2 * sigma * sigma))
    return g / g.sum()


def _filter2(img: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering with a 1-D kernel along both axes."""
    k = len(g)
    tmp = sum(g[i] * img[i : img.shape[0] - k + 1 + i] for i in range(k))
    return sum(g[i] * tmp[:, i : tmp.shape[1] - k + 1 + i] for i in range(k))


def ssim(a: np.ndarray, b: np.ndarray, border: int = 0) -> float:
    """SSIM (Wang et al. 2004, 11x11 Gaussian, sigma 1.5) on Y, 8-bit scale."""
    x = _shave(rgb_to_y(a) if np.ndim(a) == 3 else np.asarray(a, np.float64), border)
    y = _shave(rgb_to_y(b) if np.ndim(b) == 3 else np.asarray(b, np.float64), border)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    g = _gaussian_window()
    mx, my = _filter2(x, g), _filter2(y, g)
    sxx = _filter2(x * x, g) - mx * mx
    syy = _filter2(y * y, g) - my * my
    sxy = _filter2(x * y, g) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))
