"""What a batch prints: progress and one line per file on stderr (rich on a
terminal, plain lines otherwise), and the summary (a line, or JSON on stdout)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import one_line
from .progress import progress_bar, stderr_console

if TYPE_CHECKING:
    from ..batch import BatchResult, Job

__all__ = ["ConsoleReporter", "print_summary"]


class ConsoleReporter:
    """The command line's :class:`~scnrestore.batch.pipeline.Reporter`."""

    def __init__(self, quiet: bool, as_json: bool, total: int) -> None:
        self.err = stderr_console(highlight=False, soft_wrap=True, emoji=False)
        self.quiet = quiet
        self.as_json = as_json
        self.live = self.err.is_terminal and not quiet
        self.progress = None
        if self.live:
            self._start_progress(total)

    def _start_progress(self, total: int) -> None:
        self.progress = progress_bar(self.err, "files")  # file names may hold "[...]"
        self.files = self.progress.add_task("files", total=total)
        self.tiles = self.progress.add_task("tiles", total=1, visible=False)
        self.progress.start()

    def tile_progress(self, name: str) -> Callable[[int, int], None] | None:
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
        elif not self.quiet and not job.quiet:
            steps = _steps_text(job)
            msg = (
                f"{job.src} -> {job.dst} ({steps}{job.seconds:.1f} s)"
                if job.status == "ok"
                else f"{job.src}: skipped ({job.error})"
            )
            (self.progress.console if self.progress else self.err).print(
                one_line(msg), markup=False
            )

    def note(self, msg: str) -> None:
        if not self.quiet:
            self.err.print(one_line(msg), markup=False)

    def error(self, msg: str) -> None:
        (self.progress.console if self.progress else self.err).print(
            one_line(msg), markup=False, style="red" if self.live else None
        )

    def close(self) -> None:
        if self.progress:
            self.progress.stop()


def print_summary(
    result: BatchResult,
    rep: ConsoleReporter,
    as_json: bool,
    extra: dict[str, object] | None = None,
) -> None:
    """The last line (or JSON document), with the device and precision used;
    ``extra``: more keys of the JSON document (``--ray``: the manifest)."""
    jobs, ran_on = result.jobs, result.ran_on
    counts = {s: sum(j.status == s for j in jobs) for s in ("ok", "failed", "skipped", "pending")}
    if as_json:
        doc = {**_document(result, counts), **(extra or {})}
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
        sys.stdout.flush()
    msg = f"{counts['ok']} done, {counts['failed']} failed, {counts['skipped']} skipped"
    if result.interrupted:
        rep.error(f"interrupted: {msg}, {counts['pending']} not run")
    elif counts["failed"] or not rep.quiet:
        where = f" on {ran_on['device']}, {ran_on['precision']}" if ran_on else ""
        (rep.error if counts["failed"] else rep.note)(
            f"{msg} in {result.seconds:.1f} s{where}{_chains_text(jobs)}"
        )


def _steps_text(job: Job) -> str:
    """ "dejpeg q30 → x4, " for a file upscaled in more than one plain step, else ""."""
    return f"{job.info['steps']}, " if job.chained else ""


def _chains_text(jobs: list[Job]) -> str:
    """ "; x2 jpeg q74 (3), x2 (1)": the steps the done files took, where any
    took more than a plain upscale."""
    from collections import Counter

    done = [j for j in jobs if j.status == "ok" and "steps" in j.info]
    if not any(j.chained for j in done):
        return ""
    chains = Counter(str(j.info["steps"]) for j in done)
    return "; " + ", ".join(f"{c} ({n})" for c, n in chains.most_common())


def _document(result: BatchResult, counts: dict[str, int]) -> dict[str, object]:
    """The --json summary: one entry per file, the counts, where it ran."""
    return {
        "files": [
            {
                "input": str(j.src),
                "output": str(j.dst) if j.dst else None,
                "status": j.status if j.status != "pending" else "not run",
                "seconds": round(j.seconds, 3),
                **({"error": j.error} if j.error else {}),
                **j.info,
            }
            for j in result.jobs
        ],
        "ok": counts["ok"],
        "failed": counts["failed"],
        "skipped": counts["skipped"],
        "not_run": counts["pending"],
        "interrupted": result.interrupted,
        "seconds": round(result.seconds, 3),
        **(result.ran_on or {"device": None, "precision": None}),
    }
