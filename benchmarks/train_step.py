"""Does torch.compile pay off for training? Eager vs compiled training steps.

    python benchmarks/train_step.py [--threads 1] [--scale 2] [--batch 16] [--patch 48]
                                    [--precision auto] [--rounds 4] [--steps 10]

The step ``scnrestore train`` runs: the paper-size SCN with weight norm, Adam,
L1, autocast at the resolved precision, channels_last input, random patches
(the data pipeline is left out: ``benchmarks/pipeline.py`` measures it). It
prints the first compiled call (the compile time), then the speed of both in
alternating rounds of ``--steps`` steps, so that a busy machine slows both
alike, and the speed-up. ``scnrestore train --compile`` is worth it where the
compile time is small beside the run and the speed-up is real.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _timing import cpu_kind, where

from scnrestore.model import SCN, SCNConfig
from scnrestore.runtime import autocast, resolve_device, resolve_precision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--patch", type=int, default=48, help="input patch side")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--rounds", type=int, default=4, help="timed rounds of each")
    ap.add_argument("--steps", type=int, default=10, help="steps per round")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    torch.manual_seed(0)
    n, p, s = args.batch, args.patch, args.scale
    x = torch.rand(n, 3, p, p, device=device).contiguous(memory_format=torch.channels_last)
    y = torch.rand(n, 3, p * s, p * s, device=device)

    def stepper(compiled: bool):
        torch.manual_seed(0)
        model = SCN(SCNConfig(scale=s)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        forward = torch.compile(model) if compiled else model

        def step() -> None:
            with autocast(device, precision):
                pred = forward(x)
            loss = torch.nn.functional.l1_loss(pred.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)

        return step

    print(f"{where(device)}, {cpu_kind()['model_name']}, {precision}, "
          f"batch {n} x {p} px, x{s}")  # fmt: skip
    steps = {}
    for name, compiled in (("eager", False), ("compiled", True)):
        step = stepper(compiled)
        t0 = time.perf_counter()
        step()
        step()
        print(f"{name}: first two steps {time.perf_counter() - t0:.1f} s", flush=True)
        steps[name] = step
    rates: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(args.rounds):
        for name, step in steps.items():
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step()
            rates[name].append(args.steps / (time.perf_counter() - t0))
    for name, r in rates.items():
        print(f"{name}: {statistics.median(r):.3f} it/s (rounds: "
              + ", ".join(f"{v:.3f}" for v in r) + ")")  # fmt: skip
    gain = statistics.median(rates["compiled"]) / statistics.median(rates["eager"])
    print(f"speed-up {gain:.2f}x")


if __name__ == "__main__":
    main()
