"""The command line, run as a real subprocess on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "scnrestore", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.fixture()
def work(tmp_path, photo):
    """A small tree: two photos at the top, one in a subfolder, one JPEG."""
    PILImage.fromarray(photo).save(tmp_path / "a.png")
    PILImage.fromarray(photo[:64, :80]).save(tmp_path / "b.png")
    (tmp_path / "sub").mkdir()
    PILImage.fromarray(photo[10:70, 20:100]).save(tmp_path / "sub" / "c.png")
    PILImage.fromarray(photo).save(tmp_path / "d.jpg", quality=20)
    return tmp_path


def test_upscale_file_default_name(work, ckpt_dir):
    r = run("upscale", work / "a.png", "-s", "2", "--model", ckpt_dir / "x2.safetensors")
    assert r.returncode == 0, r.stderr
    with PILImage.open(work / "a_x2.png") as im:
        assert im.size == (256, 192)
    assert "a_x2.png" in r.stderr


def test_directory_recursive_mirrors_tree(work, ckpt_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    r = run("denoise", work, "-r", "-o", out, "--sigma", "30",
            "--model", ckpt_dir / "denoise.safetensors", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["ok"] == 4 and summary["failed"] == 0
    assert {p.relative_to(out).as_posix() for p in out.rglob("*.png")} == {
        "a.png", "b.png", "sub/c.png", "d.png",
    }  # fmt: skip
    for f in summary["files"]:
        assert f["status"] == "ok" and f["seconds"] >= 0 and Path(f["output"]).exists()


def test_directory_without_recursive_stays_on_top(work, ckpt_dir):
    r = run("dejpeg", work, "--quality", "20", "--model", ckpt_dir / "dejpeg.safetensors", "-q")
    assert r.returncode == 0, r.stderr
    assert (work / "d_dejpeg.png").exists() and (work / "a_dejpeg.png").exists()
    assert not (work / "sub" / "c_dejpeg.png").exists()
    assert r.stderr == ""


def test_glob_expanded_by_us(work, ckpt_dir):
    r = run("upscale", "*.png", "-s", "2", "--model", ckpt_dir / "x2.safetensors", cwd=work)
    assert r.returncode == 0, r.stderr
    assert (work / "a_x2.png").exists() and (work / "b_x2.png").exists()


def test_output_file_and_format(work, ckpt_dir):
    r = run("upscale", work / "b.png", "-s", "2", "--model", ckpt_dir / "x2.safetensors",
            "-o", work / "big.webp", "--jpeg-quality", "90")  # fmt: skip
    assert r.returncode == 0, r.stderr
    with PILImage.open(work / "big.webp") as im:
        assert im.format == "WEBP" and im.size == (160, 128)
    r = run("upscale", work / "b.png", "-s", "2", "--model", ckpt_dir / "x2.safetensors",
            "--format", "tif")  # fmt: skip
    assert r.returncode == 0 and (work / "b_x2.tif").exists()


def test_existing_outputs_overwrite_and_skip(work, ckpt_dir):
    args = ["upscale", work / "b.png", "-s", "2", "--model", ckpt_dir / "x2.safetensors"]
    assert run(*args).returncode == 0
    before = (work / "b_x2.png").stat().st_mtime_ns
    r = run(*args)
    assert r.returncode == 1 and "exists" in r.stderr
    r = run(*args, "--skip-existing", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["skipped"] == 1
    assert (work / "b_x2.png").stat().st_mtime_ns == before
    assert run(*args, "--overwrite").returncode == 0
    assert (work / "b_x2.png").stat().st_mtime_ns != before


def test_never_overwrites_input(work, ckpt_dir):
    data = (work / "a.png").read_bytes()
    r = run("denoise", work / "a.png", "-o", work / "a.png", "--overwrite",
            "--model", ckpt_dir / "denoise.safetensors")  # fmt: skip
    assert r.returncode == 1 and "overwrite the input" in r.stderr
    assert (work / "a.png").read_bytes() == data


def test_bad_file_does_not_stop_the_batch(work, ckpt_dir):
    (work / "bad.png").write_text("not a png")
    r = run("upscale", work / "a.png", work / "bad.png", work / "nothere.png", work / "b.png",
            "-s", "2", "--model", ckpt_dir / "x2.safetensors", "--json")  # fmt: skip
    assert r.returncode == 1
    summary = json.loads(r.stdout)
    status = {Path(f["input"]).name: f["status"] for f in summary["files"]}
    assert status == {"a.png": "ok", "bad.png": "failed", "nothere.png": "failed", "b.png": "ok"}
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2 and all(("bad.png" in e) or ("nothere.png" in e) for e in errors)
    assert not list(work.glob("bad_x2*")) and not list(work.glob(".*part"))


def test_the_summary_names_the_device_and_precision_it_ran_with(
    work, ckpt_dir, tmp_path, monkeypatch
):
    """auto's choice depends on the machine (a CPU's bf16 is measured), so the
    run says what it became: in the JSON document and on the last line."""
    import torch

    from scnrestore.runtime import resolve_precision

    env = {"SCNRESTORE_CACHE_DIR": str(tmp_path / "cache")}
    args = ("upscale", work / "b.png", "-s", "2", "--model", ckpt_dir / "x2.safetensors",
            "--device", "cpu", "-o", tmp_path / "out.png")  # fmt: skip
    r = run(*args, "--json", env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    monkeypatch.setenv("SCNRESTORE_CACHE_DIR", env["SCNRESTORE_CACHE_DIR"])
    want = resolve_precision("auto", torch.device("cpu"))  # the run's probe result
    assert (doc["device"], doc["precision"]) == ("cpu", want)
    r = run(*args, "--precision", "fp32", "--overwrite", env=env)
    assert r.stderr.splitlines()[-1].endswith(" on cpu, fp32"), r.stderr


@pytest.mark.parametrize("writers", ["1", "4"])
def test_background_writes_keep_sequential_semantics(work, ckpt_dir, writers):
    """Outputs are written while the next file is restored (one write at a time,
    or four), and every line still comes in input order; what would clash is
    settled before anything runs: an input that is an earlier input's output is
    skipped (not restored from a half-made file, nor again on a re-run), and of
    two inputs with one output name the later one fails, --overwrite or not."""
    env = {"SCNRESTORE_WRITERS": writers}
    PILImage.new("RGB", (10, 10)).save(work / "a_x2.png")  # a.png's output: not an input
    PILImage.fromarray(np.zeros((20, 30, 3), np.uint8)).save(work / "b.jpg")  # -> b_x2.png too
    r = run("upscale", work / "a.png", work / "a_x2.png", work / "b.png", work / "b.jpg",
            work / "sub" / "c.png", "-s", "2", "--model", ckpt_dir / "x2.safetensors",
            "--overwrite", "--json", env=env)  # fmt: skip
    assert r.returncode == 1, r.stderr
    files = json.loads(r.stdout)["files"]
    assert [(Path(f["input"]).name, f["status"], f.get("width")) for f in files] == [
        ("a.png", "ok", 256), ("a_x2.png", "skipped", None), ("b.png", "ok", 160),
        ("b.jpg", "failed", None), ("c.png", "ok", 160),
    ]  # fmt: skip
    assert files[1]["error"] == f"it is the output of {work / 'a.png'} in this run"
    assert files[3]["error"].endswith(f"is also the output of {work / 'b.png'} "
                                      "(use -o or -f to separate them)")  # fmt: skip
    assert not (work / "a_x2_x2.png").exists()
    for name, size in (("a_x2.png", (256, 192)), ("b_x2.png", (160, 128))):
        with PILImage.open(work / name) as im:
            assert im.size == size
    lines = r.stderr.splitlines()
    assert lines[:5] == [
        f"{work / 'a.png'} -> {work / 'a_x2.png'} ({files[0]['seconds']:.1f} s)",
        f"{work / 'a_x2.png'}: skipped ({files[1]['error']})",
        f"{work / 'b.png'} -> {work / 'b_x2.png'} ({files[2]['seconds']:.1f} s)",
        f"error: {work / 'b.jpg'}: {files[3]['error']}",
        f"{work / 'sub' / 'c.png'} -> {work / 'sub' / 'c_x2.png'} ({files[4]['seconds']:.1f} s)",
    ]


def test_an_output_never_replaces_another_input(work, ckpt_dir):
    """-o into the inputs' own folder: d.jpg's output would be d.png, which is
    another input. It fails and d.png is untouched (it used to be overwritten)."""
    PILImage.fromarray(np.zeros((24, 32, 3), np.uint8)).save(work / "d.png")
    before = (work / "d.png").read_bytes()
    r = run("upscale", work / "d.jpg", work / "d.png", "-o", work, "-s", "2", "--overwrite",
            "--model", ckpt_dir / "x2.safetensors", "--json")  # fmt: skip
    assert r.returncode == 1, r.stderr
    files = json.loads(r.stdout)["files"]
    assert [f["status"] for f in files] == ["failed", "failed"]
    assert (
        files[0]["error"] == f"output {work / 'd.png'} would overwrite the input {work / 'd.png'}"
    )
    assert files[1]["error"] == "output would overwrite the input"
    assert (work / "d.png").read_bytes() == before


def test_rerun_over_a_folder_does_not_restore_its_own_outputs(work, ckpt_dir):
    model = ("--model", ckpt_dir / "x2.safetensors")
    r = run("upscale", work, "-s", "2", *model, "-q")
    assert r.returncode == 0, r.stderr
    made = sorted(p.name for p in work.glob("*_x2.png"))
    assert made == ["a_x2.png", "b_x2.png", "d_x2.png"]
    r = run("upscale", work, "-s", "2", *model, "--skip-existing", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["ok"], doc["skipped"]) == (0, 6)
    assert sorted(p.name for p in work.glob("*_x2*.png")) == made


def test_glob_with_output_dir_mirrors_below_the_wildcard(work, ckpt_dir, tmp_path_factory):
    """'DIR/**/*.png' -o OUT keeps the folders below DIR, so two x.png in
    different folders do not land on one output (they used to collide)."""
    for sub in ("p", "q"):
        (work / "shots" / sub).mkdir(parents=True)
        PILImage.new("RGB", (12, 10)).save(work / "shots" / sub / "x.png")
    out = tmp_path_factory.mktemp("out")
    r = run("upscale", "shots/**/*.png", "-o", out, "-s", "2",
            "--model", ckpt_dir / "x2.safetensors", cwd=work)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == [
        "p/x.png", "q/x.png",
    ]  # fmt: skip


def test_a_folder_without_images_is_noted(tmp_path, ckpt_dir):
    (tmp_path / "empty" / "deeper").mkdir(parents=True)
    r = run("upscale", tmp_path / "empty", "-s", "2", "--model", ckpt_dir / "x2.safetensors",
            "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"note: {tmp_path / 'empty'}: no image files (-r looks in its folders)" in r.stderr
    doc = json.loads(r.stdout)
    assert doc["files"] == [] and (doc["device"], doc["precision"]) == (None, None)


def test_file_names_are_printed_as_they_are(work, ckpt_dir):
    """Rich would turn ':smile:' into an emoji and '[b]' into bold."""
    name = "x:smile:[b]y.png"
    PILImage.new("RGB", (12, 10)).save(work / name)
    r = run("upscale", work / name, work / "missing:+1:.png", "-s", "2",
            "--model", ckpt_dir / "x2.safetensors")  # fmt: skip
    assert r.returncode == 1
    assert f"{work / name} -> {work / 'x:smile:[b]y_x2.png'}" in r.stderr, r.stderr
    assert f"error: {work / 'missing:+1:.png'}: no such file or directory" in r.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["upscale", "x.png", "-s", "5"],
        ["denoise", "x.png", "--sigma", "100"],
        ["dejpeg", "x.png", "--quality", "abc"],
        ["upscale", "x.png", "--precision", "int8"],
        ["upscale"],
        ["upscale", "x.png", "--overwrite", "--skip-existing"],
    ],
)
def test_usage_errors_exit_2(args, work):
    (work / "x.png").write_bytes((work / "a.png").read_bytes())
    r = run(*args, cwd=work)
    assert r.returncode == 2, (r.stdout, r.stderr)


def test_unknown_model_exits_2(work):
    r = run("upscale", work / "a.png", "--model", "no-such-model")
    assert r.returncode == 2 and "unknown model" in r.stderr


def test_gray_16bit_png_through_cli(tmp_path, ckpt_dir):
    a = (np.random.default_rng(0).random((40, 50)) * 65535).astype(np.uint16)
    PILImage.fromarray(a).save(tmp_path / "g.png")
    r = run("upscale", tmp_path / "g.png", "-s", "3", "--model", ckpt_dir / "x3.safetensors")
    assert r.returncode == 0, r.stderr
    with PILImage.open(tmp_path / "g_x3.png") as im:
        assert im.size == (150, 120) and im.mode.startswith("I")


def test_help_does_not_import_torch():
    code = (
        "import sys; from scnrestore.cli import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "upscale" in r.stdout


def test_cli_overlap_default_is_the_engines():
    from scnrestore import engine, spec

    assert spec.DEFAULT_OVERLAP == engine.DEFAULT_OVERLAP


def test_examples_exist():
    names = {p.name for p in EXAMPLES.iterdir()}
    assert {"coffee.png", "chelsea.png", "astronaut_noisy25.png", "rocket_q15.jpg"} <= names


def test_models_list_does_not_import_torch(tmp_path):
    (tmp_path / "reg.toml").write_text(
        '[models.m]\ntask = "denoise"\nfile = "m.bin"\nsize = 3\nsha256 = "' + "0" * 64 + '"\n'
        'urls = ["https://example.org/m.bin"]\n'
    )
    code = (
        "import sys; from scnrestore.cli import app\n"
        "try:\n    app(['models', 'list'])\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "import scnrestore.weights.download\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    env = {
        **os.environ,
        "SCNRESTORE_REGISTRY": str(tmp_path / "reg.toml"),
        "SCNRESTORE_CACHE_DIR": str(tmp_path / "cache"),
    }
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "m" in r.stdout and "remote" in r.stdout


def test_png_compression_trades_size_not_pixels(work, ckpt_dir):
    sizes, pixels = {}, {}
    for level in (0, 9):
        dst = work / f"level{level}.png"
        r = run("upscale", work / "a.png", "-s", "2", "--model", ckpt_dir / "x2.safetensors",
                "-o", dst, "--png-compression", level)  # fmt: skip
        assert r.returncode == 0, r.stderr
        sizes[level] = dst.stat().st_size
        with PILImage.open(dst) as im:
            pixels[level] = np.asarray(im)
    assert sizes[0] > 1.5 * sizes[9]  # level 0 stores, 9 deflates
    np.testing.assert_array_equal(pixels[0], pixels[9])
