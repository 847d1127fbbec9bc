"""scripts/guard.py: a candidate against the shipped model, image by image.

Tiny real checkpoints (conftest.make_checkpoint) registered in a temporary
user registry, on tiny generated image folders laid out as ../shared/data.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_checkpoint
from PIL import Image

from scnrestore.training import standard

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str, module: str):  # noqa: ANN202
    """scripts/NAME.py imported as ``module`` (ship.py imports guard.py as guard)."""
    if module in sys.modules:
        return sys.modules[module]
    spec = importlib.util.spec_from_file_location(module, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


guard = _script("guard", "guard")


def _smooth(h: int, w: int, k: int) -> np.ndarray:
    """A gentle colour ramp: the Laplacian of it is nearly 0."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    rgb = np.stack([60 + k * 5 + 2 * x, 80 + y, 100 + x + y], axis=2)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def _busy(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(40, 216, (h, w, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """bench/CSet5 (two ramps, one busy image), val (two ramps)."""
    root = tmp_path_factory.mktemp("guard_data")
    (root / "bench" / "CSet5").mkdir(parents=True)
    (root / "val").mkdir()
    Image.fromarray(_smooth(48, 56, 0)).save(root / "bench" / "CSet5" / "a_ramp.png")
    Image.fromarray(_busy(48, 48, 1)).save(root / "bench" / "CSet5" / "b_busy.png")
    Image.fromarray(_smooth(40, 48, 2)).save(root / "bench" / "CSet5" / "c_ramp.png")
    Image.fromarray(_smooth(40, 40, 3)).save(root / "val" / "v1.png")
    Image.fromarray(_smooth(32, 48, 4)).save(root / "val" / "v2.png")
    return {"root": root / "bench", "val": root / "val"}


def register_tiny(tmp_path: Path, monkeypatch, name: str, entry: str, **cfg) -> Path:  # noqa: ANN001
    """A tiny real checkpoint (conftest.make_checkpoint with ``cfg``) in a
    temporary cache, registered as ``name`` in a temporary user registry with
    the entry lines ``entry`` (task, scale, schedules) besides its file, hash
    and size; returns the checkpoint."""
    cache = tmp_path / "cache"
    cache.mkdir()
    path = make_checkpoint(cache / f"{name}.safetensors", **cfg)
    raw = path.read_bytes()
    reg = tmp_path / "reg.toml"
    reg.write_text(
        f'[models.{name}]\n{entry}file = "{name}.safetensors"\n'
        f'sha256 = "{hashlib.sha256(raw).hexdigest()}"\nsize = {len(raw)}\n'
        "num_blocks = 2\nnum_residual_units = 8\nwidth_multiplier = 2.0\nnum_scales = 3\n"
    )
    monkeypatch.setenv("SCNRESTORE_REGISTRY", str(reg))
    monkeypatch.setenv("SCNRESTORE_CACHE_DIR", str(cache))
    return path


@pytest.fixture()
def shipped(tmp_path, monkeypatch) -> Path:
    """A user registry whose "tiny-x2" is a tiny real x2 checkpoint (in the cache)."""
    return register_tiny(tmp_path, monkeypatch, "tiny-x2", 'task = "upscale"\nscale = 2\n', scale=2)


def worse_on_texture(src: Path, dst: Path, alpha: float = 0.5) -> Path:
    """The same network plus alpha x a Laplacian in its 5x5 skip conv: a
    zero-sum kernel, so ramps come out (nearly) as before and busy images
    are sharpened into noise."""
    import torch
    from safetensors.torch import load_file, save_file

    sd = load_file(str(src))
    v = sd["skip.0.weight_v"].clone()
    lap = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
    for o in range(v.shape[0]):
        v[o, o // 4, 1:4, 1:4] += alpha * lap  # output o reads colour o // scale²
    sd["skip.0.weight_v"] = v
    # weight = g v / |v|: g = |v| keeps the new kernel as it is
    sd["skip.0.weight_g"] = v.flatten(1).norm(dim=1).reshape(sd["skip.0.weight_g"].shape)
    save_file(sd, str(dst))
    return dst


def _args(data: dict[str, Path], cache: Path, *extra: str) -> list[str]:
    return ["--name", "tiny-x2", "--root", str(data["root"]), "--val", str(data["val"]),
            "--sets", "Set5,val", "--cache-dir", str(cache), "-q", *extra]  # fmt: skip


def test_plan_is_the_bar():
    levels = guard.plan("denoise", 1, False)
    labels = [(lv.set, lv.label) for lv in levels if not lv.light]
    assert labels == [(s, f"σ{v}") for s in ("CBSD68", "val") for v in (15, 25, 50)]
    # and the light levels, on val only
    assert [(lv.set, lv.label) for lv in levels if lv.light] == [
        ("val", "σ1"),
        ("val", "σ2"),
        ("val", "σ5"),
    ]
    assert [lv.label for lv in guard.plan("dejpeg", 1, False, ["CBSD68"])] == [
        "q10",
        "q20",
        "q30",
        "q40",
    ]
    assert [lv.label for lv in guard.plan("dejpeg", 1, False, ["val"]) if lv.light] == [
        "q90",
        "q95",
    ]
    assert [lv.label for lv in guard.plan("upscale", 4, True)] == ["x4 q70", "x4 q80", "x4 q90"]
    assert [lv.set for lv in guard.plan("upscale", 3, False)] == ["Set5", "Set14", "B100", "val"]
    assert [lv.label for lv in guard.plan("dejpeg", 1, False, ["val"], ["q20", "40"])] == [
        "q20",
        "q40",
    ]
    with pytest.raises(ValueError, match="not scored"):
        guard.plan("denoise", 1, False, ["Set5"])
    with pytest.raises(ValueError, match="none of"):
        guard.plan("upscale", 2, False, None, ["x3"])


def test_candidate_equal_to_shipped_passes_with_zero_deltas(data, shipped, tmp_path, capsys):
    cand = shutil.copy(shipped, tmp_path / "cand.safetensors")
    record = tmp_path / "rec" / "stage9_guard"
    rc = guard.main([str(cand), *_args(data, tmp_path / "gc"), "--record", str(record)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.strip().splitlines()[-1].startswith("guard: pass")
    doc = json.loads(record.with_suffix(".json").read_text())
    assert doc["verdict"] == "pass" and doc["offenders"] == [] and doc["precision"] == "fp32"
    assert set(doc["sets"]) == {"Set5", "val"} and list(doc["sets"]["Set5"]["levels"]) == ["x2"]
    images = doc["sets"]["Set5"]["levels"]["x2"]["images"]
    assert sorted(images) == ["a_ramp.png", "b_busy.png", "c_ramp.png"]
    for s in doc["sets"].values():
        assert s["mean"]["delta"] == 0
        for lvl in s["levels"].values():
            assert all(t["delta"] == 0 and t["shipped"] == t["candidate"]
                       for t in lvl["images"].values())  # fmt: skip
    md = (tmp_path / "rec" / "stage9_guard.md").read_text()
    assert "**pass**" in md and "| Set5 | x2 | b_busy.png |" in md and "| **val** | all |" in md


def test_figures_are_the_standard_tables(data, shipped, tmp_path):
    """The guard's per-image figures are benchmarks/standard.py's (same protocol)."""
    opts = guard.Options(sets=["Set5"], root=data["root"], val=data["val"], cache_dir=None)
    doc = guard.run_guard(shipped, "tiny-x2", opts)
    std = standard.run(data["root"], standard.cases(["Set5"], ["x2"]), {"x2": "tiny-x2"},
                       precision="fp32", device="cpu")  # fmt: skip
    ours = {r["image"]: r["ours"] for r in std["results"][0]["images"]}
    images = doc["sets"]["Set5"]["levels"]["x2"]["images"]
    for who in ("shipped", "candidate"):
        assert {n: t[who] for n, t in images.items()} == pytest.approx(ours, abs=1e-4)


def test_one_image_made_worse_fails_and_is_named(data, shipped, tmp_path, capsys):
    cand = worse_on_texture(shipped, tmp_path / "worse.safetensors")
    record = tmp_path / "worse_guard.md"  # a suffix given is dropped
    rc = guard.main([str(cand), *_args(data, tmp_path / "gc"), "--record", str(record)])
    out = capsys.readouterr().out
    assert rc == 1
    doc = json.loads((tmp_path / "worse_guard.json").read_text())
    assert doc["verdict"] == "fail"
    images = doc["sets"]["Set5"]["levels"]["x2"]["images"]
    assert images["b_busy.png"]["delta"] < -0.2
    assert all(abs(images[n]["delta"]) < 0.2 for n in ("a_ramp.png", "c_ramp.png"))
    named = [ln for ln in out.splitlines() if ".png:" in ln]
    delta = images["b_busy.png"]["delta"]
    assert named == [f"Set5 x2 b_busy.png: {delta:+.2f} dB"]
    hint = f"where on it: python scripts/loss_map.py {cand} --name tiny-x2 --set Set5 "
    assert hint + "--image b_busy.png --level x2" in out.splitlines()
    assert any(ln.startswith("Set5 mean: -") for ln in out.splitlines())
    assert "val mean" not in out  # the ramps of val are not hurt
    md = (tmp_path / "worse_guard.md").read_text()
    assert "**fail**" in md and f"- Set5 x2 b_busy.png: {delta:+.2f} dB" in md
    # a looser bound lets the image through, the falling mean still fails
    rc = guard.main([str(cand), *_args(data, tmp_path / "gc"), "--max-loss", "50"])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 1 and not [ln for ln in lines if ".png:" in ln or "where on it" in ln]


def test_denoise_candidate_gets_the_entrys_keep_input(tmp_path, monkeypatch, data, capsys):
    """σ levels on val; the candidate blends back the entry's keep_input share
    (as ship.py --stage ships it), and --no-schedule measures it without."""
    entry = 'task = "denoise"\nnum_cond_channels = 1\nkeep_input = [[10, 0.3], [60, 0.3]]\n'
    path = register_tiny(tmp_path, monkeypatch, "tiny-dn", entry, scale=1, num_cond_channels=1)
    cand = shutil.copy(path, tmp_path / "cand.safetensors")
    common = [str(cand), "--name", "tiny-dn", "--val", str(data["val"]), "--sets", "val",
              "--levels", "σ25,50", "--no-cache", "-q"]  # fmt: skip
    assert guard.main([*common, "--record", str(tmp_path / "dn")]) == 0
    doc = json.loads((tmp_path / "dn.json").read_text())
    levels = doc["sets"]["val"]["levels"]
    assert list(levels) == ["σ25", "σ50"] and levels["σ25"]["metric"] == "psnr"
    assert levels["σ25"]["candidate_path"] == {"told": 25.0, "kept": 0.3}
    assert levels["σ25"]["shipped_path"] == {"told": 25.0, "kept": 0.3}
    assert all(t["delta"] == 0 for t in levels["σ50"]["images"].values())
    capsys.readouterr()
    guard.main([*common, "--no-schedule", "--record", str(tmp_path / "dn0")])
    doc = json.loads((tmp_path / "dn0.json").read_text())
    assert doc["sets"]["val"]["levels"]["σ25"]["candidate_path"]["kept"] == 0.0
    assert doc["sets"]["val"]["mean"]["delta"] != 0


def test_light_levels_bound_each_image_but_stay_out_of_the_mean(
    tmp_path, monkeypatch, data, capsys
):
    """Nearly clean photos (σ 1 / 2 / 5 on val): the shipped model blends back
    the entry's keep_input there, the candidate (--no-schedule) does not, so
    only the light levels differ. They do not move the set's mean, and an
    image past the bound there still fails the guard."""
    entry = 'task = "denoise"\nnum_cond_channels = 1\nkeep_input = [[1, 0.6], [5, 0.6], [6, 0.0]]\n'
    path = register_tiny(tmp_path, monkeypatch, "tiny-dnl", entry, scale=1, num_cond_channels=1)
    cand = shutil.copy(path, tmp_path / "cand.safetensors")
    common = [str(cand), "--name", "tiny-dnl", "--val", str(data["val"]), "--sets", "val",
              "--levels", "1,2,5,25", "--no-cache", "--no-schedule", "-q"]  # fmt: skip
    rc = guard.main([*common, "--max-loss", "1000", "--record", str(tmp_path / "light")])
    assert rc == 0, capsys.readouterr().out
    doc = json.loads((tmp_path / "light.json").read_text())
    levels = doc["sets"]["val"]["levels"]
    assert list(levels) == ["σ25", "σ1", "σ2", "σ5"]
    assert [lv.get("light", False) for lv in levels.values()] == [False, True, True, True]
    assert (
        levels["σ2"]["shipped_path"]["kept"] == 0.6
        and levels["σ2"]["candidate_path"]["kept"] == 0.0
    )
    assert all(t["delta"] == 0 for t in levels["σ25"]["images"].values())
    lost = min(t["delta"] for t in levels["σ1"]["images"].values())
    assert lost < 0  # the tiny network alone is worse than 60 % of a σ-1 input
    assert doc["sets"]["val"]["mean"]["delta"] == 0  # the light levels stay out of it
    md = (tmp_path / "light.md").read_text()
    assert "| val | σ1 (light) |" in md and "light levels: no image" in md
    capsys.readouterr()
    rc = guard.main([*common, "--max-loss", str(-lost / 2)])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 1
    assert any(ln.startswith("val σ1 ") and ln.endswith(" dB") for ln in lines)
    assert not any(ln.startswith("val mean") for ln in lines)


def test_shipped_scores_come_from_the_cache(data, shipped, tmp_path):
    cache = tmp_path / "gc"
    opts = guard.Options(sets=["Set5", "val"], root=data["root"], val=data["val"],
                         cache_dir=cache)  # fmt: skip
    cand = worse_on_texture(shipped, tmp_path / "worse.safetensors")
    first = guard.run_guard(cand, "tiny-x2", opts)
    assert first["shipped_from_cache"] == [] and first["candidate_from_cache"] == []
    (file,) = cache.glob("*.json")
    sha = hashlib.sha256(shipped.read_bytes()).hexdigest()
    assert file.name == f"{sha[:16]}.json"
    doc = json.loads(file.read_text())
    assert doc["sha256"] == sha and sorted(doc["entries"]) == ["Set5|x2|fp32", "val|x2|fp32"]
    # the second guard reads the shipped figures: a planted value shows through
    doc["entries"]["Set5|x2|fp32"]["scores"]["a_ramp.png"] = 99.0
    file.write_text(json.dumps(doc))
    second = guard.run_guard(cand, "tiny-x2", opts)
    assert second["shipped_from_cache"] == ["Set5 x2", "val x2"]
    assert second["candidate_from_cache"] == ["Set5 x2", "val x2"]  # its own file
    a = second["sets"]["Set5"]["levels"]["x2"]["images"]["a_ramp.png"]
    assert a["shipped"] == 99.0 and a["delta"] < -50
    assert second["offenders"][0].startswith("Set5 x2 a_ramp.png: ")
    # other precisions and other images are scored again
    bf16 = guard.run_guard(cand, "tiny-x2", guard.Options(**{**vars(opts), "precision": "bf16"}))
    assert bf16["shipped_from_cache"] == []
    doc = json.loads(file.read_text())
    doc["entries"]["val|x2|fp32"]["images_digest"] = "stale"
    file.write_text(json.dumps(doc))
    third = guard.run_guard(cand, "tiny-x2", opts)
    assert third["shipped_from_cache"] == ["Set5 x2"]


def test_the_shipped_file_against_itself_is_scored_once_and_fills_the_cache(
    data, shipped, tmp_path, monkeypatch
):
    """Guarding the shipped weights against themselves (to fill the cache on a
    free core while a candidate trains) scores each level once, not twice."""
    calls: list[str] = []
    real = guard.score

    def counted(restorer, images, lv, on_image=None, who=""):  # noqa: ANN001, ANN202
        calls.append(f"{who} {lv.set}")
        return real(restorer, images, lv, on_image, who)

    monkeypatch.setattr(guard, "score", counted)
    cache = tmp_path / "gc"
    opts = guard.Options(sets=["Set5", "val"], root=data["root"], val=data["val"],
                         cache_dir=cache)  # fmt: skip
    doc = guard.run_guard(shipped, "tiny-x2", opts)
    assert calls == ["shipped Set5", "shipped val"]
    assert doc["verdict"] == "pass" and doc["sets"]["Set5"]["mean"]["delta"] == 0
    assert not list((cache / guard.CANDIDATES).glob("*.json"))
    # a candidate guarded next scores itself only
    calls.clear()
    guard.run_guard(worse_on_texture(shipped, tmp_path / "w.safetensors"), "tiny-x2", opts)
    assert calls == ["candidate Set5", "candidate val"]


def test_a_stopped_guard_resumes_at_the_level_it_had_not_finished(data, shipped, tmp_path):
    """The candidate's scores are cached apart from the shipped model's: a
    level whose entry is there is not scored again, one that is missing is."""
    cache = tmp_path / "gc"
    opts = guard.Options(sets=["Set5", "val"], root=data["root"], val=data["val"],
                         cache_dir=cache)  # fmt: skip
    cand = worse_on_texture(shipped, tmp_path / "worse.safetensors")
    first = guard.run_guard(cand, "tiny-x2", opts)
    (file,) = (cache / guard.CANDIDATES).glob("*.json")
    assert file.name == hashlib.sha256(cand.read_bytes()).hexdigest()[:16] + ".json"
    doc = json.loads(file.read_text())
    del doc["entries"]["val|x2|fp32"]  # as if stopped while scoring val
    file.write_text(json.dumps(doc))
    again = guard.run_guard(cand, "tiny-x2", opts)
    assert again["candidate_from_cache"] == ["Set5 x2"]
    assert again["sets"] == first["sets"] and again["verdict"] == first["verdict"] == "fail"
    assert (
        guard.run_guard(cand, "tiny-x2", guard.Options(**{**vars(opts), "cache_dir": None}))[
            "candidate_from_cache"
        ]
        == []
    )


def test_without_the_sets_one_line_says_where_to_get_them(shipped, tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "guard.py"), str(shipped), "--name", "tiny-x2",
         "--root", str(tmp_path / "nobench"), "--val", str(tmp_path / "noval")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stdout == ""
    (line,) = r.stderr.strip().splitlines()
    assert "majedelhelou/denoising_datasets" in line and "dcscn-super-resolution" in line
    assert "CSet5, CSet14, B100" in line and "scikit-image" in line and "noval" in line


def test_ship_refuses_a_failing_candidate_unless_forced(data, shipped, tmp_path):
    """ship.py --guard: the guard's verdict before anything is written."""
    import argparse

    ship = _script("ship", "_ship_script")
    cand = worse_on_texture(shipped, tmp_path / "worse.safetensors")
    args = argparse.Namespace(
        run=tmp_path, name="tiny-x2", val=data["val"], guard=True, force="",
        guard_record=tmp_path / "g", guard_sets="Set5", guard_root=data["root"],
        guard_cache=tmp_path / "gc",
    )  # fmt: skip
    with pytest.raises(SystemExit, match="b_busy.png"):
        ship.ship_guard(args, cand, None)
    assert json.loads((tmp_path / "g.json").read_text())["verdict"] == "fail"
    args.force = "the busy image is synthetic noise"
    assert "the busy image is synthetic noise" in ship.ship_guard(args, cand, None)
    doc = json.loads((tmp_path / "g.json").read_text())
    assert doc["forced"] == "the busy image is synthetic noise"
    assert "shipped anyway with --force" in (tmp_path / "g.md").read_text()
    args.force = ""
    assert ship.ship_guard(args, shipped, None) == ""  # the same weights pass


def test_ship_data_line_names_a_repeated_mix_once():
    """A stage trained on the same folders as the last one adds no second copy
    of them to the entry's data line; new folders are appended."""
    ship = _script("ship", "_ship_script")
    mix = {"data": [{"path": "../shared/data/train291", "share": 0.7},
                    {"path": "../shared/data/train", "share": 0.3}]}  # fmt: skip
    first = ship.data_text({"data": "../shared/data/train"}, None)
    second = ship.data_text(mix, {"data": first})
    assert second.startswith(first + "; then ") and "291" in second
    assert ship.data_text(mix, {"data": second}) == second
    assert ship.data_text({"data": "../shared/data/train"}, {"data": second}).count("; then ") == 2


def test_no_image_may_fall_past_the_bound_below_the_baseline_either(data, shipped, tmp_path):
    """Stage by stage each loss may stay inside the bound and still add up:
    the baseline (the weights shipped before the natural-photo fine-tunes,
    named in the cache folder's baselines.json) bounds the sum."""
    cache = tmp_path / "gc"
    opts = guard.Options(sets=["Set5", "val"], root=data["root"], val=data["val"],
                         cache_dir=cache)  # fmt: skip
    first = guard.run_guard(shipped, "tiny-x2", opts)
    assert first["baseline"] is None and first["verdict"] == "pass"
    # a baseline 0.15 dB above today's shipped model on one image, cached at bf16 only
    scores = {n: t["shipped"] for n, t in first["sets"]["Set5"]["levels"]["x2"]["images"].items()}
    scores["a_ramp.png"] += 0.15
    sha = "ab" * 32
    (shipped_cache,) = cache.glob("*.json")
    digest = json.loads(shipped_cache.read_text())["entries"]["Set5|x2|fp32"]["images_digest"]
    (cache / f"{sha[:16]}.json").write_text(json.dumps({"sha256": sha, "entries": {
        "Set5|x2|bf16": {"images_digest": digest, "path": {}, "scores": scores}}}))  # fmt: skip
    (cache / guard.BASELINES).write_text(json.dumps({"tiny-x2": {"sha256": sha}}))
    cand = shutil.copy(shipped, tmp_path / "same.safetensors")  # loses nothing to today's
    loose = guard.Options(**{**vars(opts), "max_loss": 1e9, "min_gain": -1e9})
    doc = guard.run_guard(cand, "tiny-x2", loose)
    assert doc["verdict"] == "pass"  # no bound: the baseline is only reported
    base = doc["sets"]["Set5"]["levels"]["x2"]["baseline"]
    assert base["precision"] == "bf16" and "baseline" not in doc["sets"]["val"]["levels"]["x2"]
    assert doc["sets"]["Set5"]["levels"]["x2"]["images"]["a_ramp.png"]["delta"] == 0
    assert base["images"]["a_ramp.png"] == pytest.approx(-0.15, abs=1e-3)
    # under a bound of 0.1 dB, only the baseline's line offends
    doc = guard.run_guard(cand, "tiny-x2", guard.Options(**{**vars(loose), "max_loss": 0.1}))
    assert doc["verdict"] == "fail"
    assert doc["offenders"] == [f"Set5 x2 a_ramp.png: -0.15 dB against the baseline {sha[:12]}"]
    md = guard.markdown({**doc, "command": "c", "commit": "x", "date": "d"})
    assert "- val x2: no baseline scores cached" in md and "- Set5 x2: worst a_ramp.png" in md
    # scores the baseline had on other pixels are not compared
    (cache / f"{sha[:16]}.json").write_text(
        (cache / f"{sha[:16]}.json").read_text().replace(digest, "other pixels")
    )
    doc = guard.run_guard(cand, "tiny-x2", guard.Options(**{**vars(loose), "max_loss": 0.1}))
    assert doc["verdict"] == "pass" and "baseline" not in doc["sets"]["Set5"]["levels"]["x2"]
