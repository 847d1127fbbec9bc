"""scnrestore.distributed on a local Ray cluster started here (2 CPUs, loopback only).

Skipped without Ray (pip install 'scnrestore[ray]'; .ci/run installs it). A Ray
failure is usually a hang, so every test runs under a SIGALRM deadline.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

pytest.importorskip("ray", reason="Ray is not installed (pip install 'scnrestore[ray]')")

from typer.testing import CliRunner  # noqa: E402

from scnrestore import distributed  # noqa: E402
from scnrestore.batch import BatchOptions  # noqa: E402
from scnrestore.cli import app  # noqa: E402
from scnrestore.distributed import ClusterOptions  # noqa: E402
from scnrestore.spec import RestorerSpec  # noqa: E402

# Ray Data's own deprecation notices (its DataContext), not scnrestore's.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray")

DEADLINE_S = 600  # per test: a hang guard, generous for a CPU shared with other work


@contextlib.contextmanager
def deadline(seconds: int, what: str):
    """Fail (rather than hang) when the block takes longer than ``seconds``."""

    def expired(signum, frame):
        raise TimeoutError(f"{what} took more than {seconds} s (a Ray hang?)")

    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(autouse=True)
def _deadline(request):
    with deadline(DEADLINE_S, request.node.name):
        yield


@pytest.fixture(scope="module")
def cluster():
    """One local cluster for the module, through the same connect() the CLI uses."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    tmp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited
    with deadline(300, "starting the Ray cluster"):
        stack = contextlib.ExitStack()
        started = stack.enter_context(distributed.connect(None, num_cpus=2, _temp_dir=tmp))
    assert started
    try:
        yield
    finally:
        with deadline(60, "ray.shutdown()"):
            stack.close()  # ray.shutdown() of this cluster only
        shutil.rmtree(tmp, ignore_errors=True)


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for c in children.get(p, []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _listeners(pids: set[int]) -> list[str]:
    """Local addresses of the TCP sockets listening in ``pids``."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found = []
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                f = line.split()
                if f[3] != "0A" or f[9] not in inodes:  # 0A: LISTEN
                    continue
                hexaddr = f[1].split(":")[0]
                raw = bytes.fromhex(hexaddr)
                if v6:  # four little-endian 32-bit words
                    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                    found.append(str(ipaddress.IPv6Address(raw)))
                else:
                    found.append(".".join(str(b) for b in raw[::-1]))
    return found


def test_cluster_listens_on_loopback_only(cluster):
    addrs = _listeners(_descendants(os.getpid()) | {os.getpid()})
    assert addrs, "found no listener of the cluster: the check would prove nothing"
    assert all(_loopback(a) for a in addrs), addrs


def _loopback(addr: str) -> bool:
    ip = ipaddress.ip_address(addr)
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


@pytest.fixture(scope="module")
def photos(tmp_path_factory, photo):
    """Ten small images (PNG, JPEG, gray, alpha; one in a subfolder) and a truncated PNG."""
    d = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(6):
        y, x = rng.integers(0, 40, 2)
        PILImage.fromarray(photo[y : y + 40, x : x + 48]).save(d / f"p{i}.png")
    PILImage.fromarray(photo[:40, :48]).save(d / "j0.jpg", quality=30)
    PILImage.fromarray(photo[8:48, 8:56]).save(d / "j1.jpg", quality=60)
    PILImage.fromarray(photo[:40, :48].mean(axis=2).astype(np.uint8)).save(d / "gray.png")
    (d / "sub").mkdir()
    rgba = np.dstack([photo[:40, :48], np.full((40, 48), 200, np.uint8)])
    PILImage.fromarray(rgba).save(d / "sub" / "alpha.png")
    (d / "bad.png").write_bytes((d / "p0.png").read_bytes()[:200])
    return d


def _local_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "scnrestore", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _outputs(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.suffix != ".jsonl"
    }


def test_cli_matches_local_run_fails_one_file_then_resumes(cluster, photos, ckpt_dir, tmp_path):
    ckpt = ckpt_dir / "x2.safetensors"
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    r = _local_cli("upscale", photos, "-r", "-s", "2", "--model", ckpt, "-o", local)
    assert r.returncode == 1, r.stderr

    runner = CliRunner()
    args = ["upscale", str(photos), "-r", "-s", "2", "--model", str(ckpt), "-o", str(on_ray)]
    res = runner.invoke(app, [*args, "--ray", "local", "--workers", "2", "--json"])
    assert res.exit_code == 1, res.output
    summary = json.loads(res.stdout)
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (10, 1, 0)
    [bad] = [f for f in summary["files"] if f["status"] == "failed"]
    assert bad["input"].endswith("bad.png") and "truncated" in bad["error"]
    assert f"error: {photos / 'bad.png'}: cannot read" in res.stderr
    assert summary["device"] == "cpu" and summary["manifest"]

    # byte for byte what the local CLI wrote (metadata included), nothing else
    assert _outputs(on_ray) == _outputs(local)
    assert len(_outputs(on_ray)) == 10

    # the manifest: one row per input, keyed by path
    manifest = Path(summary["manifest"])
    assert manifest == on_ray / distributed.MANIFEST_NAME
    rows = {row["input"]: row for row in map(json.loads, manifest.read_text().splitlines())}
    assert len(rows) == 11
    assert rows[str(photos / "bad.png")]["status"] == "failed"
    assert "truncated" in rows[str(photos / "bad.png")]["error"]
    assert rows[str(photos / "sub" / "alpha.png")]["output"] == str(on_ray / "sub" / "alpha.png")
    assert all(r["status"] == "ok" for k, r in rows.items() if not k.endswith("bad.png"))

    # a second run skips every done output and writes none of them again
    stamps = {p: p.stat().st_mtime_ns for p in on_ray.rglob("*.png")}
    res = runner.invoke(app, [*args, "--ray", "local", "--json"])
    assert res.exit_code == 1, res.output  # the bad file is tried again, and fails again
    summary = json.loads(res.stdout)
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (0, 1, 10)
    assert {p: p.stat().st_mtime_ns for p in on_ray.rglob("*.png")} == stamps
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert sorted(r["status"] for r in rows) == ["failed"] + ["skipped"] * 10


def test_library_denoise_from_a_list_and_a_uri(cluster, photos, ckpt_dir, tmp_path):
    """restore_dataset with a list file of paths and a file:// URI (read through
    pyarrow's filesystem, as s3:// or gs:// would be); same bytes as the local CLI."""
    ckpt = ckpt_dir / "denoise.safetensors"
    local = tmp_path / "local"
    pngs = sorted(photos.glob("p*.png"))
    r = _local_cli("denoise", *pngs, "--sigma", "auto", "--model", ckpt, "-o", local)
    assert r.returncode == 0, r.stderr

    listing = tmp_path / "list.txt"
    listing.write_text("# three of them, relative to this file's folder\n" + "".join(
        f"{os.path.relpath(p, tmp_path)}\n" for p in pngs[:3]
    ))  # fmt: skip
    seen = []
    spec = RestorerSpec("denoise", model=str(ckpt))
    report = distributed.restore_dataset(
        [str(listing)], spec, BatchOptions("denoise", "auto", output=tmp_path / "from_list"),
        cluster=ClusterOptions(workers=1), on_result=lambda job, notes: seen.append((job, notes)),
    )  # fmt: skip
    assert (report.done, report.failed, report.skipped, report.exit_code) == (3, 0, 0, 0)
    assert report.manifest == tmp_path / "from_list" / distributed.MANIFEST_NAME
    for job, notes in seen:
        assert any("estimated sigma" in n for n in notes)
        assert job.info["level"] > 0 and "keep_input" in job.info
        assert job.dst.read_bytes() == (local / job.src.name).read_bytes()

    report = distributed.restore_dataset(
        [f"file://{photos}"], spec,
        BatchOptions("denoise", 25, output=tmp_path / "from_uri", skip_existing=True),
        cluster=ClusterOptions(workers=2),
    )  # fmt: skip
    assert (report.done, report.failed) == (9, 1)  # not recursive: sub/alpha.png is not in it
    bad = [j for j in report.jobs if j.status == "failed"]
    assert [j.src.name for j in bad] == ["bad.png"] and "truncated" in bad[0].error
    r = _local_cli("denoise", photos / "p1.png", "--sigma", "25", "--model", ckpt,
                   "-o", tmp_path / "local25")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "from_uri" / "p1.png").read_bytes() == (
        tmp_path / "local25" / "p1.png"
    ).read_bytes()


@pytest.mark.parametrize(
    "kw, says",
    [
        ({"workers": 3}, "3 workers x 1 CPUs do not fit"),
        ({"workers": 1, "cpus_per_worker": 4}, "no node of the Ray cluster has room"),
        ({"gpus_per_worker": 1}, "has no GPUs"),
        ({"gpus_per_worker": 0.5, "workers": 2}, "has no GPUs"),
    ],
)
def test_unschedulable_requests_are_refused_at_once(cluster, photos, ckpt_dir, tmp_path, kw, says):
    t0 = time.time()
    with pytest.raises(distributed.UnschedulableError, match=says):
        distributed.restore_dataset(
            [str(photos)], RestorerSpec("upscale", 2, str(ckpt_dir / "x2.safetensors")),
            BatchOptions("upscale", scale=2, output=tmp_path / "out"),
            cluster=ClusterOptions(**kw),
        )  # fmt: skip
    assert time.time() - t0 < 30
    assert not (tmp_path / "out").exists()  # nothing written, no manifest


def test_cli_unschedulable_is_a_usage_error(cluster, photos, ckpt_dir, tmp_path):
    res = CliRunner().invoke(app, [
        "upscale", str(photos), "-s", "2", "--model", str(ckpt_dir / "x2.safetensors"),
        "-o", str(tmp_path / "out"), "--ray", "local", "--gpus-per-worker", "1",
    ])  # fmt: skip
    assert res.exit_code == 2
    assert "error: --gpus-per-worker 1: the Ray cluster has no GPUs" in res.stderr


def test_help_imports_neither_ray_nor_torch():
    code = (
        "import sys\nfrom typer.testing import CliRunner\nfrom scnrestore.cli import app\n"
        "r = CliRunner().invoke(app, ['upscale', '--help'])\n"
        "assert r.exit_code == 0 and '--ray' in r.output, r.output\n"
        "print(sorted(m for m in ('ray', 'torch') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_plan_list_files_and_uris(photos, tmp_path):
    """Planning needs no cluster: a list's URIs are taken as files (no request
    each) and mirrored from the bucket down; a URI naming nothing fails its row."""
    listing = tmp_path / "l.lst"
    listing.write_text(f"s3://bkt/a/x.jpg\n\n# a comment\n{photos / 'p0.png'}\nsub/y.png\n")
    jobs, uris, _ = distributed.plan_jobs(
        [str(listing), f"file://{tmp_path}/nothing"], tmp_path / "out", "upscale", scale=2
    )
    by_src = {str(j.src): j for j in jobs}
    assert by_src["bkt/a/x.jpg"].dst == tmp_path / "out" / "a" / "x.png"
    assert uris[Path("bkt/a/x.jpg")] == "s3://bkt/a/x.jpg"
    assert by_src[str(photos / "p0.png")].dst == tmp_path / "out" / "p0.png"
    missing = by_src[str(tmp_path / "sub" / "y.png")]  # listed, not there: fails as locally
    assert missing.dst == tmp_path / "out" / "sub" / "y.png" and missing.status == "failed"
    assert by_src["bkt/a/x.jpg"].status == "pending"  # objects are read by the workers only
    [gone] = [j for j in jobs if "nothing" in str(j.src)]
    assert gone.status == "failed" and "no such file or folder" in gone.error
    with pytest.raises(ValueError, match="needs an output folder"):
        distributed.plan_jobs([str(listing)], None, "upscale", scale=2)


def test_a_worker_without_its_model_fails_each_file_and_the_run_ends(
    cluster, photos, ckpt_dir, tmp_path
):
    """A worker that cannot load the model (here: a device its node lacks) must
    not be restarted forever: every file it gets fails with the reason."""
    spec = RestorerSpec("upscale", 2, str(ckpt_dir / "x2.safetensors"), device="mps")
    report = distributed.restore_dataset(
        [str(photos / "p0.png"), str(photos / "p1.png")], spec,
        BatchOptions("upscale", scale=2, output=tmp_path / "out"),
        cluster=ClusterOptions(workers=1),
    )  # fmt: skip
    assert (report.done, report.failed, report.exit_code) == (0, 2, 1)
    assert all("no model on worker" in j.error and "mps" in j.error for j in report.jobs)
    with pytest.raises(ValueError, match="needs --gpus-per-worker"):
        distributed.restore_dataset(
            [str(photos)], RestorerSpec("upscale", device="cuda"),
            BatchOptions("upscale", scale=4, output=tmp_path / "o2"),
        )  # fmt: skip
    with pytest.raises(ValueError, match="disagree"):  # nothing planned, nothing written
        distributed.restore_dataset([str(photos)], spec, BatchOptions("upscale", scale=4))
    # A share to keep outside 0..1 is refused before the cluster is asked.
    bad = RestorerSpec("denoise", 1, str(ckpt_dir / "denoise.safetensors"), keep=1.5)
    with pytest.raises(ValueError, match="keep_input must lie in 0..1"):
        distributed.restore_dataset(
            [str(photos)], bad, BatchOptions("denoise", output=tmp_path / "o3", level=25)
        )
    assert not (tmp_path / "o3").exists()


# -- faults: a worker killed, a poison input, a full disk, the driver killed --------
#
# Each runs the real command line in a child process with its own local cluster
# (loopback only), so stdout is what a script reading --json gets. Faults are
# put into its Ray workers by tests/faults/sitecustomize.py, loaded only through
# the PYTHONPATH and variables set here.

FAULTS = Path(__file__).parent / "faults"


@pytest.fixture()
def eleven(photo, tmp_path):
    """Eleven small photos, in/p00.png .. in/p10.png."""
    d = tmp_path / "in"
    d.mkdir()
    rng = np.random.default_rng(1)
    for i in range(11):
        y, x = rng.integers(0, 40, 2)
        PILImage.fromarray(photo[y : y + 40, x : x + 48]).save(d / f"p{i:02d}.png")
    return d


def _faulty_cli(markers: Path, *args, **faults: str) -> subprocess.Popen:
    """``scnrestore ARGS`` in a child process, with the fault hook on and
    ``faults`` as SCNRESTORE_TEST_<NAME> variables."""
    markers.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(FAULTS), os.environ.get("PYTHONPATH")])),
        "SCNRESTORE_TEST_FAULTS": str(markers),
        "RAY_USAGE_STATS_ENABLED": "0",
        **{f"SCNRESTORE_TEST_{k.upper()}": v for k, v in faults.items()},
    }
    cmd = [sys.executable, "-m", "scnrestore", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 400) -> str:
    """The text of ``path`` once it appears (the run must still be going)."""
    t0 = time.time()
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < seconds, f"{path.name} never appeared"
        time.sleep(0.2)
    return path.read_text()


def _end(proc: subprocess.Popen, also: set[int] = frozenset()) -> None:
    """Kill what is left of a child run: its process and the ones it started
    (``also``: pids of its tree seen earlier), each by pid, Ray's only."""
    for pid in _descendants(proc.pid) | set(also):
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            if b"ray" in cmd or b"scnrestore" in cmd:
                os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def _is_our_ray_worker(pid: int, proc: subprocess.Popen) -> bool:
    cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
    return cmd.startswith(b"ray::") and pid in _descendants(proc.pid)


def _images(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.suffix == ".png")


def test_worker_killed_mid_run_every_output_once(eleven, ckpt_dir, tmp_path):
    """The issue's experiment: one worker, SIGKILLed while restoring the sixth
    of eleven photos (five outputs written). It is replaced, the sixth is
    restored again; stdout is the JSON summary alone and says 11 done."""
    out, markers = tmp_path / "out", tmp_path / "markers"
    proc = _faulty_cli(
        markers, "upscale", eleven, "-s", "2", "--model", ckpt_dir / "x2.safetensors",
        "-o", out, "--ray", "local", "--workers", "1", "--json", hold="p05.png",
    )  # fmt: skip
    try:
        pid = int(_wait_for(markers / "holding", proc))
        assert _is_our_ray_worker(pid, proc)
        assert _images(out) == [f"p{i:02d}.png" for i in range(5)]
        os.kill(pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=400)
    finally:
        _end(proc)
    assert proc.returncode == 0, stderr
    summary = json.loads(stdout)  # nothing but the summary on stdout
    assert "\x1b" not in stdout + stderr  # no colour off a terminal
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (11, 0, 0)
    by_name = {Path(f["input"]).name: f for f in summary["files"]}
    assert by_name["p05.png"]["attempts"] == 2
    assert all("attempts" not in f for n, f in by_name.items() if n != "p05.png")
    assert "p05.png: worker died while restoring (try 1 of 3), trying it again" in stderr
    # every output exactly once, whole (it decodes), and nothing else left
    assert _images(out) == [f"p{i:02d}.png" for i in range(11)]
    assert sorted(p.name for p in out.iterdir()) == [*_images(out), distributed.MANIFEST_NAME]
    for name in _images(out):
        with PILImage.open(out / name) as im:
            assert im.size == (96, 80)
            im.load()
    rows = [json.loads(line) for line in (out / distributed.MANIFEST_NAME).read_text().splitlines()]
    assert sorted(Path(r["input"]).name for r in rows) == [f"p{i:02d}.png" for i in range(11)]
    assert {r["status"] for r in rows} == {"ok"}


def test_poison_input_fails_after_its_tries_and_a_full_disk_fails_its_file(
    eleven, photo, ckpt_dir, tmp_path
):
    """A picture that ends its worker every time fails after --max-retries
    tries (3, the default), named, with the reason, in the summary and the
    manifest; the run goes on and ends with exit 1. A worker whose output
    cannot be written (RLIMIT_FSIZE standing in for a full disk) fails that
    file only, as a local run does. A worker that dies just after writing an
    output: its retry finds it there, and the file counts as done."""
    inputs, out, markers = tmp_path / "few", tmp_path / "out", tmp_path / "markers"
    inputs.mkdir()
    for name in ("p00.png", "p01.png", "p02.png"):
        shutil.copy(eleven / name, inputs / name)
    rng = np.random.default_rng(2)  # noise: its x2 PNG is far above the size limit
    big = rng.integers(0, 256, (160, 200, 3), dtype=np.uint8)
    PILImage.fromarray(big).save(inputs / "big.png")
    t0 = time.time()
    proc = _faulty_cli(
        markers, "upscale", inputs, "-s", "2", "--model", ckpt_dir / "x2.safetensors",
        "-o", out, "--ray", "local", "--workers", "1", "--json",
        poison="p01.png", fsize=str(200_000), die_after_write="p02.png",
    )  # fmt: skip
    try:
        stdout, stderr = proc.communicate(timeout=500)
    finally:
        _end(proc)
    assert time.time() - t0 < 500  # it ends (a retried-forever file never would)
    assert proc.returncode == 1, stderr
    summary = json.loads(stdout)
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (2, 2, 0)
    by_name = {Path(f["input"]).name: f for f in summary["files"]}
    poison = by_name["p01.png"]
    assert poison["status"] == "failed" and poison["attempts"] == 3
    assert poison["error"].startswith("worker died while restoring (3 attempts): pid ")
    assert len((markers / "poison.log").read_text().split()) == 3  # three workers it ended
    assert f"error: {inputs / 'p01.png'}: worker died while restoring (3 attempts)" in stderr
    full = by_name["big.png"]
    assert full["status"] == "failed" and full["error"].endswith("File too large")
    assert _images(out) == ["p00.png", "p02.png"]
    assert (markers / "died-after-write").exists()
    assert (by_name["p02.png"]["status"], by_name["p02.png"]["attempts"]) == ("ok", 2)
    assert by_name["p02.png"]["width"] == 96 and "attempts" not in by_name["p00.png"]
    rows = {
        Path(r["input"]).name: r
        for r in map(json.loads, (out / distributed.MANIFEST_NAME).read_text().splitlines())
    }
    assert rows["p01.png"]["status"] == "failed" and rows["p01.png"]["attempts"] == 3
    assert rows["p01.png"]["error"] == poison["error"]


def test_driver_killed_mid_run_then_a_rerun_does_the_rest_once(eleven, ckpt_dir, tmp_path):
    """The command line itself SIGKILLed while a worker restores the fourth of
    six photos: a re-run restores the three left, skips the three done (as
    existing before it) and writes none of them again."""
    inputs, out, markers = tmp_path / "six", tmp_path / "out", tmp_path / "markers"
    inputs.mkdir()
    for i in range(6):
        shutil.copy(eleven / f"p{i:02d}.png", inputs / f"p{i:02d}.png")
    args = ["upscale", inputs, "-s", "2", "--model", ckpt_dir / "x2.safetensors", "-o", out,
            "--ray", "local", "--workers", "1", "--json"]  # fmt: skip
    proc = _faulty_cli(markers, *args, hold="p03.png")
    seen: set[int] = set()
    try:
        _wait_for(markers / "holding", proc)
        seen = _descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        _end(proc, seen)  # the cluster it started, had it outlived it
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("p*.png")}
    assert sorted(before) == ["p00.png", "p01.png", "p02.png"]

    rerun = _faulty_cli(tmp_path / "markers2", *args)
    try:
        stdout, stderr = rerun.communicate(timeout=400)
    finally:
        _end(rerun)
    assert rerun.returncode == 0, stderr
    summary = json.loads(stdout)
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (3, 0, 3)
    status = {Path(f["input"]).name: f["status"] for f in summary["files"]}
    assert status == {f"p{i:02d}.png": "ok" if i >= 3 else "skipped" for i in range(6)}
    assert {n: (p.stat().st_ino, p.stat().st_mtime_ns) for n, p in
            ((n, out / n) for n in before)} == before  # fmt: skip
    assert _images(out) == [f"p{i:02d}.png" for i in range(6)]
    rows = (out / distributed.MANIFEST_NAME).read_text().splitlines()
    assert len(rows) == 6 and not list(out.glob(".*.part"))


def test_worker_memory_refuses_a_picture_too_large_by_name(cluster, photos, ckpt_dir, tmp_path):
    """With a worker memory, a picture whose header says it needs more (1.5 x
    its output + 1.5 GiB) fails by name before it runs; the others run."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    huge = tmp_path / "huge.png"  # a header that declares 10000 x 8000 pixels, no pixels
    ihdr = struct.pack(">IIBBBBB", 10000, 8000, 8, 2, 0, 0, 0)
    huge.write_bytes(b"\x89PNG\r\n\x1a\n" + b"".join(
        chunk(k, d) for k, d in ((b"IHDR", ihdr), (b"IDAT", b""), (b"IEND", b""))
    ))  # fmt: skip
    gib = 1 << 30
    spec = RestorerSpec("upscale", 2, str(ckpt_dir / "x2.safetensors"))
    report = distributed.restore_dataset(
        [str(photos / "p0.png"), str(huge)], spec,
        BatchOptions("upscale", scale=2, output=tmp_path / "out"),
        cluster=ClusterOptions(workers=1, worker_memory=2 * gib),
    )  # fmt: skip
    assert (report.done, report.failed) == (1, 1)
    [refused] = [j for j in report.jobs if j.status == "failed"]
    assert refused.src == huge and refused.error == (
        "too large for a worker: 10000 x 8000 pixels needs about 2.84 GiB "
        "(1.5 x the output + 1.5 GiB), --worker-memory is 2 GiB"
    )
    with pytest.raises(distributed.UnschedulableError, match="memory"):
        distributed.restore_dataset(
            [str(photos / "p1.png")], spec,
            BatchOptions("upscale", scale=2, output=tmp_path / "o2"),
            cluster=ClusterOptions(workers=1, worker_memory=1 << 50),
        )  # fmt: skip
    with pytest.raises(ValueError, match="a worker needs at least 1.5 GiB"):
        distributed.restore_dataset(
            [str(photos / "p1.png")], spec, BatchOptions("upscale", scale=2),
            cluster=ClusterOptions(worker_memory=gib),
        )  # fmt: skip
    assert not (tmp_path / "o2").exists()


def test_parse_size():
    assert distributed.parse_size("4G") == 4 << 30
    assert distributed.parse_size("1.5GiB") == 3 << 29
    assert distributed.parse_size("512m") == 512 << 20
    assert distributed.parse_size("2000000") == 2_000_000
    for bad in ("", "4X", "-1G", "0", "G"):
        with pytest.raises(ValueError, match="--worker-memory"):
            distributed.parse_size(bad)
