"""Build README's gallery: labelled before/after crops made from examples/.

    python scripts/gallery.py                 # -> docs/gallery/*.png

Each picture is input (or its bicubic upscale) | scnrestore | original, the
PSNR (RGB) and SSIM (luma) of each panel against the original on it. The
originals are the repository's own public-domain examples (scikit-image's
sample data): chelsea.png and coffee.png. The degraded inputs are made here
as the benchmarks make them: Pillow bicubic downscaling, Pillow JPEG, seeded
Gaussian noise; the restorations run the shipped models as the command line
does (``upscale``'s chain with the JPEG's quality, ``denoise``, ``dejpeg``).
"""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from scnrestore.api import Restorer
from scnrestore.chain import Chain
from scnrestore.compare import Panel, side_by_side

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Case:
    """One gallery picture: its file, the example it starts from, how the
    input is made from it, the input panel's label, and the restoration."""

    name: str
    example: str
    degrade: Callable[[np.ndarray], np.ndarray]
    label: str
    restore: Callable[[np.ndarray, dict], np.ndarray]
    upscale: int = 1


def _downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    h, w = hr.shape[0] // scale * scale, hr.shape[1] // scale * scale
    im = PILImage.fromarray(hr[:h, :w])
    return np.asarray(im.resize((w // scale, h // scale), PILImage.Resampling.BICUBIC))


def _jpeg(pixels: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    PILImage.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    with PILImage.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def _noisy(pixels: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    noisy = pixels.astype(np.float64) + rng.normal(0.0, sigma, pixels.shape)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    size = (lr.shape[1] * scale, lr.shape[0] * scale)
    return np.asarray(PILImage.fromarray(lr).resize(size, PILImage.Resampling.BICUBIC))


def _upscale(scale: int, quality: int | None) -> Callable[[np.ndarray, dict], np.ndarray]:
    def run(pixels: np.ndarray, options: dict) -> np.ndarray:
        chain = Chain(scale, "off" if quality is None else quality, None, **options)
        return chain.restore_array(pixels, quality)

    return run


def _restorer(task: str, level: float) -> Callable[[np.ndarray, dict], np.ndarray]:
    def run(pixels: np.ndarray, options: dict) -> np.ndarray:
        return Restorer(task, **options).restore_array(pixels, level)

    return run


CASES = [
    Case("upscale_x2", "chelsea.png", lambda hr: _downscale(hr, 2), "bicubic x2",
         _upscale(2, None), 2),
    Case("upscale_x4", "chelsea.png", lambda hr: _downscale(hr, 4), "bicubic x4",
         _upscale(4, None), 4),
    Case("upscale_x2_jpeg75", "coffee.png", lambda hr: _jpeg(_downscale(hr, 2), 75),
         "bicubic x2 of a q75 JPEG", _upscale(2, 75), 2),
    Case("upscale_x4_jpeg75", "coffee.png", lambda hr: _jpeg(_downscale(hr, 4), 75),
         "bicubic x4 of a q75 JPEG", _upscale(4, 75), 4),
    Case("denoise_sigma25", "coffee.png", lambda hr: _noisy(hr, 25.0), "noise σ 25",
         _restorer("denoise", 25.0)),
    Case("dejpeg_q10", "chelsea.png", lambda hr: _jpeg(hr, 10), "JPEG q10",
         _restorer("dejpeg", 10.0)),
]  # fmt: skip


def build(
    examples: Path,
    out: Path,
    crop: int = 96,
    zoom: int = 2,
    options: dict | None = None,
) -> list[Path]:
    """Write one PNG per :data:`CASES` entry into ``out``; their paths.

    ``crop``: the square window shown (in original pixels, centred), ``zoom``:
    its magnification; ``options`` go to each Restorer (device, precision...).
    """
    options = {"device": "cpu", **(options or {})}
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for case in CASES:
        with PILImage.open(examples / case.example) as im:
            hr = np.asarray(im.convert("RGB"))
        s = case.upscale
        hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]  # every scale divides it
        src = case.degrade(hr)
        shown = _bicubic(src, s) if s > 1 else src
        restored = case.restore(src, options)
        panels = [Panel(shown, case.label), Panel(restored, "scnrestore"), Panel(hr, "original")]
        picture = side_by_side(panels, hr, (crop, crop), zoom=zoom)
        path = out / f"{case.name}.png"
        picture.save(path, optimize=True)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=Path, default=ROOT / "examples")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "gallery")
    ap.add_argument("--crop", type=int, default=96, help="window side in original pixels")
    ap.add_argument("--zoom", type=int, default=2, help="magnification of the window")
    ap.add_argument("--precision", default="fp32", help="auto, fp32, bf16 or fp16")
    args = ap.parse_args(argv)
    paths = build(args.examples, args.out, args.crop, args.zoom, {"precision": args.precision})
    total = sum(p.stat().st_size for p in paths)
    for p in paths:
        print(f"{p} ({p.stat().st_size // 1024} KB)")
    print(f"{len(paths)} pictures, {total // 1024} KB in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
