"""The batch pipeline: interrupted runs (Ctrl-C, kill -9) and parallel background writes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import hostile as H
import numpy as np
import pytest
from PIL import Image as PILImage
from test_hostile import ENV, snapshot

# -- interruptions ------------------------------------------------------------------------


@pytest.fixture()
def slow_batch(tmp_path, ckpt_dir):
    """Six 320 x 320 images in 64 px tiles: a couple of seconds of work."""
    d = tmp_path / "in"
    d.mkdir()
    for i in range(6):
        PILImage.fromarray(H.pattern(320, 320, seed=i)).save(d / f"img{i}.png")
    out = tmp_path / "out"
    args = [sys.executable, "-m", "scnrestore", "upscale", str(d), "-o", str(out), "-s", "2",
            "--model", str(ckpt_dir / "x2.safetensors"), "--tile", "64", "--tile-overlap", "16",
            "--json"]  # fmt: skip
    return SimpleNamespace(dir=d, out=out, args=args, before=snapshot(d))


def _start_and_wait_for_first_output(batch) -> subprocess.Popen:
    proc = subprocess.Popen(batch.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **ENV})  # fmt: skip
    deadline = time.time() + 120
    while not (batch.out.exists() and any(batch.out.glob("*.png"))):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no output after 120 s"
        time.sleep(0.02)
    return proc


def _assert_only_complete_outputs(batch) -> int:
    """Every file in the output folder is a whole image; no temporary files."""
    names = sorted(p.name for p in batch.out.iterdir())
    assert all(re.fullmatch(r"img\d\.png", n) for n in names), names
    for n in names:
        with PILImage.open(batch.out / n) as im:
            im.load()  # raises on a truncated file
            assert im.size == (640, 640)
    assert snapshot(batch.dir) == batch.before
    return len(names)


# Runs the command line with a real SIGINT at a known point: while the third
# of six images is restored, once an output is complete. (A signal sent from
# outside at some time arrived after the whole batch on a busy machine.)
CTRL_C_IN_THE_THIRD_IMAGE = """
import os, signal, sys, time
from pathlib import Path
from scnrestore.api import Restorer
from scnrestore.cli import app

# A shell that starts the tests in the background hands them SIGINT ignored,
# and Python then installs no KeyboardInterrupt handler: put it back.
signal.signal(signal.SIGINT, signal.default_int_handler)
out, calls, restore = Path(sys.argv[1]), [], Restorer.restore

def interrupted_restore(self, *args, **kw):
    calls.append(1)
    if len(calls) == 3:
        deadline = time.time() + 120
        while not any(out.glob("*.png")) and time.time() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)
    return restore(self, *args, **kw)

Restorer.restore = interrupted_restore
app(sys.argv[2:], prog_name="scnrestore")
"""


def test_ctrl_c_stops_cleanly_with_a_summary(slow_batch):
    args = [sys.executable, "-c", CTRL_C_IN_THE_THIRD_IMAGE, str(slow_batch.out),
            *slow_batch.args[3:]]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **ENV},
                          timeout=300)  # fmt: skip
    stdout, stderr = proc.stdout, proc.stderr
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    done = _assert_only_complete_outputs(slow_batch)
    assert 1 <= done < 6
    last = stderr.strip().splitlines()[-1]
    assert last == f"interrupted: {done} done, 0 failed, 0 skipped, {6 - done} not run"
    s = json.loads(stdout)
    assert s["interrupted"] and s["ok"] == done and s["not_run"] == 6 - done


@pytest.mark.parametrize("delay", [0.0, 0.3])
def test_kill_9_leaves_no_partial_output(slow_batch, delay):
    proc = _start_and_wait_for_first_output(slow_batch)
    time.sleep(delay)
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert 1 <= _assert_only_complete_outputs(slow_batch) < 6


class _Recorder:
    """A Reporter that keeps the lines it would print, in order."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def done(self, job) -> None:
        self.lines.append(f"{job.dst.name} {job.status}")

    def note(self, msg: str) -> None:
        self.lines.append(msg)

    def tile_progress(self, name: str):
        return None


@pytest.mark.parametrize("writes", [1, 3])
@pytest.mark.parametrize("anonymous", [True, False])
def test_ctrl_c_drops_the_background_writes(tmp_path, monkeypatch, anonymous, writes):
    """Ctrl-C while outputs are still being encoded in the background (one write
    in flight, or three): the jobs are 'not run' and nothing is left, with or
    without O_TMPFILE."""
    import threading

    from scnrestore import batch, files, imageio

    if not anonymous:
        monkeypatch.setattr(files, "_anonymous_file", lambda directory: None)
    encoding, release = threading.Semaphore(0), threading.Event()
    real = imageio.write._encode

    def slow(*args):
        real(*args)
        encoding.release()
        assert release.wait(30)

    monkeypatch.setattr(imageio.write, "_encode", slow)
    pipe = batch.Pipeline(_Recorder(), slots=writes)
    jobs = [batch.Job(tmp_path / f"{i}.in", tmp_path / "out" / f"{i}.png") for i in range(writes)]
    image = imageio.Image(np.zeros((8, 8, 3), np.uint8))
    for job in jobs:
        pipe.write(job, (image, "PNG"), batch.Encoding(95, 6), time.time())
    futures = [w.future for w in pipe.pending]
    for _ in jobs:
        assert encoding.acquire(timeout=30)
    if not anonymous:  # abort() waits for the writers to remove their .part files
        threading.Timer(0.2, release.set).start()
    pipe.abort()
    release.set()
    for fut in futures:
        with pytest.raises(batch.pipeline.Aborted):
            fut.result(30)
    assert all(j.status == "pending" for j in jobs) and not pipe.pending
    assert list((tmp_path / "out").iterdir()) == []


def test_parallel_writes_overlap_and_report_in_job_order(tmp_path, monkeypatch):
    """With three write slots, three outputs are encoded at once; the third
    finishing first is still reported after the first two, and a note of the
    fourth job waits for them too."""
    import threading

    from scnrestore import batch, imageio

    started = {k: threading.Event() for k in ("a", "b", "c", "d")}
    gates = {k: threading.Event() for k in started}
    real = imageio.write._encode

    def gated(path, *args):
        key = threading.current_thread().name.rsplit("-", 1)[-1]
        started[key].set()
        assert gates[key].wait(30)
        real(path, *args)

    monkeypatch.setattr(imageio.write, "_encode", gated)
    real_write = batch.pipeline.write_output

    def named(job, *args):  # lets the gate know which output this thread writes
        threading.current_thread().name = "w-" + job.dst.stem
        return real_write(job, *args)

    monkeypatch.setattr(batch.pipeline, "write_output", named)
    rec = _Recorder()
    pipe = batch.Pipeline(rec, slots=3)
    jobs = {k: batch.Job(tmp_path / f"{k}.in.png", tmp_path / "out" / f"{k}.png") for k in "abcd"}
    image = imageio.Image(np.full((8, 8, 3), 7, np.uint8))
    for k in "abc":
        pipe.write(jobs[k], (image, "PNG"), batch.Encoding(95, 6), time.time())
    for k in "abc":  # all three in flight at once
        assert started[k].wait(30), k
    gates["c"].set()
    while not pipe.pending[2].future.done():
        time.sleep(0.01)
    pipe.note("note of d")
    assert rec.lines == []  # c is done, but a and b are not reported yet
    gates["b"].set()
    gates["a"].set()
    gates["d"].set()
    pipe.write(jobs["d"], (image, "PNG"), batch.Encoding(95, 6), time.time())
    pipe.finish()
    assert rec.lines == ["a.png ok", "b.png ok", "c.png ok", "note of d", "d.png ok"]
    for k in "abcd":
        assert np.array_equal(np.asarray(PILImage.open(jobs[k].dst)), image.pixels)


def test_parallel_writes_respect_the_slots_and_the_byte_budget(tmp_path, monkeypatch):
    """A write waits for the oldest when the slots are full, or when the outputs
    in flight would exceed WRITE_BYTES (the first write always starts)."""
    from scnrestore import batch, imageio

    enc = batch.Encoding(95, 6)
    small = imageio.Image(np.zeros((8, 8, 3), np.uint8))  # 192 bytes
    jobs = [batch.Job(tmp_path / f"{i}.in", tmp_path / f"{i}.png") for i in range(4)]

    pipe = batch.Pipeline(_Recorder(), slots=2)
    max_in_flight = 0
    for job in jobs:
        pipe.write(job, (small, "PNG"), enc, time.time())
        max_in_flight = max(max_in_flight, len(pipe.pending))
    pipe.finish()
    assert max_in_flight <= 2 and all(j.status == "ok" for j in jobs)

    monkeypatch.setattr(batch.pipeline, "WRITE_BYTES", 300)  # room for one small output, not two
    pipe = batch.Pipeline(_Recorder(), slots=8)
    for job in jobs:
        job.status = "pending"
        job.dst.unlink()
        pipe.write(job, (small, "PNG"), enc, time.time())
        assert len(pipe.pending) == 1
    pipe.finish()
    assert all(j.status == "ok" and j.dst.exists() for j in jobs)


def test_write_slots_from_the_environment(monkeypatch):
    from scnrestore import batch

    monkeypatch.setenv("SCNRESTORE_WRITERS", "5")
    assert batch.write_slots() == 5
    monkeypatch.setenv("SCNRESTORE_WRITERS", "zero")
    assert 1 <= batch.write_slots() <= 8
