"""Downloading checkpoint files that can be trusted (small and pooch-like).

:func:`retrieve` takes a file name, its sha256, its size and mirror URLs, and
returns the path of a verified copy in the cache, downloading it if needed:

- The cache is ``platformdirs.user_cache_dir("scnrestore")``, or
  ``$SCNRESTORE_CACHE_DIR``. A cached file of the right size is used as is
  (it was hashed when it arrived; ``scnrestore models verify`` re-hashes); one
  of the wrong size counts as missing.
- Offline (``offline=True`` or ``$SCNRESTORE_OFFLINE=1``) never touches the
  network; a missing file is an error naming it and where it was expected.
- Bytes stream into ``NAME.part`` in the cache dir. An interrupted download
  resumes with an HTTP Range request when the server answers 206, and starts
  over when it answers 200. Size and sha256 are checked, then ``os.replace``
  makes the file appear whole; a file with the wrong hash is deleted.
- Each mirror gets a few attempts (connect and read timeouts, exponential
  backoff), then the next mirror is tried. Proxies come from the environment,
  as requests does by default. ``file://`` URLs are copied.
- ``NAME.lock`` (``fcntl.flock``; ``O_EXCL`` polling where fcntl is missing)
  makes concurrent processes download once: the others wait, then find the file.

requests is imported only when something is downloaded; torch never. Nothing
here draws: a caller that shows progress passes ``progress`` (see :func:`retrieve`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .._version import __version__
from ..errors import DownloadError, first_line
from ..files import cache_dir

try:
    import fcntl
except ImportError:  # Windows: O_EXCL lock files instead
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    import requests

__all__ = [
    "DownloadError",
    "is_safe_name",
    "url_problem",
    "retrieve",
    "cache_dir",
    "cached",
    "is_offline",
    "check_file",
    "file_sha256",
    "DEFAULT_TIMEOUT",
    "DEFAULT_RETRIES",
    "DEFAULT_BACKOFF",
    "DownloadProgress",
]

DEFAULT_TIMEOUT = (10.0, 60.0)  # seconds: connect, read (between two bytes)
DEFAULT_RETRIES = 3  # attempts per mirror after the first
DEFAULT_BACKOFF = 1.0  # seconds before the first retry, doubled each time
CHUNK = 1 << 16
#: What a download reports as bytes arrive: (file name, bytes done, bytes in all).
DownloadProgress = Callable[[str, int, int], None]
RETRY_STATUS = frozenset((408, 425, 429, 500, 502, 503, 504))
_TRUE = ("1", "true", "yes", "on")
URL_SCHEMES = ("http", "https", "file")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")


def is_safe_name(name: str) -> bool:
    """A plain name (letters, digits, ``. _ + -``): no path separator, no ``..``.

    Model and file names must pass, so that nothing can escape the cache dir.
    """
    return bool(_SAFE_NAME.fullmatch(name)) and ".." not in name


def url_problem(url: str, *, relative_ok: bool = False) -> str | None:
    """Why ``url`` is refused (None when it is fine): http, https and file only."""
    parts = urllib.parse.urlsplit(url)
    if not parts.scheme:
        if relative_ok and url and not parts.netloc:
            return None
        return f"{url!r} is not an absolute URL"
    if parts.scheme not in URL_SCHEMES:
        return f"{url!r}: only http, https and file URLs are accepted"
    if parts.scheme != "file" and not parts.netloc:
        return f"{url!r} has no host"
    return None


class _Retry(Exception):
    """A failure worth another attempt on the same mirror."""


class _NextMirror(Exception):
    """A failure this mirror will not get over."""


def is_offline(offline: bool | None = None) -> bool:
    """``offline`` when given, else whether ``$SCNRESTORE_OFFLINE`` is set (1, true, yes)."""
    if offline is not None:
        return offline
    return os.environ.get("SCNRESTORE_OFFLINE", "").strip().lower() in _TRUE


def cached(fname: str, size: int, cache: Path | None = None) -> Path | None:
    """The cached file ``fname`` if it is there with the expected size, else None."""
    path = (cache if cache is not None else cache_dir()) / fname
    try:
        return path if path.is_file() and path.stat().st_size == size else None
    except OSError:
        return None


def file_sha256(path: Path) -> str:
    """The sha256 of a file, in hex."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_file(path: Path, *, sha256: str, size: int) -> str | None:
    """Why ``path`` is not the expected file (None when size and sha256 match)."""
    actual = path.stat().st_size
    if actual != size:
        return f"size {actual} bytes, expected {size}"
    digest = file_sha256(path)
    if digest != sha256.lower():
        return f"sha256 {digest}, expected {sha256.lower()}"
    return None


def retrieve(
    fname: str,
    *,
    sha256: str,
    size: int,
    urls: Sequence[str],
    cache: Path | None = None,
    offline: bool | None = None,
    progress: DownloadProgress | None = None,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> Path:
    """The path of a verified copy of ``fname`` in the cache, downloaded if needed.

    ``urls`` are mirrors, tried in order; each gets ``1 + retries`` attempts,
    waiting ``backoff``, ``2 * backoff``, ... seconds in between. ``progress``
    is called as bytes arrive, ``progress(fname, done, size)`` (nothing is
    drawn here: the command line draws its bar). Raises
    :class:`DownloadError` with a one-line message.
    """
    if not is_safe_name(fname) or fname.endswith((".part", ".lock")):
        raise DownloadError(f"{fname!r}: not a plain file name; refused")
    folder = cache if cache is not None else cache_dir()
    final = folder / fname
    if cached(fname, size, folder):
        return final
    if is_offline(offline):
        raise DownloadError(
            f"{fname} is not in the cache (expected at {final}) and downloads are off "
            "(offline mode: SCNRESTORE_OFFLINE / --offline)"
        )
    if not urls:
        raise DownloadError(f"{fname}: no URL to download it from")
    for url in urls:
        if problem := url_problem(url):
            raise DownloadError(f"{fname}: {problem}")
    failures = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with _lock(folder / f"{fname}.lock") as heartbeat:
            if cached(fname, size, folder):  # another process fetched it meanwhile
                return final
            part = folder / f"{fname}.part"
            with _Transfer(part, sha256, size, progress, timeout, heartbeat) as t:
                for url in urls:
                    try:
                        t.from_mirror(url, retries, backoff)
                    except _NextMirror as exc:
                        failures.append(f"{url}: {exc}")
                        continue
                    os.replace(t.part, final)
                    return final
    except OSError as exc:
        raise DownloadError(f"{fname}: {exc.strerror or exc}: {exc.filename or folder}") from None
    raise DownloadError(f"cannot download {fname}: " + "; ".join(failures))


class _Transfer:
    """Fetching one file into its ``.part`` file, from one mirror after another."""

    def __init__(
        self,
        part: Path,
        sha256: str,
        size: int,
        progress: DownloadProgress | None,
        timeout: tuple[float, float],
        heartbeat: Callable[[], None],
    ) -> None:
        self.part = part
        self.sha256 = sha256.lower()
        self.size = size
        self.timeout = timeout
        self.heartbeat = heartbeat
        self.name = part.name.removesuffix(".part")
        self.progress = progress
        self._session: requests.Session | None = None

    def __enter__(self) -> _Transfer:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._session is not None:
            self._session.close()

    def from_mirror(self, url: str, retries: int, backoff: float) -> None:
        """Bring ``part`` to the verified file from ``url``, or raise _NextMirror."""
        last: Exception | None = None
        for attempt in range(retries + 1):
            if attempt:
                time.sleep(backoff * 2 ** (attempt - 1))
            try:
                start = self._fetch(url)
            except _Retry as exc:
                last = exc
                continue
            problem = check_file(self.part, sha256=self.sha256, size=self.size)
            if problem is None:
                return
            self.part.unlink(missing_ok=True)
            last = _NextMirror(f"{problem}; the file was deleted")
            if not start:
                raise last
            # The resumed bytes may be those of another file: once more from zero.
        n = retries + 1
        raise _NextMirror(f"{last} (after {n} attempt{'s' if n > 1 else ''})")

    def _fetch(self, url: str) -> int:
        """Append the missing bytes to ``part``; returns the offset it resumed from."""
        have = self.part.stat().st_size if self.part.exists() else 0
        if have > self.size:
            self.part.unlink()
            have = 0
        if have == self.size:  # complete, but not renamed yet
            return have
        if urllib.parse.urlsplit(url).scheme == "file":
            return self._copy(url, have)
        return self._http(url, have)

    def _copy(self, url: str, have: int) -> int:
        parts = urllib.parse.urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise _NextMirror(f"file URL on another host ({parts.netloc})")
        path = Path(urllib.request.url2pathname(parts.path))
        try:
            src = open(path, "rb")
        except OSError as exc:
            raise _NextMirror(exc.strerror or str(exc)) from None
        with src:
            total = os.fstat(src.fileno()).st_size
            if total != self.size:
                raise _NextMirror(f"the file has {total} bytes, the registry says {self.size}")
            src.seek(have)
            self._write(iter(lambda: src.read(CHUNK), b""), have, "ab")
        return have

    def _http(self, url: str, have: int) -> int:
        import requests

        if self._session is None:
            self._session = requests.Session()  # trust_env: proxies from the environment
            self._session.headers["User-Agent"] = f"scnrestore/{__version__}"
        headers = {"Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            with self._session.get(url, headers=headers, stream=True, timeout=self.timeout) as r:
                ranged = r.headers.get("Content-Range", "").startswith(f"bytes {have}-")
                if r.status_code == 206 and ranged:
                    start = have
                elif r.status_code == 200:
                    start = 0  # the server ignored the range: start over
                elif r.status_code in (206, 416):
                    self.part.unlink(missing_ok=True)
                    raise _Retry(f"HTTP {r.status_code} to bytes={have}-; starting over")
                elif r.status_code in RETRY_STATUS:
                    raise _Retry(f"HTTP {r.status_code} {r.reason}")
                else:
                    raise _NextMirror(f"HTTP {r.status_code} {r.reason}")
                length = r.headers.get("Content-Length")
                if length is not None and length.isdigit() and start + int(length) != self.size:
                    raise _NextMirror(
                        f"the server offers {start + int(length)} bytes, "
                        f"the registry says {self.size}"
                    )
                self._write(r.iter_content(CHUNK), start, "ab" if start else "wb")
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,  # the connection was cut mid-body
        ) as exc:
            raise _Retry(_gist(exc)) from None
        except requests.RequestException as exc:
            raise _NextMirror(_gist(exc)) from None
        return start

    def _show(self, done: int) -> None:
        if self.progress is not None:
            self.progress(self.name, done, self.size)

    def _write(self, chunks: Iterable[bytes], start: int, mode: str) -> None:
        """Write ``chunks`` to ``part`` from offset ``start``; complete or raise _Retry."""
        done = start
        self._show(done)
        f: IO[bytes]
        with open(self.part, mode) as f:
            for chunk in chunks:
                done += len(chunk)
                if done > self.size:
                    f.close()
                    self.part.unlink(missing_ok=True)
                    raise _NextMirror(f"more than the registry's {self.size} bytes")
                f.write(chunk)
                self._show(done)
                self.heartbeat()
            f.flush()
            os.fsync(f.fileno())
        if done < self.size:
            raise _Retry(f"the transfer stopped after {done} of {self.size} bytes")


def _gist(exc: BaseException) -> str:
    """The gist of a requests / urllib3 error (they nest), on one line."""
    while exc.args and isinstance(exc.args[0], BaseException):
        exc = exc.args[0]  # ChunkedEncodingError(ProtocolError(...)), ConnectionError(...)
    if isinstance(getattr(exc, "reason", None), BaseException):
        exc = exc.reason  # type: ignore[attr-defined]  # MaxRetryError -> the real cause
    text = next((a for a in exc.args if isinstance(a, str)), str(exc))
    return first_line(exc, re.sub(r"^HTTPS?Connection(Pool)?\(.*?\): ", "", text.strip()))


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[Callable[[], None]]:
    """Hold ``path`` as an exclusive lock between processes; yields a heartbeat.

    The lock file is removed on release. With fcntl the holder unlinks it while
    still holding it, and a waiter that then gets a lock on the unlinked file
    tries again, so two processes never both hold the lock.
    """
    if fcntl is None:
        with _excl_lock(path) as heartbeat:
            yield heartbeat
        return
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            break
        os.close(fd)  # the previous holder removed it: lock the new file
    try:
        yield lambda: None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


@contextlib.contextmanager
def _excl_lock(
    path: Path, poll: float = 0.2, stale_after: float = 120.0
) -> Iterator[Callable[[], None]]:
    """The fallback where fcntl is missing: a file created with O_EXCL.

    The holder touches it while it works (the heartbeat); one untouched for
    ``stale_after`` seconds was left by a process that died, and is removed.
    """
    while True:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            break
        except FileExistsError:
            try:
                if time.time() - path.stat().st_mtime > stale_after:
                    path.unlink()
                    continue
            except FileNotFoundError:
                continue
            time.sleep(poll)
    last = time.monotonic()

    def heartbeat() -> None:
        nonlocal last
        if time.monotonic() - last > stale_after / 4:
            last = time.monotonic()
            with contextlib.suppress(OSError):
                os.utime(path)

    try:
        yield heartbeat
    finally:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
