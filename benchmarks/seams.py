"""How much tile overlap SCN needs: PSNR of tiled vs whole-image inference.

    python benchmarks/seams.py [--model PATH] [--image IMG] [--scale 2]

Without --model, a randomly initialised paper-size network with the published
initialisation (whose body dominates the output: the hardest case for seams).
Prints one row per (tile, overlap): PSNR in dB of the tiled uint8 output
against whole-image inference of the same model (inf = identical).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch
from PIL import Image

from scnrestore.checkpoint import build_model, load_state_dict
from scnrestore.engine import Engine
from scnrestore.metrics import psnr
from scnrestore.model import SCN, SCNConfig, fold_weight_norm


def published_init_model(scale: int) -> SCN:
    torch.manual_seed(0)
    model = SCN(SCNConfig(scale=scale))
    with torch.no_grad():  # undo our gentler init: tail g = 1, random skip
        model.body[-1].weight_g.fill_(1.0)
        if len(model.skip):
            torch.nn.init.kaiming_uniform_(model.skip[0].weight_v, a=5**0.5)
    return fold_weight_norm(model.eval())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model")
    ap.add_argument("--image", default="examples/coffee.png")
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--size", type=int, default=400, help="crop side of the input")
    ap.add_argument("--tiles", default="128,256")
    ap.add_argument("--overlaps", default="0,8,16,24,32,48")
    args = ap.parse_args()
    model = (
        build_model(load_state_dict(args.model), args.model)
        if args.model
        else published_init_model(args.scale)
    )
    img = np.asarray(Image.open(args.image).convert("RGB"))[: args.size, : args.size]
    whole = Engine(model, "cpu", "fp32", tile=0).run(img)
    rows = []
    for t in map(int, args.tiles.split(",")):
        for o in map(int, args.overlaps.split(",")):
            tiled = Engine(model, "cpu", "fp32", tile=t, overlap=o).run(img)
            rows.append({"tile": t, "overlap": o, "psnr_db": round(psnr(tiled, whole), 2)})
            print(f"tile {t:4d} overlap {o:3d}: {rows[-1]['psnr_db']} dB", flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
