"""The exception types of scnrestore, and the one-line form of their messages
(no imports, so any module may use them)."""

from __future__ import annotations

__all__ = [
    "RegistryError",
    "DownloadError",
    "CheckpointError",
    "ImageReadError",
    "first_line",
    "one_line",
]


class RegistryError(ValueError):
    """A malformed registry, an unknown model, or a file that is missing."""


class DownloadError(RegistryError):
    """A model file that cannot be had: offline, unreachable, or corrupt."""


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used (unreadable, unsafe, not an SCN)."""


class ImageReadError(ValueError):
    """An input file that is not a readable image (the message says why)."""


def first_line(exc: BaseException, text: str | None = None) -> str:
    """The first line of an exception's message, or of ``text`` said about it
    (the exception's type's name when that is empty): the one-line error of
    every message scnrestore passes on."""
    lines = (str(exc) if text is None else text).strip().splitlines()
    return lines[0].strip() if lines and lines[0].strip() else type(exc).__name__


def one_line(msg: str) -> str:
    """``msg`` with control characters (a newline in a file name, say) escaped,
    and undecodable file-name bytes shown as ``\\udcXX``: one line, always."""
    if msg.isprintable():
        return msg
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in msg)
