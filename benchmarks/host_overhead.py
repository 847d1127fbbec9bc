"""How fast could the tiled engine go if the network were free?

    python benchmarks/host_overhead.py [--device cpu|cuda] [--size 512] [--threads 2]

The engine's own work (tile conversion, blending, rows back to the host)
is the ceiling on its rate when the network is fast, as on a GPU. This
runs a real but tiny SCN (1 block, 4 units: its compute is negligible at
x2, small at x4) through the engine and bare, and prints for x2 and x4:
engine time, bare-network time, their difference (the engine's overhead)
and the input MP/s that overhead alone would allow.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _timing import best_of, where

from scnrestore.engine import Engine
from scnrestore.model import SCN, SCNConfig, fold_weight_norm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=512, help="input side (one tile on the CPU)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = torch.device(args.device)

    img = np.random.default_rng(0).integers(0, 256, (args.size, args.size, 3), dtype=np.uint8)
    mp = args.size * args.size / 1e6
    print(f"{where(dev)}, input {args.size}px, fp32")
    print(f"{'scale':5} {'engine ms':>10} {'bare ms':>9} {'overhead ms':>12} {'cap MP/s':>9}")
    for scale in (2, 4):
        torch.manual_seed(0)
        cfg = SCNConfig(scale=scale, num_blocks=1, num_residual_units=4, width_multiplier=1)
        engine = Engine(fold_weight_norm(SCN(cfg)).eval(), dev, "fp32")
        x = torch.from_numpy(img).permute(2, 0, 1)[None].float().div(255).to(dev)
        if dev.type == "cpu":
            x = x.contiguous(memory_format=torch.channels_last)
        engine.run(img)

        def bare(e: Engine = engine, x: torch.Tensor = x) -> None:
            with torch.inference_mode():
                e.model(x)

        bare()
        t_engine = best_of(lambda e=engine: e.run(img), args.repeat, dev)
        t_bare = best_of(bare, args.repeat, dev)
        over = max(t_engine - t_bare, 1e-9)
        print(
            f"x{scale:<4} {1e3 * t_engine:10.1f} {1e3 * t_bare:9.1f} {1e3 * over:12.1f} "
            f"{mp / over:9.1f}"
        )


if __name__ == "__main__":
    main()
