"""Running a planned batch: each job read, restored and written, in order.

The caller makes the model (``make_restorer``, called once, when the first
input is being decoded) and says where messages go (a
:class:`~scnrestore.batch.pipeline.Reporter`); this module never prints.
What restores is known only by the restorer protocol
(:class:`scnrestore.protocol.RestorerLike`: ``run``, ``models``,
``start_notes``, ``engine``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..imageio import format_for_path
from .options import BatchOptions
from .pipeline import Pipeline, Reporter, Ticket, failure, write_output
from .plan import Job, same_file

if TYPE_CHECKING:
    from ..protocol import RestorerLike

__all__ = ["BatchOptions", "BatchResult", "run_jobs", "restore_file", "settled_by_output"]


@dataclass
class BatchResult:
    """How a batch went: its jobs (each with its status), whether Ctrl-C
    stopped it, its wall time, and the device / precision the model ran with
    (None when no model was loaded)."""

    jobs: list[Job]
    interrupted: bool
    seconds: float
    ran_on: dict[str, str] | None


def run_jobs(
    jobs: list[Job],
    opts: BatchOptions,
    reporter: Reporter,
    make_restorer: Callable[[], RestorerLike],
    pipe: Pipeline | None = None,
) -> BatchResult:
    """Run the pending jobs in order (the others are reported in their turn).

    ``make_restorer`` gives what restores (a Restorer, or for upscale a
    :class:`~scnrestore.chain.Chain`: each job's steps land in its ``info``).

    Ctrl-C stops the batch: writes in flight are dropped (nothing half
    written is left) and the result says it was interrupted.
    """
    run = _Run(opts, pipe or Pipeline(reporter), make_restorer)
    interrupted = False
    t_start = time.time()
    try:
        for i, job in enumerate(jobs):
            run.step(job, itertools.islice(jobs, i + 1, None))
        run.pipe.finish()
    except KeyboardInterrupt:
        interrupted = True
        run.pipe.abort()
    r = run.restorer
    ran_on = (
        {"device": str(r.engine.device), "precision": r.engine.precision} if r is not None else None
    )
    return BatchResult(jobs, interrupted, time.time() - t_start, ran_on)


class _Run:
    """The state of a running batch: the restorer once made."""

    def __init__(
        self, opts: BatchOptions, pipe: Pipeline, make_restorer: Callable[[], RestorerLike]
    ) -> None:
        self.opts, self.pipe, self.make_restorer = opts, pipe, make_restorer
        self.restorer: RestorerLike | None = None

    def step(self, job: Job, rest: Iterable[Job]) -> None:
        pipe = self.pipe
        if job.status != "pending":  # settled while planning
            pipe.report(job)
            return
        assert job.dst is not None
        pipe.settle(job)  # the output being written is this job's input or output
        if self._settled_at_its_turn(job):
            pipe.report(job)
            return
        t0 = time.time()
        image = pipe.read(job)  # decoding (also while the model loads)
        if self.restorer is None:
            self.restorer = self.make_restorer()
            for note in self.restorer.start_notes(self.opts.level):
                pipe.note(_line(note))
        pipe.prefetch(job, rest, self.opts.overwrite)
        out = self._process(job, image)
        if out is None:
            job.seconds = time.time() - t0
            pipe.report(job)
        else:
            pipe.write(job, out, self.opts.encoding, t0)

    def _settled_at_its_turn(self, job: Job) -> bool:
        """Fail or skip ``job`` for what its output is now; True if it was."""
        return settled_by_output(job, self.opts)

    def _process(self, job: Job, image: Future) -> tuple[Any, str] | None:
        """Decode (``image``: the read started earlier) and restore one file.

        Returns (restored image, output format) for :meth:`Pipeline.write`,
        or None with ``job`` marked failed.
        """
        assert job.dst is not None and self.restorer is not None
        pipe = self.pipe
        try:
            out_fmt = format_for_path(job.dst, self.opts.fmt)  # before the work, not after it
            img = image.result()
            if img.frames > 1:
                pipe.note(f"note: {job.src}: {img.frames} frames, only the first is restored")
            for note in img.info.get("notes") or []:
                pipe.note(f"note: {job.src}: {note}")
            progress = pipe.reporter.tile_progress(job.src.name)
            restored = self.restorer.run(img, self.opts.level, progress)
            del img
            for note in restored.notes:
                pipe.note(_line(note, job.src))
            job.info.update(restored.info)
            job.chained = not restored.plain
            return restored.image, out_fmt
        except Exception as exc:
            job.status, job.error = "failed", failure(exc)
            return None


def _line(note: str, src: Path | None = None) -> str:
    """A restorer's note as a line: ``KIND: FILE: text`` (see scnrestore.levels.Note)."""
    kind = getattr(note, "kind", "note")
    where = f"{src}: " if src is not None else ""
    return f"{kind}: {where}{note}" if kind else f"{where}{note}"


# -- one file without the pipeline (scnrestore.distributed's workers) ---------------


class _NoteSink:
    """Stands in for the Pipeline a _Run reports to: notes to a callable, no bar."""

    def __init__(self, note: Callable[[str], None]) -> None:
        self.note = note
        self.reporter = self

    def tile_progress(self, name: str) -> None:
        return None


def restore_file(
    job: Job, restorer: RestorerLike, opts: BatchOptions, note: Callable[[str], None] | None = None
) -> Job:
    """One job as run_jobs runs it, in the calling thread and without the
    pipeline: check the output, read ``job.src``, restore, write ``job.dst``
    atomically with the input's metadata. Sets ``job``'s status, error,
    seconds and info (never raises for a bad file); ``note`` receives the
    notes a batch prints for it."""
    from ..imageio import read_image

    assert job.dst is not None
    run = _Run(opts, _NoteSink(note or (lambda msg: None)), lambda: restorer)  # type: ignore[arg-type]
    run.restorer = restorer
    t0 = time.time()
    if run._settled_at_its_turn(job):
        return job
    image: Future = Future()
    try:
        image.set_result(read_image(job.src))
    except Exception as exc:
        image.set_exception(exc)
    out = run._process(job, image)
    del image
    if out is not None:
        try:
            write_output(job, out[0], out[1], opts.encoding, Ticket())
        except Exception as exc:
            job.status, job.error = "failed", failure(exc)
        else:
            shape = out[0].pixels.shape
            job.status = "ok"
            job.info.update(width=int(shape[1]), height=int(shape[0]))
    job.seconds = time.time() - t0
    return job


def settled_by_output(job: Job, opts: BatchOptions) -> bool:
    """Fail or skip ``job`` for what its output is now (the input itself, or
    an existing file without ``--overwrite``); True if it was."""
    assert job.dst is not None
    if same_file(job.src, job.dst):
        job.status, job.error = "failed", "output would overwrite the input"
        return True
    if job.dst.exists() and not opts.overwrite:
        if opts.skip_existing:
            job.status, job.error = "skipped", f"{job.dst} exists"
        else:
            job.status = "failed"
            job.error = f"output {job.dst} exists (use --overwrite or --skip-existing)"
        return True
    return False
