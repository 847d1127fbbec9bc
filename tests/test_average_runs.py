"""scripts/average_runs.py: the mean of runs' weights, and what it records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_checkpoint
from test_guard import _script

ROOT = Path(__file__).resolve().parents[1]
average_runs = _script("average_runs", "average_runs")


def _run(folder: Path, seed: int, steps: int, data) -> Path:  # noqa: ANN001
    from safetensors.torch import load_file, save_file

    folder.mkdir(parents=True)
    make_checkpoint(folder / "tmp.safetensors", seed=seed, scale=2)
    sd = load_file(str(folder / "tmp.safetensors"))
    save_file(sd, str(folder / "model.safetensors"), {"steps": str(steps)})
    (folder / "tmp.safetensors").unlink()
    doc = {"model": {"scale": 2}, "config": {"init": "start.safetensors", "data": data,
           "command": ["scnrestore", "train", "--seed", str(seed)]}}  # fmt: skip
    (folder / "run.json").write_text(json.dumps(doc))
    return folder


def test_the_mean_of_two_runs_on_other_data_mixes(tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file

    natural = [{"path": "../shared/data/train291", "share": 0.7, "images": 291},
               {"path": "../shared/data/train", "share": 0.3, "images": 38}]  # fmt: skip
    stripes = [{"path": "../shared/data/train291", "share": 0.6, "images": 291},
               {"path": "../shared/data/train", "share": 0.25, "images": 38},
               {"path": "runs/data/stripes", "share": 0.15, "images": 96}]  # fmt: skip
    a = _run(tmp_path / "a", 0, 100, natural)
    b = _run(tmp_path / "b", 1, 50, stripes)
    out = tmp_path / "ab"
    script = str(ROOT / "scripts" / "average_runs.py")
    cmd = [sys.executable, script, str(a), str(b), "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert "mean of 2 run(s), 150 steps in all" in r.stdout
    wa, wb, w = (load_file(str(p / "model.safetensors")) for p in (a, b, out))
    for k in w:
        assert (w[k] - (wa[k] + wb[k]) / 2).abs().max().item() < 1e-6
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert f.metadata()["steps"] == "150"
    cfg = json.loads((out / "run.json").read_text())["config"]
    assert cfg["averaged"] == [str(a), str(b)]
    shares = {d["path"]: d["share"] for d in cfg["data"]}
    assert shares == pytest.approx({"../shared/data/train291": 0.65, "../shared/data/train": 0.275,
                                    "runs/data/stripes": 0.075})  # fmt: skip
    assert cfg["data"][2]["images"] == 96
    assert "--seed 0" in cfg["command"][0] and "--seed 1" in cfg["command"][0]


def test_runs_on_the_same_data_keep_it_as_recorded():
    assert average_runs.mean_data(["x", "x"]) == "x"
    same = [{"path": "x", "share": 0.5}, {"path": "y", "share": 0.5}]
    assert average_runs.mean_data([same, same]) == same
    mixed = average_runs.mean_data(["x", [{"path": "y", "share": 1.0}]])
    assert mixed == [{"path": "x", "share": 0.5}, {"path": "y", "share": 0.5}]
