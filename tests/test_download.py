"""The downloader (scnrestore.weights.download), against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time

import pytest
from fileserver import (
    cache,
    get,
    payload,
)

from scnrestore.weights.download import DownloadError, _excl_lock, retrieve

pytestmark = pytest.mark.usefixtures("isolated")


# -- the downloader -------------------------------------------------------------


def test_download_then_cached_run_makes_no_request(server, tmp_path):
    data, sha = payload()
    url = server.add("/m.bin", data)
    path = get(url, data, sha, cache(tmp_path))
    assert path == cache(tmp_path) / "m.bin" and path.read_bytes() == data
    assert server.log == [("/m.bin", None, 200)]
    assert get(url, data, sha, cache(tmp_path)) == path
    assert len(server.log) == 1  # the second run did not touch the network
    assert sorted(os.listdir(cache(tmp_path))) == ["m.bin"]  # no .part, no .lock


def test_resume_after_connection_cut(server, tmp_path):
    data, sha = payload(300_001)
    url = server.add("/m.bin", data, "cut-once")
    path = get(url, data, sha, cache(tmp_path), retries=2, backoff=0.01)
    assert path.read_bytes() == data
    (first, second) = server.log
    assert first == ("/m.bin", None, 200) and second[0::2] == ("/m.bin", 206)
    start = int(second[1].removeprefix("bytes=").removesuffix("-"))  # what had arrived
    assert 0 < start <= len(data) // 2
    assert sorted(os.listdir(cache(tmp_path))) == ["m.bin"]


def test_resume_in_a_later_run(server, tmp_path):
    data, sha = payload(200_000)
    url = server.add("/m.bin", data, "cut-once")
    with pytest.raises(DownloadError, match="cannot download m.bin"):
        get(url, data, sha, cache(tmp_path), retries=0)
    part = cache(tmp_path) / "m.bin.part"
    have = part.stat().st_size
    assert 0 < have <= 100_000 and not (cache(tmp_path) / "m.bin").exists()
    assert get(url, data, sha, cache(tmp_path), retries=0).read_bytes() == data
    assert server.log[-1] == ("/m.bin", f"bytes={have}-", 206) and not part.exists()


def test_read_timeout_then_resume(server, tmp_path):
    data, sha = payload(200_000)
    url = server.add("/m.bin", data, "stall-once")
    with pytest.raises(DownloadError, match="timed out") as exc:
        get(url, data, sha, cache(tmp_path), retries=0, timeout=(5, 0.3))
    assert "\n" not in str(exc.value) and "HTTPConnectionPool" not in str(exc.value)
    assert get(url, data, sha, cache(tmp_path), timeout=(5, 0.3)).read_bytes() == data
    assert server.log[-1][1] is not None and server.log[-1][2] == 206


def test_server_ignoring_range_starts_over(server, tmp_path):
    data, sha = payload(150_000)
    url = server.add("/m.bin", data, "cut-once", "no-range")
    path = get(url, data, sha, cache(tmp_path), retries=2, backoff=0.01)
    assert path.read_bytes() == data
    # The retry asked for the rest; the server sent everything (200); no duplication.
    assert [(p, r is not None, s) for p, r, s in server.log] == [
        ("/m.bin", False, 200),
        ("/m.bin", True, 200),
    ]


def test_transient_5xx_is_retried_on_the_same_mirror(server, tmp_path):
    data, sha = payload()
    url = server.add("/m.bin", data, "503-once")
    assert get(url, data, sha, cache(tmp_path), retries=1, backoff=0.01).read_bytes() == data
    assert [s for _, _, s in server.log] == [503, 200]


def test_wrong_hash_is_rejected_and_cache_left_clean(server, tmp_path):
    data, _ = payload()
    evil = bytearray(data)
    evil[1234] ^= 0xFF
    url = server.add("/m.bin", bytes(evil))
    with pytest.raises(DownloadError, match="sha256") as exc:
        get(url, data, hashlib.sha256(data).hexdigest(), cache(tmp_path), backoff=0.01)
    assert "m.bin" in str(exc.value) and "\n" not in str(exc.value)
    assert os.listdir(cache(tmp_path)) == []  # no final file, no .part, no .lock


def test_size_mismatch_announced_by_server_fails_fast(server, tmp_path):
    data, sha = payload()
    url = server.add("/m.bin", data + b"extra")
    with pytest.raises(DownloadError, match="registry says 100000"):
        get(url, data, sha, cache(tmp_path), backoff=0.01)
    assert len(server.log) == 1 and os.listdir(cache(tmp_path)) == []


def test_404_on_first_mirror_falls_through_to_the_second(server, tmp_path):
    data, sha = payload()
    good = server.add("/b/m.bin", data)
    path = retrieve(
        "m.bin",
        sha256=sha,
        size=len(data),
        urls=[server.url + "/a/m.bin", good],
        cache=cache(tmp_path),
        backoff=0.01,
    )
    assert path.read_bytes() == data
    assert server.log == [("/a/m.bin", None, 404), ("/b/m.bin", None, 200)]


def test_all_mirrors_failing_gives_one_line_naming_each(server, tmp_path):
    data, sha = payload(1000)
    urls = [server.url + "/a/m.bin", "http://127.0.0.1:9/m.bin"]  # 404, then refused
    with pytest.raises(DownloadError) as exc:
        retrieve(
            "m.bin",
            sha256=sha,
            size=1000,
            urls=urls,
            cache=cache(tmp_path),
            retries=1,
            backoff=0.01,
            timeout=(2, 2),
        )
    msg = str(exc.value)
    assert "\n" not in msg and "HTTP 404" in msg and "127.0.0.1:9" in msg and "2 attempts" in msg
    assert "Connection refused" in msg and "HTTPConnectionPool" not in msg


def test_cached_file_of_wrong_size_counts_as_missing(server, tmp_path):
    data, sha = payload()
    url = server.add("/m.bin", data)
    cache(tmp_path).mkdir()
    (cache(tmp_path) / "m.bin").write_bytes(data[:10])  # truncated by someone else
    assert get(url, data, sha, cache(tmp_path)).read_bytes() == data
    assert len(server.log) == 1


def test_file_url(tmp_path):
    data, sha = payload()
    src = tmp_path / "mirror dir" / "m.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    assert get(src.as_uri(), data, sha, cache(tmp_path)).read_bytes() == data


def test_offline_never_touches_the_network(server, tmp_path, monkeypatch):
    data, sha = payload()
    url = server.add("/m.bin", data)
    monkeypatch.setenv("SCNRESTORE_OFFLINE", "1")
    with pytest.raises(DownloadError) as exc:
        get(url, data, sha, cache(tmp_path))
    assert "m.bin" in str(exc.value) and str(cache(tmp_path) / "m.bin") in str(exc.value)
    assert server.log == []
    get(url, data, sha, cache(tmp_path), offline=False)  # the argument wins
    assert get(url, data, sha, cache(tmp_path)).read_bytes() == data  # cached: fine offline


def test_two_processes_fetch_once_and_both_get_the_file(server, tmp_path):
    data, sha = payload(250_000)
    url = server.add("/m.bin", data, "slow")  # about 1 s to send
    code = (
        "import sys\nfrom pathlib import Path\nfrom scnrestore.weights.download import retrieve\n"
        "a = sys.argv[1:]\n"
        "print(retrieve('m.bin', sha256=a[0], size=int(a[1]), urls=[a[2]], cache=Path(a[3]),"
        " backoff=0.01))\n"
    )
    args = [sys.executable, "-c", code, sha, str(len(data)), url, str(cache(tmp_path))]
    procs = [
        subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.strip() == str(cache(tmp_path) / "m.bin")
    assert (cache(tmp_path) / "m.bin").read_bytes() == data
    assert len(server.log) == 1  # one download; the other process waited for it
    assert os.listdir(cache(tmp_path)) == ["m.bin"]


def test_excl_lock_fallback_is_exclusive(tmp_path):
    lock = tmp_path / "x.lock"
    inside, overlaps = [0], []

    def worker() -> None:
        for _ in range(5):
            with _excl_lock(lock, poll=0.001):
                inside[0] += 1
                overlaps.append(inside[0])
                time.sleep(0.002)
                inside[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [1] * 15 and not lock.exists()
