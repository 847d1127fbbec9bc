"""Files that outlive a run: the cache dir, and outputs that appear whole or not at all.

:func:`atomic_output` is how every file scnrestore writes (images, checkpoints,
the CPU probe) is put into place: no reader ever sees half a file, and a crash
leaves nothing behind. No torch, no network.
"""

from __future__ import annotations

import contextlib
import functools
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["cache_dir", "atomic_output", "leaves_no_trace"]

_UMASK = os.umask(0)
os.umask(_UMASK)


def cache_dir() -> Path:
    """``$SCNRESTORE_CACHE_DIR``, else the platformdirs user cache dir.

    Downloaded checkpoints live here, and so does the CPU precision probe
    (``cpu_precision.json``, see :mod:`scnrestore.runtime`).
    """
    env = os.environ.get("SCNRESTORE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("scnrestore"))


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; put it into place on success.

    Linux: the yielded path names an anonymous ``O_TMPFILE`` file (via
    ``/proc/self/fd``) that gets a name only once it is complete and fsynced,
    by a hard link straight to ``path`` (or to a temporary name then renamed
    over an existing ``path``). A crash, ``kill -9`` or Ctrl-C before that
    leaves nothing at all. Elsewhere: a hidden ``.NAME.XXXXXXXX.part`` file
    beside ``path``, removed on any exception and renamed into place.
    Open the yielded path; do not resolve it (``os.path.realpath``).
    """
    path = Path(path)
    fd = _anonymous_file(path.parent)
    if fd is None:
        with _named_output(path) as tmp:
            yield tmp
        return
    try:
        yield Path(f"/proc/self/fd/{fd}")
        os.fchmod(fd, 0o666 & ~_UMASK)
        os.fsync(fd)
        _link_into_place(fd, path)
    finally:
        os.close(fd)


def _anonymous_file(directory: Path) -> int | None:
    """An O_TMPFILE descriptor in ``directory``, or None where that is unsupported."""
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return os.open(directory, flag | os.O_RDWR, 0o600)
    except OSError:  # file system without O_TMPFILE (or no such dir: named path says so)
        return None


def _link_into_place(fd: int, path: Path) -> None:
    src = f"/proc/self/fd/{fd}"
    dir_fd = os.open(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        # linkat(AT_SYMLINK_FOLLOW), as open(2) shows for O_TMPFILE; os.link uses
        # plain link(), which would link the /proc symlink itself, when no dir_fd.
        link = functools.partial(os.link, src, dst_dir_fd=dir_fd, follow_symlinks=True)
        try:
            link(path.name)  # atomic; fails if path exists
            return
        except FileExistsError:
            pass
        except OSError:  # linking refused here: copy into a named temporary file
            with _named_output(path) as tmp, open(src, "rb") as f, open(tmp, "wb") as g:
                while chunk := f.read(1 << 20):
                    g.write(chunk)
            return
        # Replacing an existing file (--overwrite): a name for the instant before rename.
        for _ in range(100):
            tmp = f".{_name_start(path.name)}.{os.urandom(4).hex()}.part"
            try:
                link(tmp)
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - 100 collisions of 32 random bits
            raise FileExistsError(f"cannot find a free temporary name beside {path}")
        try:
            os.replace(tmp, path.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)


def _name_start(name: str, limit: int = 64) -> str:
    """The longest start of ``name`` that takes at most ``limit`` bytes on disk.

    Bytes, not characters: names are limited to 255 bytes, and 64 emoji are
    256. The cut falls between characters (an undecodable byte of a non-UTF-8
    name counts as one).
    """
    size = 0
    for i, ch in enumerate(name):
        size += len(os.fsencode(ch))
        if size > limit:
            return name[:i]
    return name


@contextlib.contextmanager
def _named_output(path: Path) -> Iterator[Path]:
    # The name is cut so that the temporary name fits where ``path`` fits.
    prefix = f".{_name_start(path.name)}."
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=".part", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the file the mode a plain open() would.
        os.chmod(tmp_path, 0o666 & ~_UMASK)
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        raise


def leaves_no_trace(directory: str | os.PathLike[str]) -> bool:
    """True when :func:`atomic_output` in ``directory`` writes an anonymous file,
    which vanishes if the process exits before it is put into place."""
    fd = _anonymous_file(Path(directory))
    if fd is None:
        return False
    os.close(fd)
    return True
