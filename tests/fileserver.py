"""A real HTTP file server on 127.0.0.1 for the registry and downloader tests,
and the helpers around it (an isolated cache and user registry, payloads).

The server runs in a thread of the test process (port 0), implements Range
requests itself, and logs every request, so the tests can see what the
downloader asked for. Payloads are random bytes; their sha256 is computed here.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from scnrestore.weights.download import retrieve

ROOT = Path(__file__).resolve().parents[1]


# -- a real HTTP server ---------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        srv: FileServer = self.server.owner  # type: ignore[attr-defined]
        path = self.path.split("?")[0]
        rng = self.headers.get("Range")
        flags = srv.flags.get(path, set())
        data = srv.files.get(path)
        with srv.lock:
            seen = sum(1 for p, _, _ in srv.log if p == path)
        if data is None:
            return self._reply(srv, path, rng, 404, b"not found")
        if "503-once" in flags and seen == 0:
            return self._reply(srv, path, rng, 503, b"busy")
        if "stall-once" in flags and seen == 0:
            srv.record(path, rng, 200)  # headers and half the file, then silence
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            time.sleep(1.5)
            self.close_connection = True
            return
        if "cut-once" in flags and seen == 0:
            # Announce the whole file, send half of it, hang up.
            srv.record(path, rng, 200)
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if flags & {"cut-once", "stall-once"} and "no-range" not in flags and not rng:
            return self._reply(srv, path, rng, 400, b"expected a Range request to resume")
        if rng and "no-range" not in flags:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                return self._reply(srv, path, rng, 416, b"")
            srv.record(path, rng, 206)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            return self._body(data[start:], "slow" in flags)
        srv.record(path, rng, 200)
        self.send_response(200)
        self._body(data, "slow" in flags)

    def _body(self, body: bytes, slow: bool) -> None:
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        step = 8192 if slow else len(body) or 1
        for i in range(0, len(body), step):
            self.wfile.write(body[i : i + step])
            if slow:
                self.wfile.flush()
                time.sleep(0.03)

    def _reply(self, srv: FileServer, path: str, rng: str | None, code: int, body: bytes) -> None:
        srv.record(path, rng, code)
        self.send_response(code)
        self._body(body, False)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hung up (timeout tests): no tracebacks


class FileServer:
    """Serves ``files`` (URL path -> bytes); ``flags`` per path change its manners:
    ``cut-once`` (first answer stops half-way, later ones must be Range requests),
    ``stall-once`` (likewise, but goes silent), ``no-range`` (ignores Range),
    ``503-once``, ``slow``. ``log`` holds
    (path, Range header, status) of every request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.flags: dict[str, set[str]] = {}
        self.log: list[tuple[str, str | None, int]] = []
        self.lock = threading.Lock()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add(self, path: str, data: bytes, *flags: str) -> str:
        self.files[path] = data
        self.flags[path] = set(flags)
        return self.url + path

    def record(self, path: str, rng: str | None, status: int) -> None:
        with self.lock:
            self.log.append((path, rng, status))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def payload(n: int = 100_000, seed: int = 0) -> tuple[bytes, str]:
    data = random.Random(seed).randbytes(n)
    return data, hashlib.sha256(data).hexdigest()


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # strings, numbers, booleans and lists read the same in TOML


def write_registry(path: Path, models: dict[str, dict[str, Any]], **top: Any) -> Path:
    lines = [f"{k} = {_toml(v)}" for k, v in top.items()] + ["[models]"]
    for name, fields in models.items():
        lines.append(f"[models.{json.dumps(name)}]")
        lines += [f"{k} = {_toml(v)}" for k, v in fields.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def entry(data: bytes, file: str = "m.bin", **extra: Any) -> dict[str, Any]:
    fields: dict[str, Any] = dict(
        task="denoise", file=file, sha256=hashlib.sha256(data).hexdigest(), size=len(data)
    )
    return fields | extra


def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def get(url: str, data: bytes, sha: str, folder: Path, **kw: Any) -> Path:
    return retrieve("m.bin", sha256=sha, size=len(data), urls=[url], cache=folder, **kw)
