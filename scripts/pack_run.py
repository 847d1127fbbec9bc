"""Pack a training run directory into one small tar, for carrying it between machines.

    python scripts/pack_run.py RUN_DIR DEST.tar

The tar holds last.pt, run.json and log.jsonl (and RUN_DIR.out if present);
DEST ending in .gz is gzipped (about 15 % smaller: 8.6 MB for a paper-size run).
Weights stay fp32; Adam's moment estimates are stored as bf16 (fp32 range,
half the bytes), which torch's optimiser loading casts back to fp32 on
``--resume``. That halves the optimiser state of a paper-size run (15 -> 10 MB).
model.safetensors is left out: ``unpack`` rebuilds it from last.pt.

    python scripts/pack_run.py --unpack DEST.tar RUN_DIR [--data ../shared/data/train]

``--unpack`` also points run.json at RUN_DIR (and at --data), so
``scnrestore train TASK --out RUN_DIR --resume`` continues it here. A run
trained on several folders takes one ``--data`` per folder, in the order
run.json lists them (their shares and fingerprints stay; ``--resume``
checks the folders hold the same images).
"""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from pathlib import Path

import torch


def pack(run: Path, dest: Path) -> None:
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    for per_param in state["optimizer"]["state"].values():
        for k, v in per_param.items():
            if k != "step" and torch.is_tensor(v) and v.is_floating_point():
                per_param[k] = v.to(torch.bfloat16)
    buf = io.BytesIO()
    torch.save(state, buf)
    tmp = dest.with_name(dest.name + ".tmp")
    with tarfile.open(tmp, "w:gz" if dest.suffix == ".gz" else "w") as tar:
        info = tarfile.TarInfo("last.pt")
        info.size = buf.tell()
        buf.seek(0)
        tar.addfile(info, buf)
        for name in ("run.json", "log.jsonl"):
            if (run / name).exists():
                tar.add(run / name, arcname=name)
        out_log = run.with_name(run.name + ".out")
        if out_log.exists():
            tar.add(out_log, arcname="train.out")
    tmp.replace(dest)
    print(f"{dest}: {dest.stat().st_size / 1e6:.1f} MB, step {state['step']}")


def unpack(src: Path, run: Path, data: list[str] | None = None) -> None:
    from safetensors.torch import save_file

    from scnrestore.training.train import weights_metadata

    run.mkdir(parents=True, exist_ok=True)
    with tarfile.open(src) as tar:
        tar.extractall(run, filter="data")
    state = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
    cfg = json.loads((run / "run.json").read_text())
    # --resume reads the run's settings from run.json: point them at where
    # the run now lives (and, if asked, at this machine's copy of the data).
    cfg["config"]["out"] = str(run)
    if data:
        cfg["config"]["data"] = _repoint(cfg["config"]["data"], data)
    (run / "run.json").write_text(json.dumps(cfg, indent=1))
    meta = weights_metadata(
        state["model_config"], cfg["config"]["task"], state["step"], cfg["config"]["command"]
    )
    sd = {k: v.contiguous() for k, v in state["model_state_dict"].items()}
    save_file(sd, str(run / "model.safetensors"), meta)
    print(f"{run}: step {state['step']}")


def _repoint(recorded: str | list[dict], data: list[str]) -> str | list[dict]:
    """The run's data folders moved to ``data`` (one per recorded folder)."""
    if isinstance(recorded, str):  # one folder, recorded as a plain string
        if len(data) != 1:
            raise SystemExit(f"the run has one data folder; --data given {len(data)} times")
        return data[0]
    if len(data) != len(recorded):
        n = len(recorded)
        raise SystemExit(f"the run has {n} data folders; --data given {len(data)} times")
    return [d | {"path": path} for d, path in zip(recorded, data, strict=True)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--unpack", action="store_true")
    ap.add_argument(
        "--data",
        action="append",
        help="with --unpack: the training images' folder here (one per folder of the run)",
    )
    ap.add_argument("src", type=Path)
    ap.add_argument("dest", type=Path)
    a = ap.parse_args()
    unpack(a.src, a.dest, a.data) if a.unpack else pack(a.src, a.dest)


if __name__ == "__main__":
    main()
