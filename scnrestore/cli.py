"""The ``scnrestore`` command line (typer + rich).

Exit codes: 0 every file done (or skipped on purpose; an empty folder is a
note); 1 at least one file failed (each reported in one line, the batch went
on); 2 usage error (bad option, unknown or unobtainable model, unusable
checkpoint); 130 interrupted (Ctrl-C), after a summary of what was done.

torch is imported only when a command runs a model, so ``--help`` is instant.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer

from . import __version__

# engine.DEFAULT_OVERLAP, repeated so that start-up (--help, models list) does
# not import the engine and with it numpy (0.13 s here); a test keeps them equal.
DEFAULT_OVERLAP = 32

app = typer.Typer(
    name="scnrestore",
    help="Restore images with Scale-wise Convolutional Networks (SCN): "
    "upscale, denoise and remove JPEG artifacts.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}
# Read (directories, -r) but not written: their outputs are PNG.
INPUT_EXTS = IMAGE_EXTS | {".gif"}
SUFFIX = {"upscale": "_x{scale}", "denoise": "_denoised", "dejpeg": "_dejpeg"}


class Precision(StrEnum):
    auto = "auto"
    fp32 = "fp32"
    bf16 = "bf16"
    fp16 = "fp16"


# -- shared options ---------------------------------------------------------

Inputs = Annotated[
    list[str],
    typer.Argument(help="Image files, directories or glob patterns.", show_default=False),
]
OutputOpt = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Output file (one input) or directory (mirrors the input tree). "
        "Default: beside each input, as NAME_x4.png / NAME_denoised.png / NAME_dejpeg.png.",
    ),
]
RecursiveOpt = Annotated[
    bool, typer.Option("--recursive", "-r", help="Descend into subdirectories.")
]
ModelOpt = Annotated[
    str | None,
    typer.Option(help="Registry name or checkpoint file (.safetensors / .pt / .pth)."),
]
NumScalesOpt = Annotated[
    int | None,
    typer.Option(min=1, max=6, help="Pyramid levels of a checkpoint that does not record it."),
]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        help="Compute precision. auto: bf16 on CUDA cards with bf16 (else fp16), "
        "on CPUs where bf16 is measured faster (AMX; AVX512-BF16 probed once), else fp32."
    ),
]
TileOpt = Annotated[
    int | None,
    typer.Option(min=0, help="Tile side in input pixels; 0 = whole image. Default: from memory."),
]
OverlapOpt = Annotated[int, typer.Option(min=0, help="Pixels shared by neighbouring tiles.")]
TtaOpt = Annotated[bool, typer.Option(help="x8 self-ensemble (8x slower, slightly better).")]
FormatOpt = Annotated[
    str | None,
    typer.Option("--format", "-f", help="Output format: png, jpg, webp, tif, bmp."),
]
JpegQualityOpt = Annotated[
    int, typer.Option(min=1, max=100, help="Quality of JPEG / WebP output files.")
]
PngCompressionOpt = Annotated[
    int,
    typer.Option(
        min=0,
        max=9,
        help="zlib level of PNG output files: 1 encodes 3-5x faster than 6 for files"
        " 10-20% larger (big upscales on a GPU spend more time encoding than computing).",
    ),
]
OverwriteOpt = Annotated[bool, typer.Option(help="Replace existing output files.")]
SkipOpt = Annotated[bool, typer.Option(help="Skip inputs whose output exists.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON summary on stdout.")]
OfflineOpt = Annotated[
    bool,
    typer.Option("--offline", help="Never download a model: use embedded or cached files only."),
]
KeepLumaOpt = Annotated[
    str,
    typer.Option(
        help="Share of the JPEG's own luma to keep, 0-1, or auto: the model's measured "
        "share for the quality (dejpeg; none at low quality, all at 99-100)."
    ),
]
CalibrationOpt = Annotated[
    bool,
    typer.Option(
        "--level-calibration/--no-level-calibration",
        help="Tell the network the model's calibrated level for the given sigma / quality "
        "(measured per model; see README). Off: the level as given.",
    ),
]
KeepInputOpt = Annotated[
    str,
    typer.Option(
        help="Share of the noisy input to blend back, 0-1, or auto: the model's measured "
        "share for the sigma (denoise; most for nearly clean photos, none for noisy ones)."
    ),
]


@dataclass
class Job:
    src: Path
    dst: Path | None = None
    status: str = "pending"
    error: str | None = None
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"scnrestore {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Restore images with Scale-wise Convolutional Networks."""


# -- input / output planning --------------------------------------------------


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


def expand_inputs(
    inputs: list[str], recursive: bool
) -> tuple[list[tuple[Path, Path]], list[Job], list[str]]:
    """Inputs as (file, base directory for mirroring) pairs, plus not-found
    jobs and notes (a directory with no image files in it)."""
    pairs: list[tuple[Path, Path]] = []
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
            pairs += [(f, p) for f in found]
        elif p.exists():
            pairs.append((p, p.parent))
        elif _has_magic(raw):
            matches = sorted(glob.glob(os.path.expanduser(raw), recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                missing.append(Job(p, status="failed", error="no file matches this pattern"))
            base = _glob_base(os.path.expanduser(raw))
            pairs += [(f, base) for f in files]
        else:
            missing.append(Job(p, status="failed", error="no such file or directory"))
    unique: dict[Path, tuple[Path, Path]] = {}
    for f, base in pairs:
        unique.setdefault(f.resolve(), (f, base))
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
    pending = [(j, _resolved(j.dst)) for j in jobs if j.status == "pending" and j.dst is not None]
    planned: dict[Path | None, Job] = {}
    for j, dst in pending:
        planned.setdefault(dst, j)
    for j, _ in pending:
        owner = planned.get(_resolved(j.src))
        if owner is not None and owner is not j and not _same_file(j.src, j.dst):
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
    pairs: list[tuple[Path, Path]],
    output: Path | None,
    suffix: str,
    fmt: str | None,
) -> list[Job]:
    """Destination of each input; see --output."""
    from .imageio import FORMATS, extension_for

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
    for src, base in pairs:
        if single_file:
            dst = output
        elif output is not None:
            rel = src.relative_to(base) if src.is_relative_to(base) else Path(src.name)
            dst = output / rel.with_suffix(ext_for(src))
        else:
            dst = src.with_name(src.stem + suffix + ext_for(src))
        jobs.append(Job(src, dst))
    return jobs


# -- running ------------------------------------------------------------------


class Reporter:
    """Progress and messages: rich on a terminal, plain lines otherwise."""

    def __init__(self, quiet: bool, as_json: bool, total: int) -> None:
        from rich.console import Console

        self.err = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
        self.quiet = quiet
        self.as_json = as_json
        self.live = self.err.is_terminal and not quiet
        self.progress = None
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}", markup=False),  # file names may hold "[...]"
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=self.err,
                transient=False,
            )
            self.files = self.progress.add_task("files", total=total)
            self.tiles = self.progress.add_task("tiles", total=1, visible=False)
            self.progress.start()

    def tile_progress(self, name: str):  # noqa: ANN201
        if not self.progress:
            return None
        self.progress.update(self.tiles, description=f"  {name}", completed=0, visible=True)

        def cb(done: int, total: int) -> None:
            self.progress.update(self.tiles, completed=done, total=total)

        return cb

    def done(self, job: Job) -> None:
        if self.progress:
            self.progress.advance(self.files)
        if job.status == "failed":
            self.error(f"error: {job.src}: {job.error}")
        elif not self.quiet:
            msg = (
                f"{job.src} -> {job.dst} ({job.seconds:.1f} s)"
                if job.status == "ok"
                else f"{job.src}: skipped ({job.error})"
            )
            (self.progress.console if self.progress else self.err).print(
                _one_line(msg), markup=False
            )

    def note(self, msg: str) -> None:
        if not self.quiet:
            self.err.print(_one_line(msg), markup=False)

    def error(self, msg: str) -> None:
        (self.progress.console if self.progress else self.err).print(
            _one_line(msg), markup=False, style="red" if self.live else None
        )

    def close(self) -> None:
        if self.progress:
            self.progress.stop()


def _one_line(msg: str) -> str:
    """``msg`` with control characters (a newline in a file name, say) escaped,
    and undecodable file-name bytes shown as ``\\udcXX``: one line, always."""
    if msg.isprintable():
        return msg
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in msg)


def _check_output_name(output: Path, fmt: str | None, n_inputs: int) -> None:
    """Usage errors for an ``-o`` that is not a folder: a file name for many
    inputs, a picture format scnrestore does not write, or one that
    contradicts ``-f``."""
    from .imageio import FORMATS, format_for_path

    ext = output.suffix.lower()
    if ext in INPUT_EXTS and ext not in FORMATS:
        writable = ".png, .tif, .webp, .bmp or .jpg"
        _usage(f"--output {output}: {ext[1:].upper()} is not written (use {writable})")
    if ext not in FORMATS:
        return  # a folder to be made (names like out.v2 are folders too)
    if n_inputs > 1:
        _usage(f"--output {output} looks like a file, but there are {n_inputs} inputs")
    if fmt and format_for_path(output, fmt) != format_for_path(output):
        _usage(f"--output {output} and --format {fmt} disagree; give one of them")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def run_batch(
    task: str,
    inputs: list[str],
    *,
    level: float | str | None,
    scale: int,
    output: Path | None,
    recursive: bool,
    model: str | None,
    num_scales: int | None,
    device: str,
    precision: Precision,
    tile: int | None,
    tile_overlap: int,
    tta: bool,
    fmt: str | None,
    jpeg_quality: int,
    png_compression: int,
    overwrite: bool,
    skip_existing: bool,
    quiet: bool,
    as_json: bool,
    offline: bool = False,
    keep: float | None = None,
    calibration: bool = True,
) -> None:
    """Shared body of upscale / denoise / dejpeg."""
    from .imageio import format_for_path

    if overwrite and skip_existing:
        _usage("--overwrite and --skip-existing exclude each other")
    if fmt:
        try:
            format_for_path("x", fmt)
        except ValueError as exc:
            _usage(str(exc))
    pairs, jobs_missing, notes = expand_inputs(inputs, recursive)
    if output is not None and not output.is_dir():
        _check_output_name(output, fmt, len(pairs))
    suffix = SUFFIX[task].format(scale=scale)
    jobs = jobs_missing + plan_outputs(pairs, output, suffix, fmt)
    guard_outputs(jobs)
    if any(j.status == "pending" for j in jobs):
        _fetch_model(task, model, scale, offline=offline, quiet=quiet)
    reporter = Reporter(quiet, as_json, len(jobs))
    for line in notes:
        reporter.note(line)
    pipe = _Pipeline(reporter)  # write_slots(): parallel writes where cores allow
    encoding = _Encoding(jpeg_quality, png_compression)
    interrupted = False
    t_start = time.time()
    restorer = None
    try:
        for i, job in enumerate(jobs):
            if job.status != "pending":  # settled while planning
                pipe.report(job)
                continue
            assert job.dst is not None
            pipe.settle(job)  # the output being written is this job's input or output
            if _same_file(job.src, job.dst):
                job.status, job.error = "failed", "output would overwrite the input"
                pipe.report(job)
                continue
            if job.dst.exists() and not overwrite:
                if skip_existing:
                    job.status, job.error = "skipped", f"{job.dst} exists"
                else:
                    job.status = "failed"
                    job.error = f"output {job.dst} exists (use --overwrite or --skip-existing)"
                pipe.report(job)
                continue
            t0 = time.time()
            image = pipe.read(job)  # decoding (also while the model loads)
            if restorer is None:
                restorer = _make_restorer(
                    task,
                    model,
                    scale,
                    num_scales,
                    device,
                    precision,
                    tile,
                    tile_overlap,
                    tta,
                    keep,
                    calibration,
                )
                if level is not None and not restorer.conditioned:
                    # A fixed-level model (e.g. the published per-sigma SCN
                    # denoisers): nothing to estimate or pass.
                    if level != "auto":
                        flag = "--sigma" if task == "denoise" else "--quality"
                        pipe.note(f"note: the model takes no level; {flag} is not used")
                    level = None
                elif level is not None and level != "auto":
                    _warn_if_worse(pipe, restorer, task, level, None)
            pipe.prefetch(job, itertools.islice(jobs, i + 1, None), overwrite)
            out = _process(job, image, restorer, task, level, fmt, pipe)
            if out is None:
                job.seconds = time.time() - t0
                pipe.report(job)
            else:
                pipe.write(job, out, encoding, t0)
        pipe.finish()
    except KeyboardInterrupt:
        interrupted = True
        pipe.abort()
    finally:
        reporter.close()
    ran_on = (
        {"device": str(restorer.engine.device), "precision": restorer.engine.precision}
        if restorer is not None
        else None
    )
    _summary(jobs, reporter, as_json, time.time() - t_start, interrupted, ran_on)
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if any(j.status == "failed" for j in jobs):
        raise typer.Exit(EXIT_FAILED)


def _usage(msg: str) -> None:
    raise typer.BadParameter(msg)


def _fetch_model(task: str, model: str | None, scale: int, *, offline: bool, quiet: bool) -> None:
    """Have the model's file before the batch starts (a download draws its own bar)."""
    from .weights import RegistryError, default_model, resolve

    try:
        resolve(model or default_model(task, scale), offline=offline or None, quiet=quiet)
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def _warn_if_worse(
    pipe: _Pipeline, restorer: Any, task: str, level: float, src: Path | None
) -> None:
    """A warning when validation says the model makes images worse at ``level``."""
    loss = restorer.measured_loss(level)
    if loss is None:
        return
    at, gain = loss
    sym, harm = ("σ", "noise") if task == "denoise" else ("quality", "artefacts")
    where = f"{src}: " if src else ""
    pipe.note(
        f"warning: {where}{restorer.model.registry_entry.name} made validation photos "
        f"worse at {sym} {at:g} ({gain:+.2f} dB PSNR); at {sym} {level:g} it may remove "
        f"detail rather than {harm}"
    )


def _make_restorer(
    task: str,
    model: str | None,
    scale: int,
    num_scales: int | None,
    device: str,
    precision: Precision,
    tile: int | None,
    tile_overlap: int,
    tta: bool,
    keep: float | None = None,
    calibration: bool = True,
):  # noqa: ANN202
    """A Restorer, or exit 2 with one line; ``keep``: --keep-luma / --keep-input,
    ``calibration``: --level-calibration."""
    from .api import Restorer
    from .checkpoint import CheckpointError
    from .weights import TASK_SCHEDULES, RegistryError

    try:
        return Restorer(
            task,
            model,
            scale=scale,
            device=device,
            precision=precision.value,
            tile=tile,
            tile_overlap=tile_overlap,
            tta=tta,
            num_scales=num_scales,
            told_level=calibration,
            **({TASK_SCHEDULES[task]: keep} if task in TASK_SCHEDULES else {}),
        )
    except (RegistryError, CheckpointError, ValueError, OSError) as exc:
        typer.echo(_one_line(f"error: {exc}"), err=True)
        raise typer.Exit(EXIT_USAGE) from None


def _parse_level(task: str, level: str | None) -> float | str | None:
    """A number within the task's range, or "auto" (estimated per file)."""
    from .api import LEVEL_RANGES

    if level is None:
        return None
    if level.strip().lower() == "auto":
        return "auto"
    try:
        value = float(level)
    except ValueError:
        _usage(f"{level!r} is not a number or 'auto'")
    lo, hi = LEVEL_RANGES[task]
    if not lo <= value <= hi:
        name = "--sigma" if task == "denoise" else "--quality"
        _usage(f"{name} must be between {lo:g} and {hi:g} (or auto), not {level}")
    return value


def _parse_keep(text: str, flag: str) -> float | None:
    """--keep-luma / --keep-input: None for auto (the registry's schedule), else 0..1."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        _usage(f"{flag} must be a number from 0 to 1 or auto, not {text}")
    return value


def _auto_level(task: str, img: Any) -> float:
    """Estimate sigma (denoise) or the saved JPEG quality (dejpeg) of one image."""
    from .api import LEVEL_RANGES
    from .estimate import estimate_jpeg_quality, estimate_sigma

    lo, hi = LEVEL_RANGES[task]
    if task == "denoise":
        return float(min(max(round(estimate_sigma(img.pixels), 1), lo), hi))
    if img.format != "JPEG" or "quantization" not in img.info:
        raise ValueError(f"not a JPEG file ({img.format}): pass --quality N")
    return float(min(max(estimate_jpeg_quality(img.info["quantization"]), lo), hi))


def _process(
    job: Job,
    image: Future,
    restorer: Any,
    task: str,
    level: float | str | None,
    fmt: str | None,
    pipe: _Pipeline,
) -> tuple[Any, str] | None:
    """Decode (``image``: the read started earlier) and restore one file.

    Returns (restored image, output format) for :meth:`_Pipeline.write`, or
    None with ``job`` marked failed.
    """
    from .imageio import format_for_path
    from .weights import TASK_SCHEDULES

    assert job.dst is not None
    try:
        out_fmt = format_for_path(job.dst, fmt)  # before the work, not after it
        img = image.result()
        if img.frames > 1:
            pipe.note(f"note: {job.src}: {img.frames} frames, only the first is restored")
        for note in img.info.get("notes") or []:
            pipe.note(f"note: {job.src}: {note}")
        if level == "auto":
            level = _auto_level(task, img)
            what = "sigma" if task == "denoise" else "JPEG quality"
            pipe.note(f"{job.src}: estimated {what} {level:g}")
            _warn_if_worse(pipe, restorer, task, level, job.src)
        if level is not None:
            job.info["level"] = level
            if restorer.conditioned:  # what the network is told for it
                job.info["told_level"] = round(restorer.told(level), 2)
        if task in TASK_SCHEDULES:  # the share of the input blended back
            job.info[TASK_SCHEDULES[task]] = round(restorer.kept_share(level), 4)
        out = restorer.restore(img, level, pipe.reporter.tile_progress(job.src.name))
        del img
        return out, out_fmt
    except Exception as exc:
        job.status, job.error = "failed", _failure(exc)
        return None


class _Aborted(Exception):
    """A background write dropped because the batch was interrupted."""


class _Encoding(NamedTuple):
    """How output files are encoded (JPEG / WebP quality, PNG zlib level)."""

    jpeg_quality: int
    png_compression: int


def _write_output(job: Job, out: Any, out_fmt: str, enc: _Encoding, ticket: _Ticket) -> float:
    """Encode one output (atomically); returns the time it was in place."""
    from .imageio import write_image

    assert job.dst is not None
    ticket.check()
    try:
        job.dst.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = (
            "a file is in the way"
            if isinstance(exc, FileExistsError | NotADirectoryError)
            else exc.strerror or str(exc)
        )
        raise OSError(exc.errno, f"cannot create folder {job.dst.parent}: {why}") from None
    try:
        write_image(
            job.dst,
            out,
            out_fmt,
            enc.jpeg_quality,
            png_compression=enc.png_compression,
            before_commit=ticket.commit,
        )
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {job.dst}: {exc.strerror or exc}") from None
    return time.time()


def _failure(exc: BaseException) -> str:
    """The one-line reason a file failed."""
    from .imageio import ImageReadError

    if isinstance(exc, ImageReadError):
        return f"cannot read: {exc}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (
            f": {exc.filename}" if getattr(exc, "filename", None) else ""
        )
    if isinstance(exc, ValueError | MemoryError | RuntimeError):
        return _first_line(exc)
    # a bug or an exotic codec error: it must not cost the batch
    return f"internal error: {type(exc).__name__}: {_first_line(exc)}"


def _in_thread(fn: Any, *args: Any, fut: Future | None = None) -> Future:
    """Run ``fn(*args)`` in a new daemon thread; its result in ``fut`` (or a new Future).

    Daemon threads, not a ThreadPoolExecutor: Ctrl-C must not wait for a
    decode or an encode to finish (an unfinished output is an anonymous file
    that vanishes with the process)."""
    fut = Future() if fut is None else fut

    def target() -> None:
        if not fut.set_running_or_notify_cancel():  # pragma: no cover - never cancelled
            return
        try:
            fut.set_result(fn(*args))
        except BaseException as exc:  # handed to the main thread
            fut.set_exception(exc)

    threading.Thread(target=target, name="scnrestore-io", daemon=True).start()
    return fut


class _Ticket:
    """Lets the main thread drop a background write until it is committed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.aborted = False
        self.committing = False

    def check(self) -> None:
        if self.aborted:
            raise _Aborted

    def commit(self) -> None:
        with self.lock:
            self.check()
            self.committing = True

    def abort(self) -> bool:
        """Drop the write unless it is being put into place; True if it is."""
        with self.lock:
            self.aborted = True
            return self.committing


@dataclass
class _Write:
    job: Job
    future: Future
    ticket: _Ticket
    t0: float
    shape: tuple[int, ...]
    nbytes: int
    notes: list[str]  # the job's notes, printed just before its line


def _resolved(p: Path | None) -> Path | None:
    try:
        return p.resolve() if p is not None else None
    except (OSError, RuntimeError):
        return p


#: Outputs held by the writes in flight beyond the first (the first always starts).
WRITE_BYTES = 1 << 30


def write_slots() -> int:
    """How many outputs may be encoded at once in a batch.

    Pillow releases the GIL while it compresses, so writes in parallel threads
    use parallel cores. On a GPU the network outruns one PNG encoder many times
    over (an x4 output is 16x the input's pixels), so one write in flight would
    make the encoder the pace; on a CPU the network is the pace and extra
    writers would only compete with it. Half the usable cores, at most 8;
    ``SCNRESTORE_WRITERS=N`` overrides it.
    """
    env = os.environ.get("SCNRESTORE_WRITERS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        cores = os.cpu_count() or 1
    return max(1, min(8, cores // 2))


class _Pipeline:
    """Overlaps file I/O with the model in a batch.

    While the model restores one image, the next input is decoded and earlier
    outputs are encoded and written, each in a background thread: at most one
    image is decoded ahead, and at most ``slots`` writes are in flight (more
    than one only while the outputs they hold total at most ``WRITE_BYTES``),
    so memory stays bounded. Messages keep the order of a sequential run:
    writes are reported in job order, and a job's notes are held back until
    every job before it has been reported.
    """

    def __init__(self, reporter: Reporter, slots: int | None = None) -> None:
        from collections import deque

        self.reporter = reporter
        self.slots = slots if slots is not None else write_slots()
        self.ahead: tuple[Job, Future] | None = None  # the next input, being decoded
        self.pending: deque[_Write] = deque()  # outputs being written, oldest first
        self.held: list[str] = []

    # -- reading ------------------------------------------------------------

    def read(self, job: Job) -> Future:
        """The decoded input of ``job``: prefetched, or started now."""
        from .imageio import read_image

        ahead, self.ahead = self.ahead, None
        if ahead is not None and ahead[0] is job:
            return ahead[1]
        return _in_thread(read_image, job.src)

    def _busy(self) -> set[Path | None]:
        return {_resolved(w.job.dst) for w in self.pending}

    def prefetch(self, job: Job, rest: Iterable[Job], overwrite: bool) -> None:
        """Start decoding the next input that will be restored, if any."""
        from .imageio import read_image

        busy = {_resolved(job.dst)} | self._busy()
        for nxt in rest:
            if nxt.status != "pending" or nxt.dst is None:
                continue
            if _resolved(nxt.dst) in busy:
                return  # whether it runs depends on a write not done yet
            if _same_file(nxt.src, nxt.dst) or (not overwrite and nxt.dst.exists()):
                continue  # skipped or failed at its turn: nothing to decode
            if _resolved(nxt.src) not in busy:  # its input is not an output being made
                self.ahead = (nxt, _in_thread(read_image, nxt.src))
            return

    # -- writing ------------------------------------------------------------

    def write(self, job: Job, out: tuple[Any, str], enc: _Encoding, t0: float) -> None:
        """Write ``job``'s output in the background, once there is a free slot."""
        image, out_fmt = out
        nbytes = int(image.pixels.nbytes)
        self._reap()
        while self.pending and (
            len(self.pending) >= self.slots
            or sum(w.nbytes for w in self.pending) + nbytes > WRITE_BYTES
        ):
            self._finish_oldest()
        notes, self.held = self.held, []
        if not self.pending:  # everything before this job is reported
            for msg in notes:
                self.reporter.note(msg)
            notes = []
        ticket, fut = _Ticket(), Future()
        # Pending before the thread starts: Ctrl-C from here on knows about it.
        self.pending.append(_Write(job, fut, ticket, t0, image.pixels.shape, nbytes, notes))
        _in_thread(_write_output, job, image, out_fmt, enc, ticket, fut=fut)

    def settle(self, job: Job) -> None:
        """Finish the writes in flight first if one makes ``job``'s input or output."""
        wanted = {_resolved(job.src), _resolved(job.dst)}
        while wanted & self._busy():
            self._finish_oldest()

    def _reap(self) -> None:
        """Report the writes already done, oldest first (never one out of order)."""
        while self.pending and self.pending[0].future.done():
            self._finish_oldest()

    def _finish_oldest(self) -> None:
        p = self.pending[0]
        try:
            done = p.future.result()
        except _Aborted:  # pragma: no cover - only after abort()
            self.pending.popleft()
            return
        except Exception as exc:
            p.job.status, p.job.error = "failed", _failure(exc)
            done = time.time()
        else:
            p.job.status = "ok"
            p.job.info.update(width=int(p.shape[1]), height=int(p.shape[0]))
        p.job.seconds = done - p.t0
        self.pending.popleft()
        for msg in p.notes:
            self.reporter.note(msg)
        self.reporter.done(p.job)

    def _finish_all(self) -> None:
        while self.pending:
            self._finish_oldest()
        self._flush_notes()

    # -- messages -----------------------------------------------------------

    def note(self, msg: str) -> None:
        """A note of the current job: printed after the previous job's line."""
        self._reap()
        if not self.pending:
            self._flush_notes()
            self.reporter.note(msg)
        else:
            self.held.append(msg)

    def _flush_notes(self) -> None:
        held, self.held = self.held, []
        for msg in held:
            self.reporter.note(msg)

    def report(self, job: Job) -> None:
        """Report a job that wrote nothing, after everything before it."""
        self._finish_all()
        self.reporter.done(job)

    def finish(self) -> None:
        self._finish_all()

    def abort(self) -> None:
        """Ctrl-C: drop the writes in flight, except those already being put in place.

        A dropped write leaves nothing: an anonymous temporary file vanishes
        with the process; a named one (no O_TMPFILE here) is removed by the
        writer, which is waited for. A second Ctrl-C stops waiting.
        """
        from .files import leaves_no_trace

        self.ahead = None
        wait = []
        for p in self.pending:
            assert p.job.dst is not None
            committing = p.ticket.abort()
            if committing or not leaves_no_trace(p.job.dst.parent):
                wait.append(p)
        self.pending.clear()
        self.pending.extend(wait)
        try:
            while self.pending:
                self._finish_oldest()
        except KeyboardInterrupt:
            pass


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines and lines[0].strip() else type(exc).__name__


def _summary(
    jobs: list[Job],
    rep: Reporter,
    as_json: bool,
    seconds: float,
    interrupted: bool,
    ran_on: dict[str, str] | None = None,
) -> None:
    """The last line (or JSON document); ``ran_on``: device and precision used."""
    counts = {s: sum(j.status == s for j in jobs) for s in ("ok", "failed", "skipped", "pending")}
    if as_json:
        payload = {
            "files": [
                {
                    "input": str(j.src),
                    "output": str(j.dst) if j.dst else None,
                    "status": j.status if j.status != "pending" else "not run",
                    "seconds": round(j.seconds, 3),
                    **({"error": j.error} if j.error else {}),
                    **j.info,
                }
                for j in jobs
            ],
            "ok": counts["ok"],
            "failed": counts["failed"],
            "skipped": counts["skipped"],
            "not_run": counts["pending"],
            "interrupted": interrupted,
            "seconds": round(seconds, 3),
            **(ran_on or {"device": None, "precision": None}),
        }
        sys.stdout.write(json.dumps(payload, indent=1) + "\n")
        sys.stdout.flush()
    msg = f"{counts['ok']} done, {counts['failed']} failed, {counts['skipped']} skipped"
    if interrupted:
        rep.error(f"interrupted: {msg}, {counts['pending']} not run")
    elif counts["failed"] or not rep.quiet:
        where = f" on {ran_on['device']}, {ran_on['precision']}" if ran_on else ""
        (rep.error if counts["failed"] else rep.note)(f"{msg} in {seconds:.1f} s{where}")


# -- commands -----------------------------------------------------------------


@app.command()
def upscale(
    inputs: Inputs,
    scale: Annotated[int, typer.Option("--scale", "-s", min=2, max=4, help="2, 3 or 4.")] = 4,
    output: OutputOpt = None,
    recursive: RecursiveOpt = False,
    model: ModelOpt = None,
    num_scales: NumScalesOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.auto,
    tile: TileOpt = None,
    tile_overlap: OverlapOpt = DEFAULT_OVERLAP,
    tta: TtaOpt = False,
    fmt: FormatOpt = None,
    jpeg_quality: JpegQualityOpt = 95,
    png_compression: PngCompressionOpt = 6,
    overwrite: OverwriteOpt = False,
    skip_existing: SkipOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    offline: OfflineOpt = False,
) -> None:
    """Upscale images 2x, 3x or 4x.

    Example: [bold]scnrestore upscale photo.png -s 4[/bold]
    """
    run_batch(
        "upscale", inputs, level=None, scale=scale, output=output, recursive=recursive,
        model=model, num_scales=num_scales, device=device, precision=precision, tile=tile,
        tile_overlap=tile_overlap, tta=tta, fmt=fmt, jpeg_quality=jpeg_quality,
        overwrite=overwrite, skip_existing=skip_existing, quiet=quiet, as_json=as_json,
        offline=offline, png_compression=png_compression,
    )  # fmt: skip


@app.command()
def denoise(
    inputs: Inputs,
    sigma: Annotated[
        str,
        typer.Option(
            help="Noise level (standard deviation on the 0-255 scale), 1-75, "
            "or auto: estimated per image and printed."
        ),
    ] = "auto",
    output: OutputOpt = None,
    recursive: RecursiveOpt = False,
    model: ModelOpt = None,
    num_scales: NumScalesOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.auto,
    tile: TileOpt = None,
    tile_overlap: OverlapOpt = DEFAULT_OVERLAP,
    tta: TtaOpt = False,
    fmt: FormatOpt = None,
    jpeg_quality: JpegQualityOpt = 95,
    png_compression: PngCompressionOpt = 6,
    overwrite: OverwriteOpt = False,
    skip_existing: SkipOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    offline: OfflineOpt = False,
    keep_input: KeepInputOpt = "auto",
    level_calibration: CalibrationOpt = True,
) -> None:
    """Remove Gaussian noise.

    Example: [bold]scnrestore denoise --sigma 25 dir/[/bold]
    """
    run_batch(
        "denoise", inputs, level=_parse_level("denoise", sigma), scale=1, output=output,
        recursive=recursive, model=model, num_scales=num_scales, device=device,
        precision=precision, tile=tile, tile_overlap=tile_overlap, tta=tta, fmt=fmt,
        jpeg_quality=jpeg_quality, overwrite=overwrite, skip_existing=skip_existing,
        quiet=quiet, as_json=as_json, offline=offline, png_compression=png_compression,
        keep=_parse_keep(keep_input, "--keep-input"), calibration=level_calibration,
    )  # fmt: skip


@app.command()
def dejpeg(
    inputs: Inputs,
    quality: Annotated[
        str,
        typer.Option(
            help="JPEG quality the images were saved with, 5-100, or auto: read "
            "from each JPEG file's quantisation tables. The model was trained on 5-95 "
            "and is told 95 for higher qualities."
        ),
    ] = "auto",
    output: OutputOpt = None,
    recursive: RecursiveOpt = False,
    model: ModelOpt = None,
    num_scales: NumScalesOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.auto,
    tile: TileOpt = None,
    tile_overlap: OverlapOpt = DEFAULT_OVERLAP,
    tta: TtaOpt = False,
    fmt: FormatOpt = None,
    jpeg_quality: JpegQualityOpt = 95,
    png_compression: PngCompressionOpt = 6,
    overwrite: OverwriteOpt = False,
    skip_existing: SkipOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    offline: OfflineOpt = False,
    keep_luma: KeepLumaOpt = "auto",
    level_calibration: CalibrationOpt = True,
) -> None:
    """Remove JPEG compression artefacts.

    Example: [bold]scnrestore dejpeg --quality 10 *.jpg[/bold]
    """
    run_batch(
        "dejpeg", inputs, level=_parse_level("dejpeg", quality), scale=1, output=output,
        recursive=recursive, model=model, num_scales=num_scales, device=device,
        precision=precision, tile=tile, tile_overlap=tile_overlap, tta=tta, fmt=fmt,
        jpeg_quality=jpeg_quality, overwrite=overwrite, skip_existing=skip_existing,
        quiet=quiet, as_json=as_json, offline=offline, png_compression=png_compression,
        keep=_parse_keep(keep_luma, "--keep-luma"), calibration=level_calibration,
    )  # fmt: skip


# -- training and evaluation --------------------------------------------------


class Task(StrEnum):
    upscale = "upscale"
    denoise = "denoise"
    dejpeg = "dejpeg"


def _floats(text: str, what: str) -> tuple[float, ...]:
    """'1,0.5' -> (1.0, 0.5); a usage error (exit 2) naming ``what`` otherwise."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        _usage(f"{what} must be numbers separated by commas, not {text!r}")


@app.command()
def train(
    task: Annotated[Task, typer.Argument(help="upscale, denoise or dejpeg.")],
    out: Annotated[Path, typer.Option(help="Run directory: checkpoints, log, weights.")],
    data: Annotated[Path | None, typer.Option(help="Directory of clean training images.")] = None,
    val: Annotated[Path | None, typer.Option(help="Directory of validation images.")] = None,
    scale: Annotated[int, typer.Option("--scale", "-s", min=2, max=4)] = 2,
    steps: Annotated[
        int | None,
        typer.Option(min=1, help="Total optimiser steps (default 10000; --resume: as recorded)."),
    ] = None,
    batch: Annotated[int, typer.Option(min=1)] = 16,
    patch: Annotated[
        int, typer.Option(min=0, help="Input patch side; 0 = 48 (SR) or 96 (others).")
    ] = 0,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    warmup: Annotated[int, typer.Option(min=0, help="Steps of linear learning-rate warm-up.")] = 0,
    blocks: Annotated[int, typer.Option(min=1)] = 16,
    units: Annotated[int, typer.Option(min=1)] = 32,
    width: Annotated[float, typer.Option(help="Width multiplier of the blocks.")] = 4.0,
    num_scales: Annotated[int, typer.Option(min=1, max=6)] = 4,
    val_every: Annotated[int, typer.Option(min=1)] = 500,
    ckpt_every: Annotated[int, typer.Option(min=1)] = 100,
    log_every: Annotated[int, typer.Option(min=1)] = 25,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.auto,
    seed: int = 0,
    init: Annotated[
        Path | None, typer.Option(help="Start from these weights (e.g. x2 body for x4).")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads.")] = None,
    level_focus: Annotated[
        float | None,
        typer.Option(
            help="denoise/dejpeg: draw half of each batch's levels from \\[lowest, this] "
            "(default: whole σ range; q <= 40).",
        ),
    ] = None,
    detail_floor: Annotated[
        float,
        typer.Option(
            min=0,
            help="Weight patches by detail: one whose mean |Laplacian| (grey, 0-255) "
            "is below this is kept with probability detail/this (0: uniform; "
            "10 makes wallpapers look like photos).",
        ),
    ] = 0.0,
    image_scales: Annotated[
        str,
        typer.Option(
            help="Also train on each image shrunk by these factors, e.g. 1,0.5,0.33 "
            "(patches drawn evenly over image x factor; shrunk wallpapers carry "
            "photo-like texture density).",
        ),
    ] = "1",
    time_budget: Annotated[
        float,
        typer.Option(
            min=0,
            help="Fit the run into this many seconds: the step total (and so the "
            "decay schedule) is set from the measured speed and recorded.",
        ),
    ] = 0.0,
    resume: Annotated[
        bool,
        typer.Option(help="Continue the run in --out (its recorded settings; --steps may grow)."),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Train an SCN (L1, Adam, multi-step decay, flips and transposes).

    Example: [bold]scnrestore train upscale -s 2 --data train/ --val val/ --out runs/x2[/bold]
    """
    from .train import TrainConfig, load_run_config
    from .train import train as run_training

    command = ["scnrestore", *sys.argv[1:]]
    try:
        if resume and (out / "run.json").exists():
            cfg = load_run_config(out)
            cfg.steps = steps or cfg.steps
            cfg.device, cfg.threads = device, threads or cfg.threads
            cfg.command = cfg.command + ["&&"] + command
        else:
            if data is None:
                _usage("--data is required for a new run")
            cfg = TrainConfig(
                task=task.value, data=str(data), out=str(out), scale=scale,
                val=str(val) if val else None,
                steps=steps or (10**7 if time_budget else 10000), batch=batch,
                patch=patch, lr=lr, warmup=warmup,
                num_blocks=blocks, num_residual_units=units, width_multiplier=width,
                num_scales=num_scales, val_every=val_every, ckpt_every=ckpt_every,
                log_every=log_every, device=device, precision=precision.value, seed=seed,
                init=str(init) if init else None, threads=threads, command=command,
                time_budget=time_budget, level_focus=level_focus,
                detail_floor=detail_floor,
                image_scales=_floats(image_scales, "--image-scales"),
            )  # fmt: skip
    except ValueError as exc:
        _usage(str(exc))
    from rich.console import Console

    console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
    bar = None
    if console.is_terminal and not quiet:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn("step {task.completed}/{task.total}"),
            BarColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  {task.fields[val]}"),
            TimeRemainingColumn(),
            console=console,
        )
        task_id = bar.add_task("train", total=cfg.steps, loss=float("nan"), val="")
        bar.start()

    def progress(rec: dict[str, Any]) -> None:
        val_txt = (
            f"val {rec['val_psnr']:.2f} dB (baseline {rec['val_baseline']:.2f})"
            if "val_psnr" in rec
            else ""
        )
        if bar is not None:
            fields = {"loss": rec["loss"]} | ({"val": val_txt} if val_txt else {})
            bar.update(task_id, completed=rec["step"], total=rec.get("steps"), **fields)
        elif not quiet:
            console.print(
                f"step {rec['step']}/{rec.get('steps', cfg.steps)} loss {rec['loss']:.4f} "
                f"lr {rec['lr']:.2e} {rec['it_s']:.2f} it/s {val_txt}".rstrip()
            )

    try:
        last = run_training(cfg, resume=resume, progress=progress)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    finally:
        if bar is not None:
            bar.stop()
    if not quiet:
        console.print(f"{'stopped' if last.get('stopped') else 'done'} at step {last['step']}; "
                      f"weights: {out / 'model.safetensors'}", markup=False)  # fmt: skip
    if last.get("stopped"):
        raise typer.Exit(EXIT_INTERRUPTED)


def _levels(text: str | None, task: str) -> list[float | None]:
    from .api import LEVEL_RANGES

    if task == "upscale":
        return [None]
    default = {"denoise": "15,25,50", "dejpeg": "10,20,30,40"}[task]
    values = list(_floats(text or default, "levels"))
    lo, hi = LEVEL_RANGES[task]
    if not values or any(not lo <= v <= hi for v in values):
        _usage(f"levels for {task} must lie in {lo:g}..{hi:g}")
    return values


@app.command("eval")
def evaluate_cmd(
    directory: Annotated[Path, typer.Argument(help="Directory of clean images.")],
    task: Annotated[Task, typer.Option(help="upscale, denoise or dejpeg.")] = Task.upscale,
    scale: Annotated[int, typer.Option("--scale", "-s", min=2, max=4)] = 4,
    levels: Annotated[
        str | None,
        typer.Option(help="Comma-separated sigmas / qualities (default 15,25,50 / 10,20,30,40)."),
    ] = None,
    model: ModelOpt = None,
    num_scales: NumScalesOpt = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.auto,
    tile: TileOpt = None,
    tile_overlap: OverlapOpt = DEFAULT_OVERLAP,
    tta: TtaOpt = False,
    as_json: JsonOpt = False,
    keep_luma: KeepLumaOpt = "auto",
    keep_input: KeepInputOpt = "auto",
    level_calibration: CalibrationOpt = True,
) -> None:
    """Degrade clean images as training does, restore them, and score both.

    Example: [bold]scnrestore eval --task upscale -s 4 val/[/bold]
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from .evaluate import eval_document, evaluate, level_result, load_images
    from .weights import TASK_SCHEDULES

    lv = _levels(levels, task.value)
    if not directory.is_dir():
        _usage(f"{directory} is not a directory")
    try:
        images = load_images(directory)
    except (ValueError, OSError) as exc:
        _usage(str(exc))
    restorer = _make_restorer(
        task.value, model, scale, num_scales, device, precision, tile, tile_overlap, tta,
        _parse_keep(keep_input, "--keep-input") if task.value == "denoise"
        else _parse_keep(keep_luma, "--keep-luma"),
        level_calibration,
    )  # fmt: skip
    sr = task.value == "upscale"
    base = "bicubic" if sr else ("noisy" if task.value == "denoise" else "JPEG")
    console = Console(highlight=False, emoji=False)
    if not console.is_terminal:
        console = Console(highlight=False, emoji=False, width=160)
    results = []
    for level in lv:
        rows = evaluate(restorer, images, level)
        key = TASK_SCHEDULES.get(task.value)
        keep = restorer.kept_share(level) if key else None
        told = restorer.told(level)  # None for a model that takes no level
        extra = {key: keep} if key else {}
        if told is not None:
            extra["told_level"] = told
        results.append(level_result(level, rows, extra))
        if as_json:
            continue
        title = f"{task.value}" + (f" x{restorer.scale}" if sr else f" level {level:g}")
        if told is not None and told != level:
            title += f" (network told {told:.3g})"
        if keep:
            what = "the JPEG's luma" if task.value == "dejpeg" else "the noisy input"
            title += f", keeping {keep:.0%} of {what}"
        table = Table(title=title)
        for col in ("image", "PSNR", "PSNR-Y", "SSIM", f"{base} PSNR", f"{base} PSNR-Y",
                    f"{base} SSIM", "gain PSNR-Y", "s"):  # fmt: skip
            table.add_column(col, justify="left" if col == "image" else "right")
        for r in rows:
            table.add_row(escape(r.image), f"{r.psnr:.2f}", f"{r.psnr_y:.2f}", f"{r.ssim:.4f}",
                          f"{r.base_psnr:.2f}", f"{r.base_psnr_y:.2f}", f"{r.base_ssim:.4f}",
                          f"{r.psnr_y - r.base_psnr_y:+.2f}", f"{r.seconds:.1f}")  # fmt: skip
        m = results[-1]["mean"]
        table.add_row("mean", f"{m['psnr']:.2f}", f"{m['psnr_y']:.2f}", f"{m['ssim']:.4f}",
                      f"{m['base_psnr']:.2f}", f"{m['base_psnr_y']:.2f}", f"{m['base_ssim']:.4f}",
                      f"{m['gain_psnr_y']:+.2f}", f"{m['seconds']:.1f}", style="bold")  # fmt: skip
        console.print(table)
    if as_json:
        sys.stdout.write(json.dumps(eval_document(restorer, results), indent=1) + "\n")


# -- model registry -------------------------------------------------------------

models_app = typer.Typer(
    help="The model registry (weights.toml): list, download, verify the checkpoints.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
app.add_typer(models_app, name="models")

ModelNameArg = Annotated[str, typer.Argument(help="Registry name (see: scnrestore models list).")]


@contextlib.contextmanager
def _registry_errors(code: int = EXIT_USAGE) -> Iterator[None]:
    """A malformed registry, an unknown model or a failed download: one line, exit ``code``."""
    from .weights import RegistryError

    try:
        yield
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code) from None


def _registry_entry(name: str, registry: dict[str, Any] | None = None) -> Any:
    from .weights import RegistryError, load_registry

    registry = load_registry() if registry is None else registry
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none yet"
        raise RegistryError(f"unknown model {name!r} (known: {known})")
    return registry[name]


def _human_size(n: int | None) -> str:
    if not n:
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return str(n)


def _level_text(d: dict[str, Any]) -> str:
    if d["task"] == "upscale":
        return f"x{d['scale']}"
    for key, sym in (("sigma_range", "σ"), ("quality_range", "q")):
        if key in d:
            return f"{sym} {d[key][0]:g}–{d[key][1]:g}"
    return "-"


def _quality_text(q: Any) -> str:
    if isinstance(q, dict):
        return ", ".join(f"{k} {v:g}" for k, v in q.items())
    return str(q) if q else "-"


def _quality_cell(d: dict[str, Any]) -> str:
    """The quality of a model in a few short lines, for ``models list``.

    The registry's own keys (``val_psnr_y``/``gain`` for SR, ``val_psnr_<level>``/
    ``gain_<level>`` for the level-conditioned models) become one line per level,
    "σ15 31.36 (+6.52)" (dB; "Y" marks PSNR on luma); anything else is printed
    as it is (``models info`` has it all).
    """
    q = d.get("quality")
    if not isinstance(q, dict):
        return _quality_text(q)
    if isinstance(q.get("val_psnr_y"), int | float):
        gain = q.get("gain")
        extra = f" ({gain:+.2f})" if isinstance(gain, int | float) else ""
        return f"{q['val_psnr_y']:.2f}{extra} Y"
    sym = "σ" if d.get("task") == "denoise" else "q"
    lines = []
    for key, value in q.items():
        level = key.removeprefix("val_psnr_")
        if key == level or not isinstance(value, int | float):
            continue
        gain = q.get(f"gain_{level}")
        extra = f" ({gain:+.2f})" if isinstance(gain, int | float) else ""
        lines.append(f"{sym}{level} {value:.2f}{extra}")
    return "\n".join(lines) if lines else _quality_text(q)


@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """List the models: task, scale or range, size, quality, where (embedded/cached/remote)."""
    from .weights import describe, load_registry

    with _registry_errors():
        rows = [describe(e) for e in load_registry().values()]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "task", "scale/range", "size", "where")
    table.add_column("val PSNR dB (gain)", no_wrap=True)
    for d in rows:
        table.add_row(
            d["name"], d["task"], _level_text(d), _human_size(d["size"]), d["where"],
            _quality_cell(d),
        )  # fmt: skip
    console = Console(highlight=False, emoji=False)
    if rows:
        console.print(table)
    else:
        console.print("no models in the registry yet", markup=False)


@models_app.command("info")
def models_info(name: ModelNameArg, as_json: JsonOpt = False) -> None:
    """Every field of one model, with its URLs and local path."""
    from .weights import describe

    with _registry_errors():
        d = describe(_registry_entry(name))
    if as_json:
        sys.stdout.write(json.dumps(d, indent=1) + "\n")
        return
    for key, value in d.items():
        if key == "urls" and isinstance(value, list):
            typer.echo("urls:" + "".join(f"\n  {u}" for u in value) if value else "urls: -")
            continue
        if isinstance(value, dict):
            value = _quality_text(value)
        typer.echo(f"{key}: {'-' if value is None else value}")


@models_app.command("download")
def models_download(
    names: Annotated[list[str] | None, typer.Argument(help="Registry names.")] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Every model of the registry.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Download models into the cache (verified by size and sha256); exit 1 if any failed."""
    from .weights import RegistryError, fetch, load_registry

    if bool(names) == all_models:
        _usage("give model names or --all")
    with _registry_errors():
        registry = load_registry()
        entries = [_registry_entry(n, registry) for n in names or registry]
    failed = 0
    for entry in entries:
        try:
            path = fetch(entry, quiet=quiet)
        except RegistryError as exc:
            typer.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        if not quiet:
            typer.echo(f"{entry.name}: {path}")
    if all_models and not entries and not quiet:
        typer.echo("no models in the registry yet")
    if failed:
        raise typer.Exit(EXIT_FAILED)


@models_app.command("verify")
def models_verify(quiet: QuietOpt = False) -> None:
    """Re-hash the cached (and embedded) files against the registry: good, bad or missing.

    A bad cached file is deleted, so the next use downloads it again. Exit 1 if
    any file was bad.
    """
    from .weights import load_registry, verify

    with _registry_errors():
        results = [(e.name, *verify(e)) for e in load_registry().values()]
    for name, status, path, detail in results:
        if status == "bad" or not quiet:
            typer.echo(f"{status:7} {name}: {path}" + (f" ({detail})" if detail else ""))
    counts = {s: sum(r[1] == s for r in results) for s in ("good", "bad", "missing")}
    if not quiet:
        typer.echo(f"{counts['good']} good, {counts['bad']} bad, {counts['missing']} missing")
    if counts["bad"]:
        raise typer.Exit(EXIT_FAILED)


@models_app.command("path")
def models_path(name: ModelNameArg, offline: OfflineOpt = False, quiet: QuietOpt = False) -> None:
    """Print the local path of a model's file, downloading it if needed (exit 1 if it can't)."""
    from .weights import fetch

    with _registry_errors():
        entry = _registry_entry(name)
    with _registry_errors(EXIT_FAILED):
        path = fetch(entry, offline=offline or None, quiet=quiet)
    typer.echo(str(path))
