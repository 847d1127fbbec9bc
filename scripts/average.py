"""Average the weights of several checkpoints of one run (stochastic weight averaging).

    python scripts/average.py runs/x3/step_700.pt runs/x3/step_800.pt runs/x3/last.pt \\
        --run runs/x3 --out runs/x3_avg

Checkpoints late in a run (after the learning rate has decayed) sit around the
same minimum; their mean is often a little better than any one of them. The
trainer keeps only ``last.pt``: copy it aside as the run goes (or replay the
run with ``--steps N`` to recreate the one at step N; runs are seeded).

Writes OUT/model.safetensors (fp32 mean of ``model_state_dict``) and
OUT/run.json (the run's record, with ``averaged_steps``), which
``scripts/ship.py OUT`` takes like any run. Every checkpoint must have the same
tensors and shapes; the steps are read from the checkpoints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from safetensors.torch import save_file


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("checkpoints", nargs="+", type=Path, help="trainer checkpoints (last.pt)")
    ap.add_argument("--run", type=Path, required=True, help="the run they come from (run.json)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    total: dict[str, torch.Tensor] = {}
    steps = []
    for path in args.checkpoints:
        ck = torch.load(path, map_location="cpu", weights_only=True)
        sd = ck["model_state_dict"]
        if total and (sd.keys() != total.keys() or any(sd[k].shape != total[k].shape for k in sd)):
            raise SystemExit(f"{path}: not the same network as {args.checkpoints[0]}")
        for k, v in sd.items():
            total[k] = total.get(k, 0) + v.float()
        steps.append(int(ck["step"]))
    if len(set(steps)) != len(steps):
        raise SystemExit(f"the same step twice: {steps}")
    mean = {k: (v / len(args.checkpoints)).contiguous() for k, v in total.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(mean, str(args.out / "model.safetensors"))
    record = json.loads((args.run / "run.json").read_text())
    record["averaged_steps"] = sorted(steps)
    (args.out / "run.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"{args.out / 'model.safetensors'}: mean of steps {sorted(steps)}")


if __name__ == "__main__":
    main()
