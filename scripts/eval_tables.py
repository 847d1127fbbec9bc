"""Markdown quality tables for docs/models.md from `scnrestore eval --json` output.

    scnrestore eval ../shared/data/val --task upscale -s 2 --json > x2.json
    python scripts/eval_tables.py x2.json [more.json ...] [--anchors ANCHORS.json]

SR: one row per image and the mean (PSNR, PSNR-Y, SSIM, bicubic, gain in
PSNR-Y). Denoise / dejpeg: one row per level with the mean PSNR, SSIM, the
input's, the gain, and a reference column when --anchors maps levels to PSNR
(e.g. CBM3D from benchmarks/cbm3d.py). Dejpeg adds PSNR-Y (output and input)
and, when the eval blended part of the input back (dejpeg's JPEG luma,
denoise's noisy input), the share kept per level; when the network was told
another level than the true one (the registry's told_level), the level told.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from scnrestore.weights import TASK_SCHEDULES


def _mean(rows: list[dict], key: str) -> float:
    return sum(r[key] for r in rows) / len(rows)


def table(doc: dict, anchors: dict[str, float] | None = None) -> str:
    task = doc["task"]
    out = []
    if task == "upscale":
        out.append(f"x{doc['scale']} ({doc['precision']}):\n")
        out.append("| image | PSNR | PSNR-Y | SSIM | bicubic PSNR-Y | bicubic SSIM | gain PSNR-Y |")
        out.append("|---|---|---|---|---|---|---|")
        rows = doc["results"][0]["images"]
        mean = {k: _mean(rows, k) for k in ("psnr", "psnr_y", "ssim", "base_psnr_y", "base_ssim")}
        for name, src in [*((r["image"], r) for r in rows), ("**mean**", mean)]:
            out.append(
                f"| {name} | {src['psnr']:.2f} | {src['psnr_y']:.2f} | {src['ssim']:.4f} | "
                f"{src['base_psnr_y']:.2f} | {src['base_ssim']:.4f} | "
                f"{src['psnr_y'] - src['base_psnr_y']:+.2f} |"
            )
        return "\n".join(out)
    what = "σ" if task == "denoise" else "quality"
    base = "noisy input" if task == "denoise" else "JPEG input"
    head = f"| {what} | PSNR | SSIM | {base} PSNR | {base} SSIM | gain |"
    sep = "|---|---|---|---|---|---|"
    luma = task == "dejpeg"
    key = TASK_SCHEDULES[task]
    kept = any(r.get(key) for r in doc["results"])
    if luma:
        head += f" PSNR-Y | {base} PSNR-Y |"
        sep += "---|---|"
    if kept:
        head += " JPEG luma kept |" if luma else " input kept |"
        sep += "---|"
    told = any(r.get("told_level", r["level"]) != r["level"] for r in doc["results"])
    if told:
        head += " network told |"
        sep += "---|"
    if anchors:
        head += " reference PSNR | vs reference |"
        sep += "---|---|"
    out += [
        f"{task} ({doc['precision']}), mean of {len(doc['results'][0]['images'])} images:\n",
        head,
        sep,
    ]  # noqa: E501
    for res in doc["results"]:
        rows = res["images"]
        p, b = _mean(rows, "psnr"), _mean(rows, "base_psnr")
        line = (f"| {res['level']:g} | {p:.2f} | {_mean(rows, 'ssim'):.4f} | {b:.2f} | "
                f"{_mean(rows, 'base_ssim'):.4f} | {p - b:+.2f} |")  # fmt: skip
        if luma:
            line += f" {_mean(rows, 'psnr_y'):.2f} | {_mean(rows, 'base_psnr_y'):.2f} |"
        if kept:
            line += f" {res.get(key) or 0:.0%} |"
        if told:
            line += f" {res.get('told_level', res['level']):.3g} |"
        if anchors:
            ref = anchors.get(f"{res['level']:g}")
            line += f" {ref:.3f} | {p - ref:+.3f} |" if ref is not None else " – | – |"
        out.append(line)
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--anchors", type=Path, help='JSON {"15": 34.39, ...} for denoise/dejpeg')
    a = ap.parse_args()
    anchors = json.loads(a.anchors.read_text()) if a.anchors else None
    for f in a.files:
        doc = json.loads(f.read_text())
        print(table(doc, anchors if doc["task"] != "upscale" else None), end="\n\n")


if __name__ == "__main__":
    main()
