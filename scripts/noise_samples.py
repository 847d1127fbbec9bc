"""Pictures of the real-noise training degradation, for docs/realnoise.md.

    python scripts/noise_samples.py [--realnoise ../shared/data/realnoise] [--out docs/realnoise]

Writes OUT/samples.png: a crop of examples/coffee.png (public domain) with the
camera noise ``scnrestore train denoise --noise real`` trains on, at three
strengths, beside white Gaussian noise of the same standard deviation (2x
nearest-neighbour, so the grain shows). And OUT/spectrum.png plus
OUT/spectrum.md: where the noise's energy lies across scales (the standard
deviation of the diagonal Haar band at 1, 2, 4 and 8 px, as a share of the
noise's own), for white noise, the synthetic camera noise and, where the
folder is there, the real camera noise of data/realnoise (noisy - clean).
Only statistics of the real pairs are drawn: their licence allows no copies
of their pixels.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from scnrestore.training import degrade

ROOT = Path(__file__).resolve().parents[1]
SCALES = (1, 2, 4, 8)
STRENGTHS = (("low ISO", 3e-4), ("mid ISO", 2e-3), ("high ISO", 1e-2))


def band_shares(noise: np.ndarray) -> list[float]:
    """Std of the diagonal Haar band at each of SCALES (2x2 box-averaging between
    them, times the scale so white noise reads 1 everywhere), over the noise's std."""
    x = noise.astype(np.float64)
    total = x.std()
    shares = []
    for s in SCALES:
        h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
        y = x[:h, :w]
        hh = (y[0::2, 0::2] - y[0::2, 1::2] - y[1::2, 0::2] + y[1::2, 1::2]) / 2
        shares.append(float(hh.std() * s / total))
        x = (y[0::2, 0::2] + y[0::2, 1::2] + y[1::2, 0::2] + y[1::2, 1::2]) / 4
    return shares


def samples(out: Path) -> None:
    with Image.open(ROOT / "examples" / "coffee.png") as im:
        crop = np.asarray(im.convert("RGB"))[150:246, 200:296].copy()
    panels, labels = [crop], ["clean"]
    for name, shot in STRENGTHS:
        p = degrade.CameraNoise(shot=(shot, shot), jpeg=(85, 85), blur_share=0.0)
        noisy = degrade.add_camera_noise(crop, np.random.default_rng(1), p)
        sd = float((noisy.astype(float) - crop).std())
        white = degrade.add_gaussian_noise(crop, sd, np.random.default_rng(1))
        panels += [noisy, white]
        labels += [f"camera, {name} (sd {sd:.1f})", f"white, sd {sd:.1f}"]
    side, pad, top = 192, 6, 18
    sheet = Image.new("RGB", (4 * (side + pad) + pad, 2 * (side + top + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    order = [0, 1, 3, 5, None, 2, 4, 6]
    for slot, i in enumerate(order):
        if i is None:
            continue
        x = pad + (slot % 4) * (side + pad)
        y = pad + (slot // 4) * (side + top + pad)
        tile = Image.fromarray(panels[i]).resize((side, side), Image.Resampling.NEAREST)
        sheet.paste(tile, (x, y + top))
        draw.text((x, y + 3), labels[i], fill="black")
    sheet.save(out / "samples.png", optimize=True)


def spectra(realnoise: Path | None) -> dict[str, list[float]]:
    rng = np.random.default_rng(0)
    flat = np.full((256, 256, 3), 118, np.uint8)
    rows = {"white Gaussian": band_shares(rng.normal(0, 5, (256, 256, 3)))}
    cam = []
    while len(cam) < 40:  # (a draw so light that JPEG leaves no noise has no shape)
        noise = degrade.add_camera_noise(flat, rng).astype(float) - 118
        if noise.std() > 0.5:
            cam.append(band_shares(noise))
    rows["synthetic camera noise (training)"] = list(np.mean(cam, axis=0))
    if realnoise is not None and (realnoise / "noisy").is_dir():
        real = []
        for p in sorted((realnoise / "noisy").iterdir()):
            with Image.open(p) as a, Image.open(realnoise / "clean" / p.name) as b:
                d = np.asarray(a.convert("RGB"), float) - np.asarray(b.convert("RGB"), float)
            real.append(band_shares(d))
        rows[f"real camera noise (PolyU, {len(real)} pairs)"] = list(np.mean(real, axis=0))
    return rows


def draw_spectra(rows: dict[str, list[float]], out: Path) -> None:
    colours = ["#888888", "#2b7bba", "#d7191c"]
    w, h, left, base = 520, 260, 40, 220
    img = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(img)
    top = max(max(v) for v in rows.values()) * 1.1
    group = (w - left - 20) / len(SCALES)
    bar = group / (len(rows) + 1)
    for si, s in enumerate(SCALES):
        gx = left + si * group
        draw.text((gx + group / 3, base + 6), f"{s} px", fill="black")
        for ri, vals in enumerate(rows.values()):
            x0 = gx + (ri + 0.5) * bar
            y0 = base - vals[si] / top * (base - 40)
            draw.rectangle([x0, y0, x0 + bar - 2, base], fill=colours[ri % 3])
    for ri, name in enumerate(rows):
        draw.rectangle([left, 6 + ri * 12, left + 8, 14 + ri * 12], fill=colours[ri % 3])
        draw.text((left + 12, 4 + ri * 12), name, fill="black")
    draw.line([left - 4, base, w - 10, base], fill="black")
    img.save(out / "spectrum.png", optimize=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--realnoise", type=Path, default=ROOT.parent / "shared/data/realnoise")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "realnoise")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    samples(args.out)
    rows = spectra(args.realnoise)
    draw_spectra(rows, args.out)
    lines = ["| noise | " + " | ".join(f"{s} px" for s in SCALES) + " |",
             "|---|" + "---|" * len(SCALES)]  # fmt: skip
    lines += [f"| {k} | " + " | ".join(f"{v:.2f}" for v in vals) + " |" for k, vals in rows.items()]
    (args.out / "spectrum.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
