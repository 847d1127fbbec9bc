"""Does torch.compile pay off for SCN inference? Prints eager vs compiled time.

    python benchmarks/compile.py [--threads 1] [--size 192] [--dynamic] [--device cpu]

Same network both ways: the paper-size x2 SCN, weight norm folded,
channels_last (what the engine runs). CPU compiles with inductor's
``freezing`` (weights become constants, so oneDNN can fuse conv + ReLU).
``--dynamic`` compiles once for all input sizes (the engine's tiles differ
by image); without it, each new tile shape is a new compilation. It prints
the compile time (the first call), the steady time of both, the speed-up,
and the largest output difference, so that the decision to keep
torch.compile out of the default path can be checked on any machine.
"""

from __future__ import annotations

import argparse
import time

import torch
from _timing import best_of, where

from scnrestore.model import SCN, SCNConfig, fold_weight_norm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--size", type=int, default=192, help="input side")
    ap.add_argument("--dynamic", action="store_true", help="compile for any input size")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = fold_weight_norm(SCN(SCNConfig(scale=2))).eval().to(dev)
    model = model.to(memory_format=torch.channels_last)
    x = torch.rand(1, 3, args.size, args.size, device=dev)
    x = x.contiguous(memory_format=torch.channels_last)
    import torch._inductor.config as inductor_config

    with torch.inference_mode(), inductor_config.patch(freezing=dev.type == "cpu"):
        ref = model(x)
        eager = best_of(lambda: model(x), 3, dev)
        compiled = torch.compile(model, dynamic=args.dynamic)
        t0 = time.perf_counter()
        out = compiled(x)
        first = time.perf_counter() - t0
        steady = best_of(lambda: compiled(x), 3, dev)
    print(f"{where(dev)}, input {args.size}px, dynamic={args.dynamic}")
    print(f"eager      {eager:8.3f} s")
    print(f"compiled   {steady:8.3f} s  ({eager / steady:.2f}x), first call {first:.1f} s")
    print(f"max |compiled - eager| = {(out - ref).abs().max().item():.2e}")


if __name__ == "__main__":
    main()
