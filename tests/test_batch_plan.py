"""Planning a batch (scnrestore.batch.plan): what is settled before a model loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image as PILImage
from test_cli import run

from scnrestore.batch import check_inputs, expand_inputs, guard_outputs, plan_outputs


@pytest.fixture()
def mixed(tmp_path, photo):
    """A folder with a JPEG, two PNGs and a text file named like a JPEG."""
    d = tmp_path / "in"
    d.mkdir()
    PILImage.fromarray(photo).save(d / "a.jpg", quality=30)
    PILImage.fromarray(photo).save(d / "b.png")
    PILImage.fromarray(photo[:64, :64]).save(d / "c.png")
    (d / "notes.jpg").write_text("not a picture\n")
    return d


def _jobs(inputs: list[str]):
    pairs, missing, _ = expand_inputs(inputs, recursive=False)
    jobs = missing + plan_outputs(pairs, None, "_dejpeg", None)
    guard_outputs(jobs)
    return jobs


def test_a_folder_or_glob_brings_files_a_name_names_one(mixed):
    jobs = {j.src.name: j for j in _jobs([str(mixed), str(mixed / "b.png")])}
    assert not jobs["b.png"].named and not jobs["a.jpg"].named  # the folder came first
    jobs = {j.src.name: j for j in _jobs([str(mixed / "b.png"), str(mixed / "*.jpg")])}
    assert jobs["b.png"].named and not jobs["a.jpg"].named


def test_dejpeg_auto_skips_what_a_folder_brings_that_is_no_jpeg_with_one_note(mixed):
    jobs = _jobs([str(mixed)])
    notes = check_inputs(jobs, "dejpeg", "auto")
    status = {j.src.name: (j.status, j.error) for j in jobs}
    assert status["a.jpg"] == ("pending", None)
    assert status["b.png"] == ("skipped", "not a JPEG file (PNG)")
    assert status["c.png"] == ("skipped", "not a JPEG file (PNG)")
    assert status["notes.jpg"] == ("failed", "cannot read: not an image file Pillow can identify")
    assert [n.split(" (")[0] for n in notes] == ["note: skipped 2 files that are not JPEGs"]


def test_dejpeg_auto_refuses_a_named_non_jpeg(mixed):
    jobs = _jobs([str(mixed / "b.png")])
    assert check_inputs(jobs, "dejpeg", "auto") == []
    assert (jobs[0].status, jobs[0].error) == ("failed", "not a JPEG file (PNG): pass --quality N")


def test_a_given_quality_takes_any_image(mixed):
    jobs = _jobs([str(mixed)])
    assert check_inputs(jobs, "dejpeg", 30.0) == []
    assert sorted(j.src.name for j in jobs if j.status == "pending") == ["a.jpg", "b.png", "c.png"]


# -- through the command line: reported before the model loads ------------------------


def test_dejpeg_auto_over_a_mixed_folder(mixed, ckpt_dir):
    r = run("dejpeg", mixed, "--model", ckpt_dir / "dejpeg.safetensors", "--json")
    assert r.returncode == 1, r.stderr  # the text file named .jpg fails; the PNGs do not
    notes = [line for line in r.stderr.splitlines() if "not JPEGs" in line]
    assert len(notes) == 1 and notes[0].startswith("note: skipped 2 files that are not JPEGs")
    assert "b.png" not in r.stderr and "c.png" not in r.stderr
    files = {Path(f["input"]).name: f for f in json.loads(r.stdout)["files"]}
    assert files["a.jpg"]["status"] == "ok" and files["b.png"]["status"] == "skipped"
    assert files["notes.jpg"]["error"] == "cannot read: not an image file Pillow can identify"


def test_what_the_headers_tell_is_reported_before_the_model_loads(mixed, tmp_path):
    """No model file at all: the inputs' own failures come out (exit 1), not
    the model's (exit 2), so none of them waited for a model to load."""
    missing = tmp_path / "nowhere.safetensors"
    r = run("dejpeg", mixed / "b.png", mixed / "notes.jpg", "--model", missing, "--json")
    assert r.returncode == 1, r.stderr
    assert f"error: {mixed / 'b.png'}: not a JPEG file (PNG): pass --quality N" in r.stderr
    assert f"error: {mixed / 'notes.jpg'}: cannot read: not an image file" in r.stderr
    assert json.loads(r.stdout)["device"] is None  # no model was loaded
    r = run("upscale", mixed / "notes.jpg", "-s", "2", "--model", missing)
    assert r.returncode == 1 and "cannot read: not an image file" in r.stderr, r.stderr
