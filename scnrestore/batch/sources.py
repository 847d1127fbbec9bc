"""Inputs beyond files, folders and globs (a Ray run's): list files (``.txt`` /
``.lst``, one path or URI a line) and URIs pyarrow can list (``s3://``,
``gs://``, ``hdfs://``, ``file://``). pyarrow is imported only for a URI."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..imageio import INPUT_EXTS

__all__ = ["LIST_EXTS", "Sources", "is_uri", "split_sources"]

#: Inputs with these extensions are lists of paths, one a line (``#`` comments).
LIST_EXTS = (".txt", ".lst")


def is_uri(s: str) -> bool:
    return "://" in s


@dataclass
class Sources:
    """The inputs of a run, split: ``local`` (files, folders, globs, for
    expand_inputs), ``pairs`` (listed files and objects, each its own input),
    ``uris`` ({object path: its URI}) and ``failed`` (URIs naming nothing)."""

    local: list[str] = field(default_factory=list)
    pairs: list[tuple[Path, Path, bool]] = field(default_factory=list)  # as batch.Source
    uris: dict[Path, str] = field(default_factory=dict)
    failed: list[tuple[Path, str]] = field(default_factory=list)  # (URI, why)

    def add_object(self, src: Path, base: Path, scheme: str, named: bool) -> None:
        self.uris[src] = f"{scheme}://{src}"
        self.pairs.append((src, base, named))


def split_sources(inputs: list[str], output: Path | None, recursive: bool) -> Sources:
    """List files read and URIs listed; ValueError for an object-store input
    with no output folder (its output has nowhere to go beside it)."""
    found = Sources()
    for raw in inputs:
        if is_uri(raw):
            try:
                _, listed = _list_uri(raw, recursive)
            except FileNotFoundError:
                found.failed.append((Path(raw), f"no such file or folder: {raw}"))
                continue
            for src, base in listed:
                _need_output(output, raw.split("://", 1)[0], src)
                found.add_object(src, base, raw.split("://", 1)[0], listed == [(src, base)])
        elif Path(raw).suffix.lower() in LIST_EXTS and Path(raw).is_file():
            _add_list(found, Path(raw), output)
        else:
            found.local.append(raw)
    return found


def _add_list(found: Sources, listing: Path, output: Path | None) -> None:
    for entry in _read_list(listing):
        if is_uri(entry):  # not listed one by one (a HEAD request each): files
            scheme, key = entry.split("://", 1)
            src = Path(key)
            _need_output(output, scheme, src)
            found.add_object(src, Path(*src.parts[:1]), scheme, True)  # mirrored from the bucket
        else:
            found.pairs.append((Path(entry), listing.parent, True))


def _need_output(output: Path | None, scheme: str, src: Path) -> None:
    if output is None:
        raise ValueError(f"{scheme}://{src}: an object-store input needs an output folder (-o)")


def _read_list(path: Path) -> list[str]:
    """The paths in a list file, relative ones taken from the list's folder."""
    out = []
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            out.append(line if is_uri(line) or os.path.isabs(line) else str(path.parent / line))
    return out


def _list_uri(uri: str, recursive: bool) -> tuple[Any, list[tuple[Path, Path]]]:
    """(filesystem, [(object path, base)]) for a file, prefix or folder URI that
    pyarrow can open (s3://, gs://, hdfs://, file://)."""
    from pyarrow import fs as pafs

    fs, root = pafs.FileSystem.from_uri(uri)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.File:
        return fs, [(Path(root), Path(root).parent)]
    if info.type != pafs.FileType.Directory:
        raise FileNotFoundError(f"{uri}: no such file or folder")
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=recursive))
    files = sorted(
        i.path
        for i in infos
        if i.type == pafs.FileType.File
        and Path(i.path).suffix.lower() in INPUT_EXTS
        and not Path(i.path).name.startswith(".")
    )
    return fs, [(Path(p), Path(root)) for p in files]
