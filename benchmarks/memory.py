"""Peak memory of one large upscale through the real command line.

    python benchmarks/memory.py                          # 6000 x 4000 (24 MP) x2, ~ several minutes
    python benchmarks/memory.py --width 3000 --height 2000
    python benchmarks/memory.py --model runs/upscale_x2/model.safetensors --json mem.json

Writes an RGB PNG of the given size and a checkpoint (by default a randomly
initialised paper-size SCN, safetensors: speed and memory do not depend on the
weights) to a temporary directory, runs ``scnrestore upscale`` on it in a
subprocess (default tile size and precision unless given) and reports the
child's peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss``) against the bound

    peak RSS <= 1.5 x (output size in bytes, uint8) + 1.5 GiB

which a 24 MP x2 upscale (12000 x 8000 x 3 = 288 MB out) puts at ~1.9 GiB.
Exit status 1 when the bound is exceeded or the run failed.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GIB = 1 << 30


def make_input(path: Path, width: int, height: int) -> None:
    """A smooth colour pattern with some texture (compresses well, encodes fast)."""
    import numpy as np
    from PIL import Image

    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    img = np.empty((height, width, 3), np.uint8)
    for c, f in enumerate((7.0, 11.0, 13.0)):
        img[:, :, c] = (127.5 + 127.5 * np.sin(f * x * 6.28 + 3 * y) * np.cos(f * y * 6.28)).astype(
            np.uint8
        )
    Image.fromarray(img).save(path, compress_level=1)


def make_checkpoint(path: Path, scale: int) -> None:
    import torch
    from safetensors.torch import save_file

    from scnrestore.model import SCN, SCNConfig

    torch.manual_seed(0)
    model = SCN(SCNConfig(scale=scale))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--scale", type=int, default=2, choices=(2, 3, 4))
    ap.add_argument("--model", type=Path, help="checkpoint (default: random paper-size SCN)")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--tile", type=int, help="tile side (default: the CLI's automatic size)")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="scnrestore-mem-") as tmp:
        d = Path(tmp)
        src, dst = d / "in.png", d / "out.png"
        make_input(src, args.width, args.height)
        model = args.model
        if model is None:
            model = d / f"scn_x{args.scale}_random.safetensors"
            make_checkpoint(model, args.scale)
        cmd = [sys.executable, "-m", "scnrestore", "upscale", str(src), "-o", str(dst),
               "-s", str(args.scale), "--model", str(model), "--precision", args.precision,
               "-q"] + (["--tile", str(args.tile)] if args.tile is not None else [])  # fmt: skip
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # KiB on Linux
        out_size = None
        if r.returncode == 0:
            from PIL import Image

            Image.MAX_IMAGE_PIXELS = None  # our own output: no bomb warning
            with Image.open(dst) as im:
                out_size = im.size
    if r.returncode != 0:
        print(f"scnrestore failed (exit {r.returncode}):\n{r.stderr}", file=sys.stderr)
        return 1
    out_w, out_h = args.width * args.scale, args.height * args.scale
    assert out_size == (out_w, out_h), out_size
    out_bytes = out_w * out_h * 3
    bound = 1.5 * out_bytes + 1.5 * GIB
    ok = peak <= bound
    res = {
        "input": [args.width, args.height],
        "output": [out_w, out_h],
        "scale": args.scale,
        "model": str(args.model) if args.model else "random paper-size SCN",
        "precision": args.precision,
        "tile": args.tile,
        "output_bytes": out_bytes,
        "peak_rss_bytes": peak,
        "bound_bytes": int(bound),
        "within_bound": ok,
        "seconds": round(seconds, 1),
    }
    mp = args.width * args.height / 1e6
    print(
        f"{args.width}x{args.height} ({mp:.1f} MP) x{args.scale} -> {out_w}x{out_h}: "
        f"output {out_bytes / 1e6:.0f} MB, peak RSS {peak / GIB:.2f} GiB "
        f"({peak / 1e6:.0f} MB), bound {bound / GIB:.2f} GiB: "
        f"{'OK' if ok else 'OVER'}; {seconds:.0f} s wall"
    )
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
