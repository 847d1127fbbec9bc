"""``--ray`` on upscale / denoise / dejpeg: the batch on a Ray cluster
(scnrestore.batch.cluster), with a local run's lines, summary and exit codes."""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from ..errors import CheckpointError, RegistryError, first_line, one_line
from .options import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, check_plan, fetch_model
from .report import ConsoleReporter, print_summary

if TYPE_CHECKING:
    from ..batch import BatchOptions, Job
    from ..batch.cluster import ClusterOptions
    from ..spec import RestorerSpec

__all__ = ["run_cli"]


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
    cluster: ClusterOptions,
    offline: bool = False,
) -> None:
    """cli.restore.run_batch with ``--ray``: the same lines, summary, ``--json``
    and exit codes, plus the manifest; existing outputs are skipped unless
    ``--overwrite``. ``spec``: the model (for upscale, with its --jpeg and
    --denoise steps); ``cluster``: --ray (its address) and --workers /
    --gpus-per-worker / --cpus-per-worker / --worker-memory / --max-retries;
    ``offline``: --offline, for fetching the model. The batch is planned
    first (its refusals are usage errors), then run on the cluster. Whatever
    Ray prints goes to stderr: stdout holds the summary alone."""
    from ..batch import BatchResult
    from ..batch.cluster import default_manifest

    try:
        import ray as _ray  # noqa: F401
    except ImportError:
        typer.echo("error: --ray needs Ray: pip install 'scnrestore[ray]'", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    # existing outputs are skipped unless --overwrite (both: refused by the plan)
    opts = replace(opts, skip_existing=opts.skip_existing or not opts.overwrite)
    manifest = default_manifest(opts.output)
    run = _Run(quiet, as_json)
    with _stdout_for_the_summary_only():
        try:
            run.plan(inputs, spec, opts, cluster, offline)
            run.run(manifest)
        except KeyboardInterrupt:
            run.interrupted = True
    rep = run.reporter or ConsoleReporter(quiet, as_json, 0)
    rep.close()
    if run.crashed:
        rep.error(f"error: the Ray job stopped: {run.crashed}")
    rep.note(f"manifest: {manifest}")
    result = BatchResult(run.jobs, run.interrupted, run.seconds, run.ran_on)
    print_summary(result, rep, as_json, extra={"manifest": str(manifest)})
    if run.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if run.crashed or any(j.status == "failed" for j in run.jobs):
        raise typer.Exit(EXIT_FAILED)


class _Run:
    """The console side of a Ray run: planned and checked, then run, one line
    per result; what it came to (jobs, interrupted, crashed, seconds, ran_on)."""

    def __init__(self, quiet: bool, as_json: bool) -> None:
        self.quiet, self.as_json = quiet, as_json
        self.started = time.time()
        self.reporter: ConsoleReporter | None = None  # once planned
        self.jobs: list[Job] = []
        self.interrupted, self.crashed = False, ""
        self.seconds, self.ran_on = 0.0, None
        self.todo: tuple[Any, ...] = ()

    def plan(
        self, inputs: list[str], spec: RestorerSpec, opts: BatchOptions,
        cluster: ClusterOptions, offline: bool,
    ) -> None:  # fmt: skip
        """Plan and check the batch (usage errors exit 2), fetch the model,
        report what planning settled."""
        from ..batch.cluster import check_request, plan_on_cluster

        try:
            spec = check_request(spec, opts, cluster)
            plan = plan_on_cluster(inputs, spec, opts, cluster)
        except _USAGE as exc:
            self.usage_error(exc)
        check_plan(plan)
        if plan.pending:
            fetch_model(spec, offline, quiet=self.quiet)
        rep = self.reporter = ConsoleReporter(self.quiet, self.as_json, len(plan.jobs))
        self.jobs = plan.jobs
        for line in plan.notes:
            rep.note(line)
        for j in plan.jobs:
            if j.status != "pending":
                rep.done(j)
        self.todo = (plan, spec, opts, cluster)

    def run(self, manifest: Path) -> None:
        """Run the plan on the cluster; a failure of the cluster itself (a
        worker could not start, ...) ends it with the reason."""
        from ..batch.cluster import run_plan

        assert self.reporter is not None
        try:
            report = run_plan(
                *self.todo, manifest, on_result=self.result, on_note=self.reporter.note,
                started=self.started,
            )  # fmt: skip
        except _USAGE as exc:
            self.usage_error(exc)
        except Exception as exc:  # the cluster itself failed (a worker could not start, ...)
            self.crashed = first_line(exc)
            return
        self.seconds = report.seconds
        if report.device:
            self.ran_on = {"device": report.device, "precision": report.precision}

    def result(self, job: Job, notes: list[str]) -> None:
        assert self.reporter is not None
        for line in notes:
            self.reporter.note(line)
        self.reporter.done(job)

    def usage_error(self, exc: BaseException) -> NoReturn:
        """A request the cluster or the model refuses (an unknown model, a bad
        checkpoint, one it can never schedule, no cluster there): exit 2 with
        one line."""
        if self.reporter is not None:
            self.reporter.close()
        typer.echo(one_line(f"error: {exc}"), err=True)
        raise typer.Exit(EXIT_USAGE) from None


_USAGE = (RegistryError, CheckpointError, ValueError, OSError, ConnectionError)
