"""Planning a batch: inputs (files, folders, globs) -> jobs -> output paths.

Nothing here decodes an image or loads a model: every clash between inputs and
outputs is settled before anything runs (see :func:`guard_outputs`).
:func:`plan_batch` is the one planner, of a local run and of a Ray run alike;
it never prints and never exits: what it refuses, the caller reports.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from ..imageio import FORMATS, IMAGE_EXTS, INPUT_EXTS, extension_for, format_for_path
from .options import BatchOptions
from .sources import is_uri, split_sources

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = [
    "BatchPlan",
    "plan_batch",
    "output_name_refusal",
    "Job",
    "Source",
    "check_inputs",
    "check_writable",
    "skip_earlier_outputs",
    "SUFFIX",
    "expand_inputs",
    "plan_outputs",
    "guard_outputs",
    "same_file",
    "resolved",
]

# What each task appends to an input's name for its output beside it.
SUFFIX = {"upscale": "_x{scale}", "denoise": "_denoised", "dejpeg": "_dejpeg"}
# The names this tool gives its outputs beside their inputs: NAME_x2, NAME_x3.5,
# NAME_w1920, NAME_h1080, NAME_1920x1080, NAME_denoised, NAME_dejpeg.
_OUTPUT_STEM = re.compile(r"^(?P<name>.+?)(_x\d+(\.\d+)?|_[wh]\d+|_\d+x\d+|_denoised|_dejpeg)$")


@dataclass
class Job:
    """One input file of a batch and what became of it.

    ``named``: the input was named on its own (not found in a folder or by a
    glob); ``status``: pending, ok, failed or skipped, ``error`` saying why;
    ``info``: what the JSON summary adds (level, told_level, size...);
    ``chained``: an upscale that took more than one plain step (the summary
    names its steps).
    """

    src: Path
    dst: Path | None = None
    status: str = "pending"
    error: str | None = None
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    named: bool = False
    quiet: bool = False  # settled without a line of its own (a note covers it)
    chained: bool = False


class Source(NamedTuple):
    """An input file, the folder ``-o DIR`` mirrors it under, and whether it was named."""

    file: Path
    base: Path
    named: bool = False


def _has_magic(s: str) -> bool:
    return any(ch in s for ch in "*?[")


def _walk(root: Path, recursive: bool) -> list[Path]:
    """Image files under ``root``; symlink loops are not followed twice."""
    found: list[Path] = []
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            st = d.stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = sorted(d.iterdir())
        except OSError:
            continue
        for p in entries:
            if p.is_dir():
                if recursive:
                    stack.append(p)
            elif p.suffix.lower() in INPUT_EXTS and not p.name.startswith("."):
                found.append(p)
    return sorted(found)


def _glob_base(pattern: str) -> Path:
    """The folders of ``pattern`` before its first wildcard: what ``-o DIR``
    mirrors a glob's matches under (``shots/**/*.png`` -> ``shots``)."""
    parts = Path(pattern).parts[:-1]
    static = list(itertools.takewhile(lambda part: not _has_magic(part), parts))
    return Path(*static) if static else Path()


def expand_inputs(inputs: list[str], recursive: bool) -> tuple[list[Source], list[Job], list[str]]:
    """Inputs as :class:`Source` (file, base directory for mirroring, named), plus not-found
    jobs and notes (a directory with no image files in it)."""
    pairs: list[Source] = []
    missing: list[Job] = []
    notes: list[str] = []
    for raw in inputs:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = _walk(p, recursive)
            if not found:
                deeper = not recursive and any(c.is_dir() for c in _listdir(p))
                notes.append(
                    f"note: {p}: no image files" + (" (-r looks in its folders)" if deeper else "")
                )
            pairs += [Source(f, p) for f in found]
        elif p.exists():
            pairs.append(Source(p, p.parent, named=True))
        elif _has_magic(raw):
            matches = sorted(glob.glob(os.path.expanduser(raw), recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                missing.append(Job(p, status="failed", error="no file matches this pattern"))
            base = _glob_base(os.path.expanduser(raw))
            pairs += [Source(f, base) for f in files]
        else:
            missing.append(Job(p, status="failed", error="no such file or directory"))
    unique: dict[Path, Source] = {}
    for source in pairs:
        unique.setdefault(source.file.resolve(), source)
    return list(unique.values()), missing, notes


def _listdir(d: Path) -> list[Path]:
    try:
        return list(d.iterdir())
    except OSError:
        return []


def _inode(p: Path) -> tuple[int, int] | None:
    try:
        st = p.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


def guard_outputs(jobs: list[Job]) -> None:
    """Settle, before anything runs, the outputs that would clash:

    - an input that is another input's planned output (``a_x2.png`` beside
      ``a.png`` on a second run over a folder) is skipped, not restored again;
    - an output that is another input of the batch (``a.jpg`` -> ``a.png``
      beside ``a.png`` with ``-o`` into the same folder) fails: inputs are
      never written;
    - two inputs with one output (``a.png`` and ``a.jpg`` -> ``a_x2.png``;
      ``-o DIR`` over two folders holding ``x.png``): the later one fails,
      so no result silently replaces another.
    A job whose output is its own input is left to the batch loop.
    """
    pending = [(j, resolved(j.dst)) for j in jobs if j.status == "pending" and j.dst is not None]
    planned: dict[Path | None, Job] = {}
    for j, dst in pending:
        planned.setdefault(dst, j)
    for j, _ in pending:
        owner = planned.get(resolved(j.src))
        if owner is not None and owner is not j and not same_file(j.src, j.dst):
            j.status, j.error = "skipped", f"it is the output of {owner.src} in this run"
    inputs = {}
    for j, _ in pending:
        key = _inode(j.src)
        if j.status == "pending" and key is not None:
            inputs.setdefault(key, j)
    claimed: dict[Path | None, Job] = {}
    for j, dst in pending:
        if j.status != "pending":
            continue
        other = inputs.get(_inode(j.dst))  # None where the output does not exist yet
        if other is not None and other is not j:
            j.status, j.error = "failed", f"output {j.dst} would overwrite the input {other.src}"
            continue
        first = claimed.setdefault(dst, j)
        if first is not j:
            j.status = "failed"
            j.error = (
                f"output {j.dst} is also the output of {first.src} (use -o or -f to separate them)"
            )


def plan_outputs(
    pairs: list[Source],
    output: Path | None,
    suffix: str,
    fmt: str | None,
) -> list[Job]:
    """Destination of each input; see --output."""

    def ext_for(src: Path) -> str:
        if fmt:
            return extension_for(FORMATS["." + fmt.lower().lstrip(".")])
        ext = src.suffix.lower()
        # Re-encoding a restored image as JPEG would add back artefacts; GIF
        # (256 colours) and formats we do not write give PNG too.
        return ".png" if ext in (".jpg", ".jpeg") or ext not in FORMATS else ext

    single_file = (
        output is not None
        and len(pairs) == 1
        and not output.is_dir()
        and output.suffix.lower() in IMAGE_EXTS
    )
    jobs = []
    for src, base, named in pairs:
        if single_file:
            dst = output
        elif output is not None:
            rel = src.relative_to(base) if src.is_relative_to(base) else Path(src.name)
            dst = output / rel.with_suffix(ext_for(src))
        else:
            dst = src.with_name(src.stem + suffix + ext_for(src))
        jobs.append(Job(src, dst, named=named))
    return jobs


def same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def resolved(p: Path | None) -> Path | None:
    try:
        return p.resolve() if p is not None else None
    except (OSError, RuntimeError):
        return p


def check_inputs(jobs: list[Job], task: str, level: float | str | None) -> list[str]:
    """What can be told of the inputs from their headers, before a model loads.

    A pending job whose input is no image (a text file named ``photo.jpg``)
    fails as its decoding would. For ``dejpeg`` with the quality read from
    each file (``level`` "auto"), an input that is not a JPEG fails when it
    was named on its own, and is skipped when a folder or glob brought it,
    with one note for all of them. Returns the notes.
    """
    from ..errors import ImageReadError
    from ..imageio import probe_image

    not_jpeg = []
    for job in jobs:
        if job.status != "pending":
            continue
        try:
            kind = probe_image(job.src)
        except ImageReadError as exc:
            job.status, job.error = "failed", f"cannot read: {exc}"
            continue
        if task == "dejpeg" and level == "auto" and kind not in (None, "JPEG"):
            if job.named:
                job.status, job.error = "failed", f"not a JPEG file ({kind}): pass --quality N"
            else:
                job.status, job.error = "skipped", f"not a JPEG file ({kind})"
                job.quiet = True  # the one note below speaks for all of them
                not_jpeg.append(job)
    if not not_jpeg:
        return []
    n = len(not_jpeg)
    what = "a file that is not a JPEG" if n == 1 else f"{n} files that are not JPEGs"
    return [
        f"note: skipped {what} (--quality auto reads each JPEG's quality; "
        "give --quality N to restore them too)"
    ]


def _input_beside(path: Path, suffixes: tuple[str, ...]) -> Path | None:
    """The input ``path`` looks like this tool's output of (``a.png`` for
    ``a_x2.png`` beside it), or None."""
    stems = []
    m = _OUTPUT_STEM.match(path.stem)
    if m:
        stems.append(m["name"])
    stems += [path.stem[: -len(s)] for s in suffixes if s and path.stem.endswith(s)]
    for stem in stems:
        for ext in INPUT_EXTS:
            for name in (stem + ext, stem + ext.upper()):
                other = path.with_name(name)
                if other != path and other.is_file():
                    return other
    return None


def skip_earlier_outputs(
    pairs: list[Source], suffixes: tuple[str, ...] = ()
) -> tuple[list[Source], list[Job], list[str]]:
    """Leave out what a folder or glob brought that is an earlier output of
    this tool beside its input (``a_x2.png``, ``a_denoised.png`` beside
    ``a.png``; also ``a`` + each of ``suffixes``, a --suffix), so a re-run
    with another ``-o`` does not restore its own outputs again. A file named
    on its own is always an input. Returns the inputs kept, the skipped jobs
    (quiet: one note speaks for them) and that note."""
    kept: list[Source] = []
    skipped: list[tuple[Job, Path]] = []
    for source in pairs:
        other = None if source.named else _input_beside(source.file, suffixes)
        if other is None:
            kept.append(source)
            continue
        job = Job(
            source.file, status="skipped", error=f"it looks like an earlier output of {other}"
        )
        job.quiet = True
        skipped.append((job, other))
    if not skipped:
        return kept, [], []
    n = len(skipped)
    job, other = skipped[0]
    what = "a file that looks like" if n == 1 else f"{n} files that look like"
    note = (
        f"note: skipped {what} this tool's earlier output{'s' if n > 1 else ''} beside "
        f"{'its input' if n == 1 else 'their inputs'} ({job.src.name} beside {other.name}"
        f"{', ...' if n > 1 else ''}); name a file to restore it anyway"
    )
    return kept, [j for j, _ in skipped], [note]


def check_writable(jobs: list[Job]) -> None:
    """Fail, before any model loads, each pending job whose output cannot be
    written: a folder on its path is a file, the output is a folder, or the
    nearest existing folder is not writable."""
    verdicts: dict[Path, str | None] = {}
    for job in jobs:
        if job.status != "pending" or job.dst is None:
            continue
        if job.dst.is_dir():
            job.status, job.error = "failed", f"cannot write {job.dst}: it is a folder"
            continue
        folder = job.dst.parent
        while not folder.exists() and folder != folder.parent:
            if folder.is_symlink():  # a dangling link: mkdir cannot go through it
                break
            folder = folder.parent
        if folder not in verdicts:
            verdicts[folder] = _unwritable(folder)
        if verdicts[folder]:
            job.status, job.error = "failed", f"cannot write {job.dst}: {verdicts[folder]}"


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be made in ``folder`` (or below it), or None."""
    shown = folder if str(folder) else Path(".")
    if folder.is_symlink() and not folder.exists():
        return f"{shown} is a broken link"
    if not folder.is_dir():
        return f"{shown} is a file, not a folder"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"folder {shown} is not writable"
    return None


# -- the one planner ----------------------------------------------------------------


@dataclass
class BatchPlan:
    """A batch as planned, before any model loads: ``jobs`` (one per input,
    those settled already with their status), ``notes`` for the user, and
    ``refusals``: why the batch cannot run as asked (a usage error; no job
    then). ``uris``: {job.src: URI} for the object-store inputs of a Ray run."""

    jobs: list[Job] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    uris: dict[Path, str] = field(default_factory=dict)

    @property
    def pending(self) -> list[Job]:
        """The jobs still to run."""
        return [j for j in self.jobs if j.status == "pending"]


def plan_batch(
    inputs: Iterable[str] | str,
    opts: BatchOptions,
    *,
    suffix: str | None = None,
    lists: bool = False,
) -> BatchPlan:
    """The jobs of a batch, settled as far as can be before a model loads:
    clashes, unreadable inputs, outputs that cannot be written, and files that
    are this tool's earlier outputs (left out unless named, with a note).

    ``suffix``: what an output beside its input adds to its name (None: the
    task's; the command passes an output size's, e.g. ``_x3.5``). ``lists``: list files (``.txt`` /
    ``.lst``) and URIs pyarrow can list are inputs too (a Ray run's).
    """
    refusal = _options_refusal(opts)
    if refusal is not None:
        return BatchPlan(refusals=[refusal])
    local = [inputs] if isinstance(inputs, str) else list(inputs)
    try:
        found = split_sources(local, opts.output, opts.recursive) if lists else None
    except ValueError as exc:
        return BatchPlan(refusals=[str(exc)])
    pairs, missing, notes = expand_inputs(found.local if found else local, opts.recursive)
    if suffix is None:
        suffix = SUFFIX[opts.task].format(scale=opts.scale)
    pairs, earlier, more = skip_earlier_outputs(pairs, (suffix,))
    uris: dict[Path, str] = {}
    if found is not None:
        missing += [Job(src, status="failed", error=why) for src, why in found.failed]
        pairs += [Source(*pair) for pair in found.pairs]
        uris = found.uris
    if opts.output is not None and not opts.output.is_dir():
        refusal = output_name_refusal(opts.output, opts.fmt, len(pairs))
        if refusal is not None:
            return BatchPlan(refusals=[refusal])
    jobs = missing + plan_outputs(pairs, opts.output, suffix, opts.fmt)
    guard_outputs(jobs)
    check_writable(jobs)
    # headers read here; objects only by the workers that fetch them
    notes += more + check_inputs([j for j in jobs if j.src not in uris], opts.task, opts.level)
    return BatchPlan(jobs + earlier, notes, [], uris)


def _options_refusal(opts: BatchOptions) -> str | None:
    """What in ``opts`` alone makes a batch that cannot run, or None."""
    if opts.overwrite and opts.skip_existing:
        return "--overwrite and --skip-existing exclude each other"
    if opts.fmt:
        try:
            format_for_path("x", opts.fmt)
        except ValueError as exc:
            return str(exc)
    if opts.output is not None and is_uri(str(opts.output)):
        return f"--output {opts.output}: outputs go to a folder every worker sees (no URI)"
    return None


def output_name_refusal(output: Path, fmt: str | None, n_inputs: int) -> str | None:
    """Why an ``-o`` that is not a folder cannot be: a file name for many
    inputs, a picture format scnrestore does not write, or one that
    contradicts ``-f``; None when it can."""
    ext = output.suffix.lower()
    if ext in INPUT_EXTS and ext not in FORMATS:
        writable = ".png, .tif, .webp, .bmp or .jpg"
        return f"--output {output}: {ext[1:].upper()} is not written (use {writable})"
    if ext not in FORMATS:
        return None  # a folder to be made (names like out.v2 are folders too)
    if n_inputs > 1:
        return f"--output {output} looks like a file, but there are {n_inputs} inputs"
    if fmt and format_for_path(output, fmt) != format_for_path(output):
        return f"--output {output} and --format {fmt} disagree; give one of them"
    return None
