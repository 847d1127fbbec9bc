"""The standard-benchmark protocol (scnrestore/training/standard.py, benchmarks/standard.py)
on small generated images: no ../shared needed."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scnrestore.metrics import psnr, rgb_to_y
from scnrestore.training import standard
from scnrestore.training.standard import Case

ROOT = Path(__file__).resolve().parents[1]


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colour image with some texture (not constant: PSNR stays finite)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 7 + y * 3, 128 + 60 * np.sin(x / 3.0), y * 9 + 20], axis=2)
    return np.clip(base + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)


def test_crop_to_multiple_of_scale_and_lr_size():
    clean = _image(29, 34)
    for s in (2, 3, 4):
        hr, lr, base = standard.degrade_case(Case("Set5", "upscale", s), clean, 0)
        assert hr.shape[:2] == (29 - 29 % s, 34 - 34 % s)
        np.testing.assert_array_equal(hr, clean[: hr.shape[0], : hr.shape[1]])  # bottom / right
        assert lr.shape[:2] == (hr.shape[0] // s, hr.shape[1] // s)
        assert base.shape == hr.shape
        # LR is Pillow's antialiased BICUBIC of the cropped HR
        want = Image.fromarray(hr).resize(lr.shape[1::-1], Image.Resampling.BICUBIC)
        np.testing.assert_array_equal(lr, np.asarray(want))


def test_bt601_luma_values():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    np.testing.assert_allclose(
        rgb_to_y(px)[0], [16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966], atol=1e-9
    )
    # a gray file read as RGB: its PSNR-Y exceeds the PSNR on its gray values by a constant
    g, h = _image(16, 16, 1)[:, :, 0], _image(16, 16, 2)[:, :, 0]
    rgb = [np.repeat(a[:, :, None], 3, axis=2) for a in (g, h)]
    diff = standard.score(Case("S", "upscale", 2), *rgb) - psnr(g, h, 2)
    assert diff == pytest.approx(standard.GRAY_AS_IS_DB, abs=1e-6)
    assert standard.GRAY_AS_IS_DB == pytest.approx(1.3219, abs=1e-4)


def test_sr_score_is_luma_psnr_with_shave_equal_to_scale():
    clean = _image(24, 24)
    case = Case("Set5", "upscale", 4)
    out = clean.copy()
    out[:4] = 255 - out[:4]  # errors only inside the 4-pixel border: shaved away
    out[:, -4:] = 0
    assert standard.score(case, out, clean) == math.inf
    assert standard.score(Case("CBSD68", "denoise", 1, 25.0), out, clean) < 20  # RGB, no shave
    # inside: PSNR on Y of the shaved image, against a direct computation
    out = clean.astype(np.int16)
    out[10, 10] += 20
    out = np.clip(out, 0, 255).astype(np.uint8)
    dy = rgb_to_y(out)[4:-4, 4:-4] - rgb_to_y(clean)[4:-4, 4:-4]
    want = 10 * np.log10(255.0**2 / np.mean(dy**2))
    assert standard.score(case, out, clean) == pytest.approx(want, abs=1e-9)
    # a chroma-only change moves PSNR-Y less than PSNR-RGB
    out2 = clean.astype(np.int16)
    out2[8:16, 8:16, 0] += 6
    out2[8:16, 8:16, 1] -= 3
    out2 = np.clip(out2, 0, 255).astype(np.uint8)
    assert standard.score(case, out2, clean) > psnr(out2, clean, 4)


def test_noise_is_seeded_per_image_and_reproducible():
    clean = _image(20, 20)
    c25 = Case("CBSD68", "denoise", 1, 25.0)
    _, a, base = standard.degrade_case(c25, clean, 3)
    _, b, _ = standard.degrade_case(c25, clean, 3)
    _, other, _ = standard.degrade_case(c25, clean, 4)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, base)  # the input is the baseline
    assert not np.array_equal(a, other)
    assert a.dtype == np.uint8
    # the same draws at each sigma, scaled, then rounded and clipped to 8 bits
    _, a15, _ = standard.degrade_case(Case("CBSD68", "denoise", 1, 15.0), clean, 3)
    want = np.random.default_rng(3).normal(0.0, 25.0, clean.shape).astype(np.float32)
    np.testing.assert_array_equal(a, np.clip(np.rint(clean + want), 0, 255).astype(np.uint8))
    inside = (a > 0) & (a < 255) & (a15 > 0) & (a15 < 255)
    d25 = a.astype(float) - clean
    d15 = a15.astype(float) - clean
    assert np.abs(d25[inside] - d15[inside] * 25 / 15).max() <= 1.5
    # measured noise level
    assert np.std(d25[inside]) == pytest.approx(25, rel=0.2)


def test_jpeg_input_is_pillow_420_and_gain_is_over_it():
    clean = _image(32, 40)
    case = Case("CBSD68", "dejpeg", 1, 20.0)
    _, inp, base = standard.degrade_case(case, clean, 0)
    buf = io.BytesIO()
    Image.fromarray(clean).save(buf, format="JPEG", quality=20, subsampling=2)  # 4:2:0
    with Image.open(buf) as im:
        np.testing.assert_array_equal(inp, np.asarray(im.convert("RGB")))
    np.testing.assert_array_equal(inp, base)
    assert standard.input_scores(case, [("a", clean)]) == [pytest.approx(psnr(inp, clean))]


def test_cases_and_published_figures():
    cs = standard.cases()
    keys = {(c.set, c.key) for c in cs}
    assert len(cs) == 3 + 3 + 3 + 3 + 4  # x2-x4 on Set5, Set14, B100; σ and q on CBSD68
    for set_name, figs in standard.PUBLISHED.items():
        for key in figs:
            assert (set_name, key) in keys
    for set_name, figs in standard.BAR.items():
        assert set(figs) <= {k for s, k in keys if s == set_name}
    assert standard.PUBLISHED["Set5"]["x2"]["bicubic"] == 33.66
    assert standard.PUBLISHED["B100"]["x4"]["VDSR"] == 27.29
    assert standard.PUBLISHED["CBSD68"]["sigma25"]["CDnCNN"] == 31.24
    assert [c.model_key for c in standard.cases(["Set5"], ["x3"])] == ["x3"]
    assert standard.cases(["Set5"], ["denoise"]) == []  # SR sets get SR only
    with pytest.raises(ValueError):
        standard.cases(tasks=["x5"])


@pytest.fixture(scope="module")
def bench_root(tmp_path_factory) -> Path:
    """A tiny bench folder: CSet5 with a gray file, CBSD68 with two colour images."""
    root = tmp_path_factory.mktemp("bench")
    (root / "CSet5").mkdir()
    (root / "CBSD68").mkdir()
    Image.fromarray(_image(26, 30, 1)).save(root / "CSet5" / "a.png")
    Image.fromarray(_image(24, 28, 2)[:, :, 1]).save(root / "CSet5" / "b.png")  # mode L
    Image.fromarray(_image(20, 24, 3)).save(root / "CBSD68" / "c.png")
    Image.fromarray(_image(24, 20, 4)).save(root / "CBSD68" / "d.png")
    return root


def test_end_to_end_run_agrees_with_scnrestore_eval(bench_root, ckpt_dir):
    from typer.testing import CliRunner

    from scnrestore.cli import app

    models = {k: str(ckpt_dir / f"{k}.safetensors") for k in ("x2", "denoise", "dejpeg")}
    cs = standard.cases(["Set5", "CBSD68"], ["x2", "denoise", "dejpeg"], [25], [20])
    doc = standard.run(bench_root, cs, models, precision="fp32", device="cpu")
    json.dumps(doc)  # JSON-ready
    res = {(r["set"], r["key"]): r for r in doc["results"]}
    assert list(res) == [("Set5", "x2"), ("CBSD68", "sigma25"), ("CBSD68", "q20")]
    for r in res.values():
        assert r["gain"] == pytest.approx(r["ours"] - r["input"])
        assert len(r["images"]) == 2 and r["precision"] == "fp32"
    x2 = res[("Set5", "x2")]
    assert x2["gray_files"] == ["b.png"]
    assert x2["ours_gray_as_is"] == pytest.approx(x2["ours"] - standard.GRAY_AS_IS_DB / 2)
    # the inputs' figures need no model and are the same
    base = standard.run(bench_root, cs, baseline_only=True)
    for r, b in zip(doc["results"], base["results"]):
        assert b["input"] == pytest.approx(r["input"]) and "ours" not in b
    # a model outside the registry is told the level as given and keeps nothing
    assert res[("CBSD68", "q20")]["told_level"] == 20 and res[("CBSD68", "q20")]["keep_luma"] == 0
    # scnrestore eval on the same folder, same model, measures the same
    for r, task, extra in (
        (x2, "upscale", ["-s", "2"]),
        (res[("CBSD68", "sigma25")], "denoise", ["--levels", "25"]),
    ):
        folder = bench_root / ("CSet5" if task == "upscale" else "CBSD68")
        cli = CliRunner().invoke(
            app,
            ["eval", str(folder), "--task", task, *extra, "--model", r["model"],
             "--precision", "fp32", "--device", "cpu", "--json"],
        )  # fmt: skip
        assert cli.exit_code == 0, cli.output
        mean = json.loads(cli.stdout)["results"][0]["mean"]
        assert mean[r["metric"]] == pytest.approx(r["ours"], abs=1e-9)
        assert mean[f"base_{r['metric']}"] == pytest.approx(r["input"], abs=1e-9)
    table = standard.markdown_table(doc)
    assert "| Set5 x2 (PSNR-Y) |" in table and "CBSD68 JPEG q 20 (gain over JPEG)" in table
    assert f"{res[('CBSD68', 'q20')]['gain']:+.2f}" in table


def test_tta_runs_the_self_ensemble_and_labels_its_rows(bench_root, ckpt_dir):
    models = {"x2": str(ckpt_dir / "x2.safetensors")}
    cs = standard.cases(["Set5"], ["x2"], [], [])
    plain = standard.run(bench_root, cs, models, precision="fp32", device="cpu")
    tta = standard.run(bench_root, cs, models, precision="fp32", device="cpu", tta=True)
    p, t = plain["results"][0], tta["results"][0]
    assert (p["tta"], t["tta"], tta["tta"]) == (False, True, True)
    assert t["input"] == pytest.approx(p["input"])
    assert abs(t["ours"] - p["ours"]) > 1e-4  # eight passes averaged, not one
    assert "`--tta`" not in standard.markdown_table(plain)
    both = {"results": plain["results"] + tta["results"]}
    rows = [ln for ln in standard.markdown_table(both).splitlines() if ln.startswith("| Set5")]
    labels = [r.split(" | ")[0] for r in rows]
    assert labels == ["| Set5 x2 (PSNR-Y)", "| Set5 x2 (PSNR-Y), `--tta`"]


def test_script_json_and_save(bench_root, ckpt_dir, tmp_path):
    prefix = tmp_path / "out" / "std"
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "standard.py"), "--root", str(bench_root),
         "--sets", "Set5", "--tasks", "x2", "--model", f"x2={ckpt_dir / 'x2.safetensors'}",
         "--precision", "fp32", "--device", "cpu", "--json", "-q", "--save", str(prefix)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["results"][0]["key"] == "x2" and doc["precision_used"] == ["fp32"]
    assert "model_name" in doc["cpu"] and "standard.py" in doc["command"]
    text = prefix.with_suffix(".txt").read_text()
    assert text.startswith("# python ") and "| Set5 x2 (PSNR-Y) |" in text
    assert "b.png is a single-channel file" in text
    assert json.loads(prefix.with_suffix(".json").read_text())["results"][0]["key"] == "x2"


def test_script_merges_saved_runs(tmp_path, monkeypatch, capsys):
    """--from-json: one table from runs made in parallel (SR in one, dejpeg in another)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("std_script", ROOT / "benchmarks" / "standard.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    part = {"command": "python benchmarks/standard.py --tasks x2", "commit": "abc", "date": "d",
            "cpu": {"model_name": "cpu", "flags": ""}, "torch": "t", "torch_threads": 1,
            "device": "cpu", "precision": "fp32", "precision_used": ["fp32"],
            "total_seconds": 60.0, "models": {}, "set_seconds": {"Set5": 3.0}}  # fmt: skip
    sr = {"set": "Set5", "task": "upscale", "key": "x2", "metric": "psnr_y", "scale": 2,
          "level": None, "input": 33.67, "ours": 36.0, "gain": 2.33, "bar": 37.4,
          "published": standard.PUBLISHED["Set5"]["x2"]}  # fmt: skip
    jp = {
        "set": "CBSD68",
        "task": "dejpeg",
        "key": "q10",
        "metric": "psnr",
        "scale": 1,
        "level": 10.0,
        "input": 25.83,
        "ours": 27.0,
        "gain": 1.17,
        "bar": 1.6,
        "published": {},
        "told_level": 11.5,
        "keep_luma": 0.0,
    }
    (tmp_path / "a.json").write_text(json.dumps({**part, "results": [sr]}))
    (tmp_path / "b.json").write_text(json.dumps({**part, "results": [jp]}))
    argv = ["standard.py", "--from-json", str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    monkeypatch.setattr(sys, "argv", argv)
    script.main()
    text = capsys.readouterr().out
    assert text.count("python benchmarks/standard.py --tasks x2") == 2
    assert "| Set5 x2 (PSNR-Y) | 33.67 |" in text and "| +1.17 | +1.60 |" in text
    assert "told to the network 10→11.5; keep_luma share 10: 0.00" in text


def test_without_the_sets_one_line_says_where_to_get_them(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "standard.py"), "--root", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2 and "Traceback" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert "majedelhelou/denoising_datasets" in line and str(tmp_path) in line
