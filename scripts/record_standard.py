"""Write a standard-protocol measurement into the registry entries it measured.

    python scripts/ship.py runs/x4 --name scn-x4 --stage "stage 7, ..."
    python benchmarks/standard.py --sets Set5,Set14,B100 --tasks x4 \\
        --save benchmarks/results/standard_x4_stage7 --quiet
    python scripts/record_standard.py benchmarks/results/standard_x4_stage7.json

An upscaler's entry carries its colour Set5 / Set14 PSNR-Y (quality's
set5_psnr_y, set14_psnr_y) and, in quality_note, the command that measured them
and its other sets. ship.py cannot write them (they are measured on the weights
it has just shipped) and drops the old ones (they belong to the old weights);
this writes them from the --save document, and only into an entry whose
sha256 is the one the document measured: figures of other weights are refused.
TTA documents are refused too: an entry's figures are its default path's.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import ship  # scripts/ship.py: the registry writer

#: The sets whose figure an entry's quality table holds, as quality keys.
QUALITY_SETS = {"Set5": "set5_psnr_y", "Set14": "set14_psnr_y"}
#: The quality_note clause this script owns (replaced on each new record).
CLAUSE = re.compile(r"; set5/set14: [^()]*\([^()]*\)")


def sr_figures(doc: dict) -> dict[str, dict[str, float]]:
    """{model name: {set: PSNR-Y}} of the document's plain upscaling results."""
    if doc.get("tta"):
        raise SystemExit("a --tta document: the registry records the default path's figures")
    out: dict[str, dict[str, float]] = {}
    for res in doc["results"]:
        if res["task"] == "upscale" and res["metric"] == "psnr_y":
            out.setdefault(res["model"], {})[res["set"]] = res["ours"]
    return out


def model_sha(doc: dict, name: str) -> str:
    for info in doc["models"].values():
        if info.get("source") == name:
            return info["sha256"]
    raise SystemExit(f"{name}: the document does not say which weights it measured")


def updated_fields(entry: dict, figures: dict[str, float], doc: dict) -> dict:
    """The entry with its standard-set quality keys and note clause replaced."""
    fields = dict(entry)
    quality = dict(fields.get("quality", {}))
    for set_name, key in QUALITY_SETS.items():
        quality.pop(key, None)
        if set_name in figures:
            quality[key] = round(figures[set_name], 2)
    fields["quality"] = quality
    precisions = "/".join(doc.get("precision_used") or [doc.get("precision", "auto")])
    others = "; ".join(f"{s} {v:.2f}" for s, v in figures.items() if s not in QUALITY_SETS)
    command = re.sub(
        r" --save \S+| --quiet| -q\b", "", doc.get("command", "benchmarks/standard.py")
    )
    clause = (
        "; set5/set14: colour Set5 / Set14 by the standard protocol "
        f"({command}, {precisions}{'; ' + others if others else ''})"
    )
    fields["quality_note"] = CLAUSE.sub("", fields.get("quality_note", "")) + clause
    return fields


def record(doc: dict) -> list[str]:
    """Write each measured upscaler's figures; the names written."""
    written = []
    for name, figures in sr_figures(doc).items():
        entry = ship.previous_entry(name)
        sha = model_sha(doc, name)
        if entry.get("sha256") != sha:
            raise SystemExit(
                f"{name}: the document measured weights {sha[:12]}, the registry ships "
                f"{str(entry.get('sha256'))[:12]}: measure the shipped weights again"
            )
        if not figures.keys() & QUALITY_SETS.keys():
            continue
        ship.write_entry(name, updated_fields(entry, figures, doc))
        written.append(name)
    return written


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("document", type=Path, help="a JSON file written by standard.py --save")
    args = ap.parse_args()
    names = record(json.loads(args.document.read_text()))
    if not names:
        sys.exit(f"{args.document}: no Set5 / Set14 upscaling figures to record")
    print("recorded the standard sets for " + ", ".join(names))


if __name__ == "__main__":
    main()
