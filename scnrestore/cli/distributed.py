"""``--ray`` on upscale / denoise / dejpeg: the batch on a Ray cluster
(scnrestore.distributed), with a local run's lines, summary and exit codes."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..batch import BatchOptions, Job
    from ..distributed import ClusterOptions
    from ..spec import RestorerSpec

__all__ = ["run_cli"]


class _Lines:
    """The console side of a run: set up once planned, one line per result."""

    def __init__(self, quiet: bool, as_json: bool, before: Any) -> None:
        self.quiet, self.as_json, self.before = quiet, as_json, before
        self.jobs: list[Any] = []
        self.reporter: Any = None

    def plan(self, jobs: list[Any], notes: list[str]) -> None:
        from .report import ConsoleReporter

        self.before(jobs)  # usage errors, fetching the model: before anything runs
        rep = self.reporter = ConsoleReporter(self.quiet, self.as_json, len(jobs))
        self.jobs = jobs
        for line in notes:
            rep.note(line)
        for j in jobs:
            if j.status != "pending":
                rep.done(j)

    def result(self, job: Any, notes: list[str]) -> None:
        for line in notes:
            self.reporter.note(line)
        self.reporter.done(job)

    def note(self, line: str) -> None:
        if self.reporter is not None:
            self.reporter.note(line)


@contextlib.contextmanager
def _stdout_for_the_summary_only() -> Iterator[None]:
    """While Ray runs, what anything writes to stdout goes to stderr: Python's
    ``sys.stdout`` (Ray's driver prints its raylet's messages there) and file
    descriptor 1 (its C++ core, and the processes of a cluster started here,
    inherit it). Ray's colour codes only where stderr is a terminal. Put back
    after, for the summary (``--json``: a JSON document, alone)."""
    sys.stdout.flush()
    saved_fd, saved_stdout = os.dup(1), sys.stdout
    colour = os.environ.get("RAY_COLOR_PREFIX")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if not sys.stderr.isatty():
        os.environ["RAY_COLOR_PREFIX"] = "0"  # read by Ray as it prints each line
    try:
        yield
    finally:
        sys.stderr.flush()
        sys.stdout = saved_stdout
        os.dup2(saved_fd, 1)
        os.close(saved_fd)
        if colour is None:
            os.environ.pop("RAY_COLOR_PREFIX", None)
        else:
            os.environ["RAY_COLOR_PREFIX"] = colour


def run_cli(
    inputs: list[str],
    opts: BatchOptions,
    spec: RestorerSpec,
    quiet: bool,
    as_json: bool,
    *,
    before: Callable[[list[Job]], None],
    cluster: ClusterOptions,
) -> None:
    """cli.restore.run_batch with ``--ray``: the same lines, summary, ``--json``
    and exit codes, plus the manifest; existing outputs are skipped unless
    ``--overwrite``. ``spec``: the model (for upscale, with its --jpeg and
    --denoise steps); ``before(jobs)``: run_batch's checks once the jobs are
    planned; ``cluster``: --ray (its address) and --workers /
    --gpus-per-worker / --cpus-per-worker / --worker-memory / --max-retries.
    Whatever Ray prints goes to stderr: stdout holds the summary alone."""
    import typer

    from ..batch import BatchResult
    from ..distributed import default_manifest, restore_dataset
    from ..errors import CheckpointError, RegistryError, first_line, one_line
    from .options import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, usage
    from .report import ConsoleReporter, print_summary

    try:
        import ray as _ray  # noqa: F401
    except ImportError:
        typer.echo("error: --ray needs Ray: pip install 'scnrestore[ray]'", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    if opts.overwrite and opts.skip_existing:
        usage("--overwrite and --skip-existing exclude each other")
    lines = _Lines(quiet, as_json, before)
    manifest = default_manifest(opts.output)
    interrupted, crashed, report = False, None, None
    try:
        with _stdout_for_the_summary_only():
            report = restore_dataset(
                inputs, spec, replace(opts, skip_existing=not opts.overwrite), cluster=cluster,
                manifest=manifest, on_plan=lines.plan, on_result=lines.result, on_note=lines.note,
            )  # fmt: skip
    except KeyboardInterrupt:
        interrupted = True
    except (RegistryError, CheckpointError, ValueError, OSError, ConnectionError) as exc:
        if lines.reporter is not None:
            lines.reporter.close()
        typer.echo(one_line(f"error: {exc}"), err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except Exception as exc:  # the cluster itself failed (a worker could not start, ...)
        crashed = first_line(exc)
    rep = lines.reporter or ConsoleReporter(quiet, as_json, 0)
    rep.close()
    if crashed:
        rep.error(f"error: the Ray job stopped: {crashed}")
    ran_on = None
    if report is not None and report.device:
        ran_on = {"device": report.device, "precision": report.precision}
    rep.note(f"manifest: {manifest}")
    seconds = report.seconds if report is not None else 0.0
    result = BatchResult(lines.jobs, interrupted, seconds, ran_on)
    print_summary(result, rep, as_json, extra={"manifest": str(manifest)})
    if interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if crashed or any(j.status == "failed" for j in lines.jobs):
        raise typer.Exit(EXIT_FAILED)
