"""How spatially correlated is noise? Real camera pairs against the training noise model.

    python benchmarks/noise_profile.py [--data ../shared/data/realnoise]
        [--camera-model brooks] [--shot 1e-4,6e-3] [--samples 200]
        [--blur LO,HI] [--blur-share S] [--chroma-keep LO,HI] [--chroma-in linear|srgb]
        [--save benchmarks/results/noise_profile]

The model rows come from ``--camera-model`` (``scnrestore train --camera-model``)
with the shot range of the GPU command; ``--blur`` and the rest override one of
its settings, to try a fit before a run is spent on it.

For each noise field (noisy - clean, its mean taken out) the table gives
k * std(box_k(noise)) / std(noise) for boxes of k = 2, 4, 8 pixels: 1 at every
k for white noise, growing with k the more the noise is made of blobs rather
than single pixels (demosaicing, in-camera noise reduction, JPEG). The denoiser
has to be told a σ that covers this coarse energy, not the pixel std.

A caveat on the real rows: PolyU's clean image is the mean of ~500 shots, so
``noisy - clean`` also holds whatever drifted slowly between the shots
(exposure, a slight shift), which shows at 8 px and above. The band-pass view
of ``scripts/noise_samples.py`` (the diagonal Haar band at each scale, no
coarser energy) puts the training noise above the real one at 4–8 px; this
cumulative view puts it below. Read both before fitting the noise model.

A second table gives how coloured the noise is: the standard deviation of
the chroma (Cb, Cr) of the noise's diagonal Haar band at 1, 2 and 4 px, over
that of its luma (Y). A camera cuts colour noise hard (it is what looks worst)
and its JPEG halves the chroma resolution, so real noise is mostly luma.

For the model rows the reference is the clean crop through the same JPEG
the noisy one went through (when it went through one), as for PolyU, whose
clean mean was made from the camera's own JPEGs: the rows then hold the
noise alone, not what JPEG did to the picture.

Rows: the real pairs (the PolyU layout of benchmarks/realnoise.py: statistics
only, no pixel of them is written) and ``degrade.add_camera_noise`` on crops of
the training photos with the given blur range and share (the rest of
``CameraNoise`` at its defaults), so a noise model can be fitted to the real
profile before a run is spent on it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SCALES = (2, 4, 8)
BANDS = (1, 2, 4)


def profile(noise: np.ndarray) -> list[float]:
    """k * std(box_k(noise)) / std(noise) for k in SCALES (H x W x C float)."""
    n = noise - noise.mean(axis=(0, 1))
    sd = float(n.std())
    out = []
    for k in SCALES:
        h, w = n.shape[0] // k * k, n.shape[1] // k * k
        boxed = n[:h, :w].reshape(h // k, k, w // k, k, -1).mean(axis=(1, 3))
        out.append(k * float(boxed.std()) / sd if sd > 0 else 0.0)
    return out


def chroma(noise: np.ndarray) -> list[float]:
    """std(Cb, Cr) / std(Y) of the diagonal Haar band of box_k(noise), k in BANDS."""
    from scnrestore.training.degrade import YCBCR

    ycc = (noise - noise.mean(axis=(0, 1))) @ YCBCR.T.astype(np.float64)
    out = []
    for k in BANDS:
        h, w = ycc.shape[0] // (2 * k) * 2 * k, ycc.shape[1] // (2 * k) * 2 * k
        b = ycc[:h, :w].reshape(h // k, k, w // k, k, 3).mean(axis=(1, 3))
        d = (b[0::2, 0::2] - b[0::2, 1::2] - b[1::2, 0::2] + b[1::2, 1::2]) / 2
        luma = float(d[..., 0].std())
        out.append(float(np.sqrt((d[..., 1].var() + d[..., 2].var()) / 2)) / luma if luma else 0.0)
    return out


def real_profiles(folder: Path) -> tuple[list[list[float]], list[list[float]]]:
    from PIL import Image

    rows, colour = [], []
    for name in sorted(p.name for p in (folder / "noisy").iterdir()):
        noisy = np.asarray(Image.open(folder / "noisy" / name).convert("RGB"), np.float64)
        clean = np.asarray(Image.open(folder / "clean" / name).convert("RGB"), np.float64)
        rows.append(profile(noisy - clean))
        colour.append(chroma(noisy - clean))
    return rows, colour


def model_profiles(photos: Path, params, samples: int):
    """Profiles of ``add_camera_noise`` with ``params`` on random 256-px crops.

    The JPEG step runs here, on both the noisy crop and the clean reference,
    so the noise field holds the noise alone."""
    from PIL import Image

    from scnrestore.training.degrade import add_camera_noise, jpeg_roundtrip

    no_jpeg = replace(params, jpeg_share=0.0)
    rng = np.random.default_rng(0)
    files = sorted(p for p in photos.iterdir() if p.is_file())
    rows, colour = [], []
    while len(rows) < samples:
        img = np.asarray(Image.open(files[rng.integers(len(files))]).convert("RGB"))
        if min(img.shape[:2]) < 256:
            continue
        y = int(rng.integers(0, img.shape[0] - 255)) // 2 * 2
        x = int(rng.integers(0, img.shape[1] - 255)) // 2 * 2
        crop = img[y : y + 256, x : x + 256]
        noisy = add_camera_noise(crop, rng, no_jpeg)
        if rng.random() < params.jpeg_share:
            q = int(rng.integers(params.jpeg[0], params.jpeg[1] + 1))
            noisy, crop = jpeg_roundtrip(noisy, q), jpeg_roundtrip(crop, q)
        noise = noisy.astype(np.float64) - crop
        if noise.std() < 0.5:  # below what 8 bits can show: no profile to read
            continue
        rows.append(profile(noise))
        colour.append(chroma(noise))
    return rows, colour


def summary(label: str, rows: list[list[float]]) -> str:
    a = np.asarray(rows)
    lo, mid, hi = np.percentile(a, [10, 50, 90], axis=0)
    cells = [f"{mid[i]:.2f} ({lo[i]:.2f}-{hi[i]:.2f})" for i in range(a.shape[1])]
    return f"| {label} | {len(rows)} | " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED / "realnoise")
    ap.add_argument("--photos", type=Path, default=SHARED / "train291")
    ap.add_argument("--camera-model", default="brooks", help="brooks or processed")
    ap.add_argument("--shot", default="1e-4,6e-3", help="shot-noise range, LO,HI")
    ap.add_argument("--blur", help="noise blur σ range (px), LO,HI")
    ap.add_argument("--blur-share", type=float, help="share of fields blurred")
    ap.add_argument("--chroma-keep", help="share of chroma noise kept, LO,HI")
    ap.add_argument("--chroma-in", choices=("linear", "srgb"))
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--save", type=Path, help="write SAVE.txt (table) and SAVE.json")
    args = ap.parse_args()
    for folder in (args.data, args.photos):
        if not folder.is_dir():
            raise SystemExit(f"{folder}: not found (see ../shared/README.md)")
    from scnrestore.training.degrade import camera_model

    def pair(text: str) -> tuple[float, float]:
        lo, hi = (float(v) for v in text.split(","))
        return lo, hi

    overrides = {
        "blur": pair(args.blur) if args.blur else None,
        "blur_share": args.blur_share,
        "chroma_keep": pair(args.chroma_keep) if args.chroma_keep else None,
        "chroma_in": args.chroma_in,
    }
    overrides = {k: v for k, v in overrides.items() if v is not None}
    params = replace(camera_model(args.camera_model, pair(args.shot)), **overrides)
    real, real_colour = real_profiles(args.data)
    model, model_colour = model_profiles(args.photos, params, args.samples)
    label = (
        f"{args.camera_model}: blur {params.blur[0]:g}-{params.blur[1]:g} on"
        f" {params.blur_share:g}, colour kept {params.chroma_keep[0]:g}-{params.chroma_keep[1]:g}"
        f" in {params.chroma_in}"
    )
    flags = " ".join(
        f"--{k.replace('_', '-')} {v}"
        for k, v in vars(args).items()
        if k in ("blur", "blur_share", "chroma_keep", "chroma_in") and v is not None
    )
    lines = [
        "# k * std(box_k(noise)) / std(noise): median (10th-90th percentile); white noise: 1",
        f"# python benchmarks/noise_profile.py --camera-model {args.camera_model}"
        f" --shot {args.shot} --samples {args.samples}" + (f" {flags}" if flags else ""),
        "| noise | fields | " + " | ".join(f"{k} px" for k in SCALES) + " |",
        "|---|---|" + "---|" * len(SCALES),
        summary(f"real ({args.data.name})", real),
        summary(label, model),
        "",
        "# std(Cb, Cr) / std(Y) of the noise's diagonal Haar band at k px",
        "| noise | fields | " + " | ".join(f"{k} px" for k in BANDS) + " |",
        "|---|---|" + "---|" * len(BANDS),
        summary(f"real ({args.data.name})", real_colour),
        summary(label, model_colour),
    ]
    print("\n".join(lines))
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.with_suffix(".txt").write_text("\n".join(lines) + "\n")
        args.save.with_suffix(".json").write_text(
            json.dumps(
                {
                    "scales": SCALES,
                    "real": real,
                    "model": model,
                    "bands": BANDS,
                    "real_chroma": real_colour,
                    "model_chroma": model_colour,
                }
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
