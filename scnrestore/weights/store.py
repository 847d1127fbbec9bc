"""Where a registry entry's file is: embedded, cached, or fetched (downloaded and
verified by :mod:`scnrestore.weights.download`); names and paths resolved to files."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Any

from ..errors import RegistryError
from ..files import cache_dir
from ..tasks import SCHEDULES, TOLD_LEVEL
from .download import DownloadProgress, cached, check_file, is_offline, retrieve, url_problem
from .registry import ARCH_KEYS, EMBEDDED_DIR, ModelEntry, load_registry

__all__ = ["download_urls", "local_path", "where", "fetch", "verify", "describe", "resolve"]


def _join(base: str, rel: str) -> str:
    return base.rstrip("/") + "/" + rel.lstrip("/")


def download_urls(entry: ModelEntry) -> list[str]:
    """The URLs to try for ``entry``, in order.

    ``$SCNRESTORE_WEIGHTS_URL`` replaces the registry's ``base_url``, and
    ``$SCNRESTORE_WEIGHTS_URL/FILE`` is tried first (a mirror or an air-gapped
    server holding the files by name). Then the entry's ``urls`` in order,
    relative ones joined to the base; an entry without ``urls`` uses
    ``base_url/FILE``.
    """
    env = os.environ.get("SCNRESTORE_WEIGHTS_URL", "").strip()
    if env and (problem := url_problem(env)):
        raise RegistryError(f"SCNRESTORE_WEIGHTS_URL: {problem}")
    base = env or entry.base_url
    wanted = ([entry.file] if env or not entry.urls else []) + list(entry.urls)
    out: list[str] = []
    for u in wanted:
        if not urllib.parse.urlsplit(u).scheme:
            if not base:
                raise RegistryError(
                    f"model {entry.name}: no URL for {u!r}: the registry has no base_url "
                    "(add urls or base_url, or set SCNRESTORE_WEIGHTS_URL)"
                )
            u = _join(base, u)
        if u not in out:
            out.append(u)
    return out


def local_path(entry: ModelEntry) -> Path | None:
    """The usable local file of ``entry`` (embedded, or cached at the right size)."""
    if entry.embedded:
        p = EMBEDDED_DIR / entry.file
        return p if p.is_file() else None

    return cached(entry.file, entry.size)


def where(entry: ModelEntry) -> str:
    """``embedded``, ``cached`` or ``remote``."""
    if entry.embedded:
        return "embedded"
    return "cached" if local_path(entry) else "remote"


def fetch(
    entry: ModelEntry, *, offline: bool | None = None, progress: DownloadProgress | None = None
) -> Path:
    """The local file of ``entry``: embedded, else cached, else downloaded and verified.

    Raises :class:`~scnrestore.errors.DownloadError` (a RegistryError) when it
    cannot be had; ``offline`` (default: ``$SCNRESTORE_OFFLINE``) forbids the
    network; ``progress(file, done, size)`` is called as a download goes.
    """
    if entry.embedded:
        path = EMBEDDED_DIR / entry.file
        if not path.is_file():
            raise RegistryError(f"model {entry.name}: embedded file {path} is missing")
        if path.stat().st_size != entry.size:
            raise RegistryError(
                f"model {entry.name}: embedded file {path} has {path.stat().st_size} bytes, "
                f"the registry says {entry.size}; reinstall scnrestore"
            )
        return path

    hit = cached(entry.file, entry.size)
    if hit is not None:
        return hit
    urls = [] if is_offline(offline) else download_urls(entry)
    return retrieve(
        entry.file, sha256=entry.sha256, size=entry.size, urls=urls, offline=offline,
        progress=progress,
    )  # fmt: skip


def verify(entry: ModelEntry) -> tuple[str, Path, str]:
    """Re-hash the local file of ``entry``: (``good|bad|missing``, path, detail).

    A bad file in the cache is deleted, so the next use downloads it again; a
    bad embedded file is reported only.
    """
    path = EMBEDDED_DIR / entry.file if entry.embedded else cache_dir() / entry.file
    if not path.is_file():
        return "missing", path, "not downloaded" if not entry.embedded else "file is missing"
    problem = check_file(path, sha256=entry.sha256, size=entry.size)
    if problem is None:
        return "good", path, ""
    if not entry.embedded:
        path.unlink(missing_ok=True)
        problem += "; deleted"
    return "bad", path, problem


def describe(entry: ModelEntry) -> dict[str, Any]:
    """Every field of ``entry`` as plain JSON-able data, with where its file is."""
    local = local_path(entry)
    try:
        urls: list[str] | str = [] if entry.embedded else download_urls(entry)
    except RegistryError as exc:
        urls = f"error: {exc}"
    return {
        "name": entry.name,
        "task": entry.task,
        "scale": entry.scale,
        **{
            k: entry.raw[k]
            for k in ("sigma_range", "quality_range", "joint_range", "plain_from")
            if k in entry.raw
        },
        **{k: entry.raw[k] for k in ARCH_KEYS if k in entry.raw},
        "file": entry.file,
        "size": entry.size,
        "sha256": entry.sha256,
        "licence": entry.raw.get("licence"),
        "provenance": entry.raw.get("provenance"),
        "quality": entry.raw.get("quality"),
        **{
            k: entry.raw[k]
            for k in ("quality_note", "steps", "data", "status", *SCHEDULES, TOLD_LEVEL)
            if k in entry.raw
        },
        "embedded": entry.embedded,
        "urls": urls,
        "where": "embedded" if entry.embedded else ("cached" if local else "remote"),
        "path": str(local) if local else None,
        "registry": str(entry.source) if entry.source else None,
    }


def resolve(
    name_or_path: str, *, offline: bool | None = None, progress: DownloadProgress | None = None
) -> tuple[Path, dict[str, Any], ModelEntry | None]:
    """Map a model name or a checkpoint path to (file, hyperparameters, entry).

    A path that exists wins over a registry name. A registry name gives its
    embedded file, else its cached file, else downloads it (see :func:`fetch`).
    """
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p, {}, None
    registry = load_registry()
    entry = registry.get(name_or_path)
    if entry is None:
        if p.suffix or os.sep in name_or_path or "/" in name_or_path:
            raise RegistryError(f"{name_or_path}: no such checkpoint file")
        known = ", ".join(sorted(registry)) or "none yet"
        raise RegistryError(f"unknown model {name_or_path!r} (known: {known})")
    return fetch(entry, offline=offline, progress=progress), dict(entry.hparams), entry
