"""Labelled side-by-side pictures of images, for judging restorations by eye.

Each image becomes a panel: scaled to one size (the reference's, else the
largest image's; nearest-neighbour by default, so a small input shows its
pixels as they are), cropped to the same window, with its label and, given a
reference, its PSNR (RGB) and SSIM (luma) against it, measured on the whole
scaled image. ``scnrestore compare`` writes one; ``scripts/gallery.py``
builds README's gallery with it.

>>> from scnrestore.compare import Panel, side_by_side
>>> picture = side_by_side([Panel(lr, "input"), Panel(sr, "x4")], reference=hr, crop=(192, 192))
>>> picture.save("cmp.png")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image as PILImage

__all__ = ["Panel", "side_by_side", "load_rgb8", "parse_crop", "score"]

GAP = 4
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)
RESAMPLING = ("nearest", "bicubic", "lanczos")


@dataclass
class Panel:
    """One image of a comparison: H x W x 3 uint8 pixels and its label."""

    pixels: np.ndarray
    label: str


def load_rgb8(path: str | Path) -> np.ndarray:
    """An image file as H x W x 3 uint8 RGB (16-bit and float scaled, gray
    repeated, alpha composited on black). Raises what read_image raises."""
    from .imageio import read_image

    return to_rgb8(read_image(path).pixels)


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """H x W x C pixels (C = 1..4, any dtype the readers give) as uint8 RGB."""
    a = np.asarray(pixels)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.dtype.kind == "u":
        x = a.astype(np.float32) / np.float32(np.iinfo(a.dtype).max)
    else:
        x = np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0)
    if x.shape[2] in (2, 4):  # alpha over black
        x = x[:, :, :-1] * x[:, :, -1:]
    if x.shape[2] == 1:
        x = np.repeat(x, 3, axis=2)
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def parse_crop(text: str) -> tuple[int, int]:
    """``256`` or ``320x200`` -> (width, height); ValueError otherwise."""
    w, sep, h = text.lower().partition("x")
    try:
        size = (int(w), int(h) if sep else int(w))
    except ValueError:
        raise ValueError(f"a crop is N or WxH in pixels, not {text!r}") from None
    if min(size) < 1:
        raise ValueError(f"a crop must be at least 1 pixel, not {text!r}")
    return size


def _scaled(pixels: np.ndarray, size: tuple[int, int], resample: str) -> np.ndarray:
    from PIL import Image as PILImage

    if (pixels.shape[1], pixels.shape[0]) == size:
        return pixels
    kind = {
        "nearest": PILImage.Resampling.NEAREST,
        "bicubic": PILImage.Resampling.BICUBIC,
        "lanczos": PILImage.Resampling.LANCZOS,
    }[resample]
    return np.asarray(PILImage.fromarray(pixels).resize(size, kind))


def score(pixels: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """(PSNR on RGB in dB, SSIM on luma) of uint8 ``pixels`` against ``reference``."""
    from .metrics import psnr, ssim

    return psnr(pixels, reference), ssim(pixels, reference)


def _window(
    size: tuple[int, int], crop: tuple[int, int] | None, at: tuple[int, int] | None
) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the crop in an image of ``size``: centred
    unless ``at`` (its top-left) is given; clipped to the image."""
    w, h = size
    if crop is None:
        return 0, 0, w, h
    cw, ch = min(crop[0], w), min(crop[1], h)
    x, y = at if at is not None else ((w - cw) // 2, (h - ch) // 2)
    x, y = min(max(x, 0), w - cw), min(max(y, 0), h - ch)
    return x, y, x + cw, y + ch


def _font(size: int) -> object:
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def side_by_side(
    panels: list[Panel],
    reference: np.ndarray | None = None,
    crop: tuple[int, int] | None = None,
    at: tuple[int, int] | None = None,
    zoom: int = 1,
    resample: str = "nearest",
) -> PILImage.Image:
    """The panels in a row, each scaled to one size (the reference's, else
    the largest panel's), cropped to the same window (``crop`` = (w, h) at
    ``at``, or centred), magnified ``zoom`` times (nearest-neighbour), each
    under its label; given ``reference``, each label adds PSNR and SSIM
    against it (measured on the whole scaled image, not just the crop)."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    if not panels:
        raise ValueError("nothing to compare")
    if resample not in RESAMPLING:
        raise ValueError(f"resample must be one of {', '.join(RESAMPLING)}, not {resample!r}")
    if reference is not None:
        size = (reference.shape[1], reference.shape[0])
    else:
        biggest = max(panels, key=lambda p: p.pixels.shape[0] * p.pixels.shape[1])
        size = (biggest.pixels.shape[1], biggest.pixels.shape[0])
    box = _window(size, crop, at)
    cells, labels = [], []
    for panel in panels:
        full = _scaled(panel.pixels, size, resample)
        lines = [panel.label]
        if reference is not None:
            if full is reference or np.array_equal(full, reference):
                lines.append("reference")
            else:
                p, s = score(full, reference)
                lines.append(f"PSNR {p:.2f} dB  SSIM {s:.3f}")
        cell = PILImage.fromarray(full).crop(box)
        if zoom > 1:
            cell = cell.resize((cell.width * zoom, cell.height * zoom), PILImage.Resampling.NEAREST)
        cells.append(cell)
        labels.append(lines)
    cw, ch = cells[0].size
    font_px = max(10, min(16, cw // 14))
    font = _font(font_px)
    bar = max(len(lines) for lines in labels) * (font_px + 4) + 6
    sheet = PILImage.new("RGB", (len(cells) * (cw + GAP) + GAP, ch + bar + 2 * GAP), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for i, (cell, lines) in enumerate(zip(cells, labels, strict=True)):
        x = GAP + i * (cw + GAP)
        for j, line in enumerate(lines):
            while len(line) > 4 and draw.textlength(line, font=font) > cw - 6:  # type: ignore[arg-type]
                line = line[:-2] + "…"
            draw.text((x + 3, GAP + 3 + j * (font_px + 4)), line, fill=TEXT, font=font)  # type: ignore[arg-type]
        sheet.paste(cell, (x, GAP + bar))
    return sheet
