"""What planning settles before any model loads: outputs that cannot be
written fail at once, one line each, the other files still run; this tool's
earlier outputs that a folder or glob brings are left out with one note,
unless named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image as PILImage

from scnrestore.batch import Job, Source, check_writable, skip_earlier_outputs


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "scnrestore", *map(str, args)],
        cwd=cwd, capture_output=True, text=True, env=os.environ.copy(), timeout=300,
    )  # fmt: skip


def test_unwritable_outputs_fail_while_planning(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "dir.png").mkdir()
    jobs = [
        Job(tmp_path / "a.png", tmp_path / "file" / "sub" / "a.png"),
        Job(tmp_path / "b.png", tmp_path / "dir.png"),
        Job(tmp_path / "c.png", tmp_path / "new" / "deeper" / "c.png"),
    ]
    check_writable(jobs)
    assert [j.status for j in jobs] == ["failed", "failed", "pending"]
    assert jobs[0].error.endswith(f"{tmp_path / 'file'} is a file, not a folder")
    assert jobs[1].error.endswith("it is a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_fails_while_planning(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        jobs = [Job(tmp_path / "a.png", ro / "a.png")]
        check_writable(jobs)
        assert jobs[0].status == "failed" and "not writable" in jobs[0].error
    finally:
        ro.chmod(0o755)


def test_cli_bad_output_fails_fast_with_no_model_and_the_rest_runs(tmp_path, photo):
    for name in ("a.png", "b.png", "c.png"):
        PILImage.fromarray(photo[:16, :16]).save(tmp_path / name)
    (tmp_path / "out").write_text("a file where the output folder should be")
    t0 = time.time()
    r = run("upscale", "a.png", "b.png", "-s", "2", "-o", "out/", "--json", cwd=tmp_path)
    assert r.returncode == 1 and time.time() - t0 < 10
    summary = json.loads(r.stdout)
    assert summary["failed"] == 2 and summary["device"] is None  # no model was loaded
    assert r.stderr.count("is a file, not a folder") == 2
    (tmp_path / "c.png.png").mkdir()  # one output that is a folder; the other file runs
    r = run("upscale", "a.png", "c.png", "-s", "2", "--suffix", ".png", "--json", cwd=tmp_path)
    assert r.returncode == 1
    (a, c) = json.loads(r.stdout)["files"]
    assert a["status"] == "ok" and c["status"] == "failed" and "is a folder" in c["error"]


def test_earlier_outputs_are_left_out_unless_named(tmp_path):
    for name in ("a.png", "a_x2.png", "a_denoised.png", "a_x3.5.png", "a_w640.png",
                 "b_x2.png", "c.jpg", "c_dejpeg.png", "c-mine.png"):  # fmt: skip
        (tmp_path / name).write_bytes(b"")
    pairs = [Source(p, tmp_path) for p in sorted(tmp_path.iterdir())]
    pairs.append(Source(tmp_path / "a_x2.png", tmp_path, named=True))
    kept, skipped, notes = skip_earlier_outputs(pairs, ("-mine",))
    assert sorted(s.file.name for s in kept) == ["a.png", "a_x2.png", "b_x2.png", "c.jpg"]
    assert sorted(j.src.name for j in skipped) == [
        "a_denoised.png", "a_w640.png", "a_x2.png", "a_x3.5.png", "c-mine.png", "c_dejpeg.png",
    ]  # fmt: skip
    assert all(j.status == "skipped" and j.quiet for j in skipped)
    assert len(notes) == 1 and "skipped 6 files" in notes[0]


def test_cli_rerun_with_other_output_does_not_restore_its_outputs(tmp_path, photo):
    PILImage.fromarray(photo[:16, :16]).save(tmp_path / "p.png")
    assert run("denoise", ".", "--sigma", "10", cwd=tmp_path).returncode == 0
    assert (tmp_path / "p_denoised.png").exists()
    r = run("denoise", ".", "--sigma", "10", "-o", "out/", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert sorted(Path(p).name for p in os.listdir(tmp_path / "out")) == ["p.png"]
    assert r.stderr.count("note: skipped a file that looks like this tool's earlier output") == 1
    r = run("denoise", "p_denoised.png", "--sigma", "10", "-o", "out/", cwd=tmp_path)
    assert r.returncode == 0 and (tmp_path / "out" / "p_denoised.png").exists(), r.stderr
