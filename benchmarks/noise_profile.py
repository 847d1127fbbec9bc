"""How spatially correlated is noise? Real camera pairs against the training noise model.

    python benchmarks/noise_profile.py [--data ../shared/data/realnoise]
        [--blur 0,1.2] [--blur-share 0.5] [--samples 200] [--save benchmarks/results/noise_profile]

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

Rows: the real pairs (the PolyU layout of benchmarks/realnoise.py: statistics
only, no pixel of them is written) and ``degrade.add_camera_noise`` on crops of
the training photos with the given blur range and share (the rest of
``CameraNoise`` at its defaults), so a noise model can be fitted to the real
profile before a run is spent on it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SCALES = (2, 4, 8)


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


def real_profiles(folder: Path) -> list[list[float]]:
    from PIL import Image

    rows = []
    for name in sorted(p.name for p in (folder / "noisy").iterdir()):
        noisy = np.asarray(Image.open(folder / "noisy" / name).convert("RGB"), np.float64)
        clean = np.asarray(Image.open(folder / "clean" / name).convert("RGB"), np.float64)
        rows.append(profile(noisy - clean))
    return rows


def model_profiles(photos: Path, blur: tuple[float, float], share: float, samples: int):
    from PIL import Image

    from scnrestore.training.degrade import CameraNoise, add_camera_noise

    params = CameraNoise(blur=blur, blur_share=share)
    rng = np.random.default_rng(0)
    files = sorted(p for p in photos.iterdir() if p.is_file())
    rows = []
    while len(rows) < samples:
        img = np.asarray(Image.open(files[rng.integers(len(files))]).convert("RGB"))
        if min(img.shape[:2]) < 128:
            continue
        y = int(rng.integers(0, img.shape[0] - 127)) // 2 * 2
        x = int(rng.integers(0, img.shape[1] - 127)) // 2 * 2
        crop = img[y : y + 128, x : x + 128]
        noisy = add_camera_noise(crop, rng, params)
        rows.append(profile(noisy.astype(np.float64) - crop))
    return rows


def summary(label: str, rows: list[list[float]]) -> str:
    a = np.asarray(rows)
    lo, mid, hi = np.percentile(a, [10, 50, 90], axis=0)
    cells = [f"{mid[i]:.2f} ({lo[i]:.2f}-{hi[i]:.2f})" for i in range(len(SCALES))]
    return f"| {label} | {len(rows)} | " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data", type=Path, default=SHARED / "realnoise")
    ap.add_argument("--photos", type=Path, default=SHARED / "train291")
    ap.add_argument("--blur", default="0,1.2", help="noise blur σ range (px), LO,HI")
    ap.add_argument("--blur-share", type=float, default=0.5)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--save", type=Path, help="write SAVE.txt (table) and SAVE.json")
    args = ap.parse_args()
    for folder in (args.data, args.photos):
        if not folder.is_dir():
            raise SystemExit(f"{folder}: not found (see ../shared/README.md)")
    lo, hi = (float(v) for v in args.blur.split(","))
    real = real_profiles(args.data)
    model = model_profiles(args.photos, (lo, hi), args.blur_share, args.samples)
    head = " | ".join(f"{k} px" for k in SCALES)
    lines = [
        "# k * std(box_k(noise)) / std(noise): median (10th-90th percentile); white noise: 1",
        f"# python benchmarks/noise_profile.py --blur {args.blur} --blur-share {args.blur_share}"
        f" --samples {args.samples}",
        f"| noise | fields | {head} |",
        "|---|---|" + "---|" * len(SCALES),
        summary(f"real ({args.data.name})", real),
        summary(f"add_camera_noise, blur {args.blur} on {args.blur_share:g}", model),
    ]
    print("\n".join(lines))
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.with_suffix(".txt").write_text("\n".join(lines) + "\n")
        args.save.with_suffix(".json").write_text(
            json.dumps({"scales": SCALES, "real": real, "model": model}) + "\n"
        )


if __name__ == "__main__":
    main()
