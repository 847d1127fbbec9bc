"""scripts/loss_map.py: where on one image a candidate loses, on the guard's figures.

A tiny real x2 checkpoint registered in a temporary user registry
(test_guard.register_tiny), and a copy made worse on texture only
(test_guard.worse_on_texture), on a generated photo that is a smooth ramp
except for one busy quadrant.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_guard import _script, register_tiny, worse_on_texture

guard = _script("guard", "guard")
loss_map = _script("loss_map", "loss_map")


@pytest.fixture()
def setup(tmp_path, monkeypatch) -> dict[str, Path]:
    path = register_tiny(tmp_path, monkeypatch, "tiny-x2", 'task = "upscale"\nscale = 2\n', scale=2)
    val = tmp_path / "val"
    val.mkdir()
    y, x = np.mgrid[0:64, 0:64].astype(np.float64)
    img = np.stack([60 + 2 * x, 80 + y, 100 + x + y], axis=2)
    img[32:, 32:] = np.random.default_rng(3).integers(40, 216, (32, 32, 3))
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(val / "quad.png")
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(val / "grey.png")
    cand = worse_on_texture(path, tmp_path / "worse.safetensors")
    return {"shipped": path, "cand": cand, "val": val, "tmp": tmp_path}


def test_the_loss_is_found_in_the_busy_quadrant_on_the_guards_figures(setup, capsys):
    prefix = setup["tmp"] / "maps" / "quad"
    common = ["--name", "tiny-x2", "--set", "val", "--val", str(setup["val"])]
    rc = loss_map.main([str(setup["cand"]), *common, "--image", "quad.png", "--block", "16",
                        "--out", str(prefix), "--zoom", "2"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0, out
    doc = json.loads(prefix.with_suffix(".json").read_text())
    # the same figures as the guard's for this image
    opts = guard.Options(sets=["val"], val=setup["val"], cache_dir=None)
    images = guard.run_guard(setup["cand"], "tiny-x2", opts)["sets"]["val"]["levels"]["x2"]
    t = images["images"]["quad.png"]
    assert doc["reference"] == pytest.approx(t["shipped"], abs=1e-3)
    assert doc["candidate"] == pytest.approx(t["candidate"], abs=1e-3)
    assert doc["delta"] < -0.05 and f"({doc['delta']:+.3f} dB)" in out
    # where: the worst tile lies in the busy quadrant, the ramp's corner tile holds nothing
    worst = doc["worst"][0]
    assert worst["y"] >= 16 and worst["x"] >= 16 and worst["delta_db"] < 0
    corner = [b for b in doc["worst"] if (b["y"], b["x"]) == (0, 0)]
    assert not corner or abs(corner[0]["share"]) < 0.01
    # what: the shares add up to the whole, and the busiest tenth holds the most
    shares = [r["share"] for r in doc["by_detail"]]
    assert sum(shares) == pytest.approx(1.0, abs=1e-6)
    assert shares[-1] == max(shares) and abs(shares[0]) < 0.05
    assert doc["tiles"] == 9 and 1 <= doc["half_in"] <= doc["ninety_in"] <= 9
    # the panel: four crops of the worst tile and its context, side by side
    box = doc["panel_box"]
    h, w = (box["y1"] - box["y0"]) * 2, (box["x1"] - box["x0"]) * 2
    with Image.open(prefix.with_suffix(".png")) as im:
        assert im.size == (4 * w + 12, h)


def test_against_any_checkpoint_and_one_line_errors(setup, capsys):
    common = ["--name", "tiny-x2", "--set", "val", "--val", str(setup["val"])]
    # against itself: nothing lost anywhere
    rc = loss_map.main([str(setup["cand"]), *common, "--image", "quad.png",
                        "--against", str(setup["cand"])])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0 and "(+0.000 dB)" in out
    for extra, says in (
        (["--image", "nope.png"], "nope.png: not in val"),
        (["--image", "quad.png", "--against", str(setup["tmp"] / "x.pt")], "x.pt: no such"),
        (["--image", "quad.png", "--level", "x3"], "none of"),
    ):
        assert loss_map.main([str(setup["cand"]), *common, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0] and err[0].startswith("error: ")
    assert "loss_map" in sys.modules


def test_the_baseline_is_read_back_from_git_history(tmp_path):
    import subprocess

    repo = tmp_path / "repo"
    models = repo / "scnrestore" / "models"
    models.mkdir(parents=True)

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@example.invalid")
    git("config", "user.name", "t")
    first, second = b"weights before the fine-tunes", b"weights after"
    for blob in (first, second):
        (models / "tiny-x2.safetensors").write_bytes(blob)
        git("add", ".")
        git("commit", "-q", "-m", "ship")
    cache = tmp_path / "gc"
    cache.mkdir()
    (cache / "baselines.json").write_text(
        json.dumps({"tiny-x2": {"sha256": hashlib.sha256(first).hexdigest()}})
    )
    got = loss_map.baseline_file("tiny-x2", cache, tmp_path, repo)
    assert got.read_bytes() == first
    with pytest.raises(FileNotFoundError, match="no baseline for tiny-x3"):
        loss_map.baseline_file("tiny-x3", cache, tmp_path, repo)
    (cache / "baselines.json").write_text(json.dumps({"tiny-x2": {"sha256": "0" * 64}}))
    with pytest.raises(FileNotFoundError, match="no commit in this repository"):
        loss_map.baseline_file("tiny-x2", cache, tmp_path, repo)
