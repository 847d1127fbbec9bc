"""Estimating degradation levels from an image: noise sigma and JPEG quality.

* ``estimate_sigma``: Donoho's robust estimator on the finest diagonal Haar
  wavelet band: sigma = median(|HH|) / 0.6745, on the 0-255 scale. Edges and
  texture inflate HH a little; the median keeps that small on photos.
* ``estimate_jpeg_quality``: the luminance quantisation table of the file is
  compared with the tables Pillow's (libjpeg's) encoder writes at each quality
  1-100; the closest wins. Exact for files saved by libjpeg-based encoders
  with standard tables; a best fit for others.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence

import numpy as np

__all__ = ["estimate_sigma", "estimate_jpeg_quality", "reference_tables"]


def estimate_sigma(pixels: np.ndarray) -> float:
    """Gaussian noise std on the 0-255 scale of an H x W x C image (any dtype).

    Float pixels are read as the restoration reads them: NaN counts as 0 and
    values are clipped to [0, 1] (inf to 1, -inf to 0). Raises ValueError for
    an image under 2 x 2 pixels.
    """
    a = np.asarray(pixels)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.dtype.kind == "u":
        scale = 255.0 / np.iinfo(a.dtype).max
    else:
        scale = 255.0
    colour = a[:, :, :3] if a.shape[2] >= 3 else a[:, :, :1]
    h, w = colour.shape[0] // 2 * 2, colour.shape[1] // 2 * 2
    if h < 2 or w < 2:
        raise ValueError(
            f"image too small to estimate its noise ({a.shape[1]} x {a.shape[0]} pixels, "
            "at least 2 x 2 needed): pass --sigma N"
        )
    x = colour[:h, :w].astype(np.float64)
    if a.dtype.kind == "f":  # as the engine reads float pixels: NaN is 0, clipped to [0, 1]
        x = np.clip(np.nan_to_num(x, nan=0.0), 0.0, 1.0, out=x)
    x *= scale
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    sigmas = [np.median(np.abs(hh[:, :, c])) / 0.6745 for c in range(hh.shape[2])]
    return float(np.mean(sigmas))


@functools.lru_cache(maxsize=1)
def reference_tables() -> dict[int, tuple[int, ...]]:
    """Luminance quantisation table Pillow writes at each quality 1..100."""
    from PIL import Image

    tile = Image.new("RGB", (16, 16), (128, 128, 128))
    tables = {}
    for q in range(1, 101):
        buf = io.BytesIO()
        tile.save(buf, "JPEG", quality=q)
        buf.seek(0)
        with Image.open(buf) as im:
            tables[q] = tuple(im.quantization[0])
    return tables


def estimate_jpeg_quality(quantization: dict[int, Sequence[int]] | None) -> int:
    """Quality 1-100 whose standard luminance table is closest to the file's."""
    if not quantization or 0 not in quantization:
        raise ValueError("no JPEG quantisation tables")
    luma = np.asarray(quantization[0], np.float64)
    best, best_err = 0, float("inf")
    for q, table in reference_tables().items():
        err = float(np.mean((np.log(luma) - np.log(np.asarray(table, np.float64))) ** 2))
        if err < best_err:
            best, best_err = q, err
    return best
