"""Average the weights of runs fine-tuned from the same start ("model soup").

    python scripts/average_runs.py runs/a runs/b --out runs/ab

Runs started with --init from the same weights and trained with different
seeds (or level focus) usually stay in one basin of the loss, where the mean
of their weights scores at least as well as either; whether it does here is
for `scnrestore eval` to say, not this script. RUN/model.safetensors (fp32)
and RUN/run.json are read from each run; OUT gets both, in the same form, so
`scnrestore eval --model OUT/model.safetensors` and scripts/ship.py take it
like any run. Its steps are the runs' steps added up (the training spent on
it) and its command names every run's command and this one.

    python scripts/average_runs.py runs/a --with-start --out runs/a_mid

--with-start puts the weights the runs started from (their --init file) into
the mean as one more member: the midpoint between a fine-tune and its start
(weight-space ensembling, Wortsman et al., "Robust fine-tuning of zero-shot
models", CVPR 2022), which keeps most of a short fine-tune's gain on the data
it saw and gives back less where it drifted (scn-denoise stage 24). The start's
own steps are not added: they are already in its registry entry's history.

Runs trained on different data mixes (several --data folders with other
shares) are recorded with the mean of their shares, a folder a run did not use
counting 0 for it: the mix the averaged weights have seen (scn-x2 stage 9,
a train291 run and a run with rendered stripes).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from scnrestore.training.config import command_line
from scnrestore.training.datasources import sources


def mean_data(datas: list) -> str | list[dict]:
    """The runs' --data, as recorded, if they agree; else every folder once
    (first-seen order, its other fields from its first run) with the mean of
    its shares over the runs."""
    if all(d == datas[0] for d in datas):
        return datas[0]
    merged: dict[str, dict] = {}
    for data in datas:
        for src in sources(data):
            merged.setdefault(str(src["path"]), {**src, "share": 0.0})
            merged[str(src["path"])]["share"] += float(src.get("share", 1.0)) / len(datas)
    return list(merged.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--with-start", action="store_true", help="the runs' --init weights too")
    args = ap.parse_args()
    if len(args.runs) + args.with_start < 2:
        raise SystemExit("give two runs or more, or a run and --with-start")

    docs = [json.loads((r / "run.json").read_text()) for r in args.runs]
    for r, d in zip(args.runs[1:], docs[1:]):
        if d["model"] != docs[0]["model"]:
            raise SystemExit(f"{r}: a different network from {args.runs[0]}")
        if d["config"].get("init") != docs[0]["config"].get("init"):
            raise SystemExit(f"{r}: started from other weights than {args.runs[0]}")

    total: dict[str, torch.Tensor] = {}
    steps = 0
    for r in args.runs:
        sd = load_file(str(r / "model.safetensors"))
        if total and set(sd) != set(total):
            raise SystemExit(f"{r}: other tensors than {args.runs[0]}")
        for k, v in sd.items():
            total[k] = total.get(k, 0) + v.double()
        with safe_open(str(r / "model.safetensors"), "pt") as f:
            meta = dict(f.metadata() or {})
        steps += int(meta.get("steps", 0))
    if args.with_start:
        start = docs[0]["config"].get("init")
        if not start:
            raise SystemExit(f"{args.runs[0]}: started from no --init weights")
        sd = load_file(start)
        if set(sd) != set(total):
            raise SystemExit(f"{start}: other tensors than {args.runs[0]}")
        for k, v in sd.items():
            total[k] = total[k] + v.double()
    n = len(args.runs) + args.with_start
    avg = {k: (v / n).to(torch.float32).contiguous() for k, v in total.items()}

    this = "python scripts/average_runs.py " + shlex.join(sys.argv[1:])
    command = "mean of " + "; ".join(
        f"[{command_line(d['config'].get('command') or [])}]" for d in docs
    )
    command += f"; then {this}"
    meta.update(steps=str(steps), command=command)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(avg, str(args.out / "model.safetensors"), meta)
    doc = json.loads(json.dumps(docs[0]))
    data = mean_data([d["config"]["data"] for d in docs])
    doc["config"].update(out=str(args.out), command=[command], averaged=[str(r) for r in args.runs],
                         data=data)  # fmt: skip
    (args.out / "run.json").write_text(json.dumps(doc, indent=1) + "\n")
    what = f"{len(args.runs)} run(s)" + (" and their start" if args.with_start else "")
    print(f"{args.out / 'model.safetensors'}: mean of {what}, {steps} steps in all")


if __name__ == "__main__":
    main()
