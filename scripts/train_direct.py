"""`scnrestore train` without the CLI layer, for machines whose typer is older.

    python scripts/train_direct.py upscale -s 2 --data DIR --out RUN [options]

Takes the subset of `scnrestore train`'s options that scripts/train_gpu.sh
uses, with the same meaning, and records the run as the equivalent
`scnrestore train ...` command line (the two are interchangeable).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scnrestore.train import TrainConfig, train  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("task")
    ap.add_argument("-s", "--scale", type=int, default=2)
    ap.add_argument("--data", required=True)
    ap.add_argument("--val")
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--blocks", type=int, default=16)
    ap.add_argument("--units", type=int, default=32)
    ap.add_argument("--init")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--time-budget", type=float, default=0.0)
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--val-every", type=int, default=500)
    ap.add_argument("-q", "--quiet", action="store_true")
    a = ap.parse_args()
    cfg = TrainConfig(
        task=a.task, data=a.data, out=a.out, scale=a.scale, val=a.val,
        steps=a.steps or (10**7 if a.time_budget else 10000), batch=a.batch, patch=a.patch,
        lr=a.lr, num_blocks=a.blocks, num_residual_units=a.units, init=a.init,
        device=a.device, precision=a.precision, threads=a.threads,
        time_budget=a.time_budget, ckpt_every=a.ckpt_every, log_every=a.log_every,
        val_every=a.val_every, command=["scnrestore", "train", *sys.argv[1:]],
    )  # fmt: skip
    last = train(cfg, progress=None if a.quiet else print)
    print(f"{'stopped' if last.get('stopped') else 'done'} at step {last['step']}")


if __name__ == "__main__":
    main()
