"""Running a batch's file I/O beside the model: read-ahead, atomic parallel writes.

:class:`Pipeline` decodes the next input while the model works and encodes
outputs in background threads, with messages in the order of a sequential run.
What it says goes through a :class:`Reporter` (the command line implements one).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..errors import ImageReadError, first_line
from ..files import leaves_no_trace
from ..imageio import read_image, write_image
from .options import Encoding
from .plan import Job, resolved, same_file

__all__ = [
    "Reporter",
    "Pipeline",
    "Encoding",
    "Ticket",
    "Aborted",
    "WRITE_BYTES",
    "write_slots",
    "write_output",
    "failure",
]


class Reporter(Protocol):
    """Where a batch's progress and messages go (one line each)."""

    def note(self, msg: str) -> None: ...

    def error(self, msg: str) -> None: ...

    def done(self, job: Job) -> None:
        """A job is settled: written, failed or skipped."""

    def tile_progress(self, name: str) -> Callable[[int, int], None] | None:
        """A callback for the tiles of the image being restored, or None."""


class Aborted(Exception):
    """A background write dropped because the batch was interrupted."""


def write_output(job: Job, out: Any, out_fmt: str, enc: Encoding, ticket: Ticket) -> float:
    """Encode one output (atomically); returns the time it was in place."""
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


def failure(exc: BaseException) -> str:
    """The one-line reason a file failed."""
    if isinstance(exc, ImageReadError):
        return f"cannot read: {exc}"
    if isinstance(exc, OSError):
        return f"{exc.strerror or exc}" + (
            f": {exc.filename}" if getattr(exc, "filename", None) else ""
        )
    if isinstance(exc, ValueError | MemoryError | RuntimeError):
        return first_line(exc)
    # a bug or an exotic codec error: it must not cost the batch
    return f"internal error: {type(exc).__name__}: {first_line(exc)}"


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


class Ticket:
    """Lets the main thread drop a background write until it is committed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.aborted = False
        self.committing = False

    def check(self) -> None:
        if self.aborted:
            raise Aborted

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
    ticket: Ticket
    t0: float
    shape: tuple[int, ...]
    nbytes: int
    notes: list[str]  # the job's notes, printed just before its line


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


class Pipeline:
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
        self.reporter = reporter
        self.slots = slots if slots is not None else write_slots()
        self.ahead: tuple[Job, Future] | None = None  # the next input, being decoded
        self.pending: deque[_Write] = deque()  # outputs being written, oldest first
        self.held: list[str] = []

    # -- reading ------------------------------------------------------------

    def read(self, job: Job) -> Future:
        """The decoded input of ``job``: prefetched, or started now."""
        ahead, self.ahead = self.ahead, None
        if ahead is not None and ahead[0] is job:
            return ahead[1]
        return _in_thread(read_image, job.src)

    def _busy(self) -> set[Path | None]:
        return {resolved(w.job.dst) for w in self.pending}

    def prefetch(self, job: Job, rest: Iterable[Job], overwrite: bool) -> None:
        """Start decoding the next input that will be restored, if any."""
        busy = {resolved(job.dst)} | self._busy()
        for nxt in rest:
            if nxt.status != "pending" or nxt.dst is None:
                continue
            if resolved(nxt.dst) in busy:
                return  # whether it runs depends on a write not done yet
            if same_file(nxt.src, nxt.dst) or (not overwrite and nxt.dst.exists()):
                continue  # skipped or failed at its turn: nothing to decode
            if resolved(nxt.src) not in busy:  # its input is not an output being made
                self.ahead = (nxt, _in_thread(read_image, nxt.src))
            return

    # -- writing ------------------------------------------------------------

    def write(self, job: Job, out: tuple[Any, str], enc: Encoding, t0: float) -> None:
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
        ticket, fut = Ticket(), Future()
        # Pending before the thread starts: Ctrl-C from here on knows about it.
        self.pending.append(_Write(job, fut, ticket, t0, image.pixels.shape, nbytes, notes))
        _in_thread(write_output, job, image, out_fmt, enc, ticket, fut=fut)

    def settle(self, job: Job) -> None:
        """Finish the writes in flight first if one makes ``job``'s input or output."""
        wanted = {resolved(job.src), resolved(job.dst)}
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
        except Aborted:  # pragma: no cover - only after abort()
            self.pending.popleft()
            return
        except Exception as exc:
            p.job.status, p.job.error = "failed", failure(exc)
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
