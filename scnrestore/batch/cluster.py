"""Restore many images on a Ray cluster (``pip install 'scnrestore[ray]'``).

:func:`restore_dataset` plans the outputs with the local batch's own planner
(:func:`~scnrestore.batch.plan.plan_batch`: same names, same clash rules,
unwritable outputs and earlier outputs settled before anything runs; list
files and URIs as inputs besides), then drives a pool of long-lived Ray actors from this
process: each worker builds the model once from a
:class:`~scnrestore.spec.RestorerSpec` (a small picklable value, not the
model) and is handed one file at a time: it reads the compressed bytes,
decodes, restores and writes the output atomically with its metadata, through
the local batch's own code (:func:`scnrestore.batch.restore_file`). Only small
rows come back (input, output, status, error, seconds): decoded pixels never
leave the worker that decoded them. The rows are written as a JSON-lines
manifest, keyed by input path.

One bad file fails its own row only. A worker that dies (killed, out of
memory, a crash in a decoder, its node lost) is replaced and the one file it
was restoring is tried again, up to ``max_retries`` times in all; then that
file fails with the reason and the run goes on. Outputs that exist before the
run are skipped (by the command line, and by default here), so a re-run
resumes; an output that a dead worker finished counts as done. A request the
cluster can never schedule (GPUs on a cluster without any, more CPUs or
memory than it has) is refused before anything runs, and with a worker
memory set, a picture too large for it is refused by name.

The steps are public for a caller that reports between them (the command
line's ``--ray``): :func:`check_request`, :func:`plan_on_cluster` (a
:class:`~scnrestore.batch.plan.BatchPlan`), :func:`run_plan`. Ray is imported
inside the functions, never at ``import scnrestore``; ``scnrestore.distributed``
is this module's public name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import first_line
from ..spec import RestorerSpec
from .options import BatchOptions
from .plan import BatchPlan, plan_batch
from .sources import LIST_EXTS, is_uri

if TYPE_CHECKING:
    from .plan import Job

__all__ = [
    "restore_dataset",
    "check_request",
    "plan_on_cluster",
    "plan_jobs",
    "run_plan",
    "connect",
    "check_resources",
    "default_manifest",
    "ClusterOptions",
    "Report",
    "UnschedulableError",
    "MANIFEST_NAME",
    "LIST_EXTS",
    "parse_size",
    "worker_bytes",
]

#: The manifest's file name inside an output folder.
MANIFEST_NAME = "scnrestore-manifest.jsonl"
#: Tries of a file whose worker dies while restoring it, the first included.
MAX_RETRIES = 3
#: What a worker needs besides its picture (the interpreter, torch, the model,
#: tile buffers) and the share of the output's bytes on top: the bound
#: benchmarks/memory.py holds the local command line to (docs/performance.md).
WORKER_BASE_BYTES = 3 << 29  # 1.5 GiB
OUTPUT_FACTOR = 1.5
#: How long the pool waits for a worker to start when none is running (its
#: node's room taken, a node lost) before the rest of the files are not run.
START_TIMEOUT_S = 600.0


class UnschedulableError(ValueError):
    """The cluster can never run the workers asked for (it would wait forever)."""


@dataclass(frozen=True)
class ClusterOptions:
    """Where a run goes and the pool it starts there.

    ``address``: see :func:`connect` (None: a local cluster started here).
    ``workers``: None starts as many as fit. ``gpus_per_worker``: a share of a
    GPU each (0.5: two workers share one); ``cpus_per_worker``: CPUs each, and
    torch threads for a worker without a GPU. ``worker_memory``: bytes of
    memory reserved for each worker (Ray's ``memory`` resource; None: none
    reserved, no picture refused). ``max_retries``: tries of a file whose
    worker dies while restoring it, the first included; then it fails.
    """

    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    worker_memory: int | None = None
    max_retries: int = MAX_RETRIES

    @property
    def torch_threads(self) -> int | None:
        """The threads a CPU worker gives torch (None: torch's own choice)."""
        if not self.gpus_per_worker and self.cpus_per_worker >= 1:
            return int(self.cpus_per_worker)
        return None


@dataclass
class Report:
    """What :func:`restore_dataset` did: counts, the manifest, one job per input."""

    done: int
    failed: int
    skipped: int
    not_run: int
    manifest: Path
    seconds: float
    device: str | None = None
    precision: str | None = None
    jobs: list[Any] = field(default_factory=list, repr=False)  # scnrestore.batch.Job

    @property
    def exit_code(self) -> int:
        """As the local CLI's: 1 when any file failed, else 0."""
        return 1 if self.failed else 0


# -- planning -------------------------------------------------------------------


def plan_jobs(
    inputs: Iterable[str],
    output: str | os.PathLike[str] | None,
    task: str,
    *,
    scale: int = 4,
    fmt: str | None = None,
    recursive: bool = False,
    level: float | str | None = None,
) -> tuple[list[Job], dict[Path, str], list[str]]:
    """The jobs of a run as :func:`~scnrestore.batch.plan.plan_batch` plans
    them, for folders, globs, list files and URIs. Returns (jobs, {job.src:
    URI} for object-store inputs, notes); ValueError for what it refuses."""
    if output is not None and is_uri(str(output)):
        raise ValueError(f"--output {output}: outputs go to a folder every worker sees (no URI)")
    out = None if output is None else Path(output)
    opts = BatchOptions(task, level, scale, output=out, recursive=recursive, fmt=fmt)
    plan = plan_batch(inputs, opts, lists=True)
    if plan.refusals:
        raise ValueError(plan.refusals[0])
    return plan.jobs, plan.uris, plan.notes


def check_request(spec: RestorerSpec, opts: BatchOptions, cluster: ClusterOptions) -> RestorerSpec:
    """ValueError for a request that cannot run on a cluster (before anything
    is planned): ``opts`` and ``spec`` of another task or scale, a level out of
    range, a CUDA device without a GPU share, retries or worker memory that
    cannot work. Returns ``spec`` with a model file's path made absolute (the
    workers run elsewhere)."""
    from ..tasks import LEVEL_RANGES

    task = spec.task
    if opts.task != task or (task == "upscale" and opts.scale != spec.scale):
        raise ValueError(
            f"opts ({opts.task}, scale {opts.scale}) and spec ({task}, scale {spec.scale}) "
            "disagree: give both the same task and scale"
        )
    level = opts.level
    if isinstance(level, int | float) and task in LEVEL_RANGES:
        lo, hi = LEVEL_RANGES[task]
        if not lo <= level <= hi:
            raise ValueError(f"level must lie in {lo:g}..{hi:g}, not {level:g}")
    if spec.device.strip().lower().startswith("cuda") and not cluster.gpus_per_worker:
        # Ray hides every GPU from a worker that asked for none
        raise ValueError(f"--device {spec.device} needs --gpus-per-worker (a share of a GPU)")
    _check_cluster_options(cluster)
    model = spec.model
    if model is not None and not is_uri(model) and Path(model).expanduser().is_file():
        spec = replace(spec, model=str(Path(model).expanduser().absolute()))
    return spec


def plan_on_cluster(
    inputs: str | Iterable[str], spec: RestorerSpec, opts: BatchOptions, cluster: ClusterOptions
) -> BatchPlan:
    """:func:`~scnrestore.batch.plan.plan_batch` with list files and URIs, then
    what a Ray run settles before it starts: outputs that exist now (skipped
    or failed as ``opts`` says: only they count as "skipped"), and with a
    worker memory, the pictures too large for it (by name)."""
    from .run import settled_by_output

    plan = plan_batch(inputs, opts, lists=True)
    for j in plan.pending:  # what exists now existed before the run
        settled_by_output(j, opts)
    if cluster.worker_memory:
        _refuse_too_large(plan.jobs, plan.uris, spec.scale, cluster.worker_memory)
    return plan


# -- the cluster --------------------------------------------------------------


@contextlib.contextmanager
def connect(address: str | None = None, **init: Any) -> Iterator[bool]:
    """Use the Ray cluster already initialised in this process, else connect to
    ``address`` (``auto``, ``ray://host:10001``, ``host:6379``), else start a
    local one bound to 127.0.0.1 only (``None`` or ``local``). Yields whether
    this call connected; only then is it disconnected (``ray.shutdown``) after.
    ``init``: more keywords for ``ray.init`` (``num_cpus``, ``_temp_dir``).
    """
    import ray

    if ray.is_initialized():
        yield False
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    kwargs: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False, **init}
    if address in (None, "local"):
        # Ray's switch for a one-machine cluster: node address and every
        # listener on the loopback interface, none reachable from the network.
        # The driver reads it once, at import (so it is set there too); the
        # processes of the cluster read it from their environment.
        with _loopback_only():
            ray.init(**{"include_dashboard": False, **kwargs})
    else:
        ray.init(address=address, **kwargs)
    try:
        yield True
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _loopback_only() -> Iterator[None]:
    name = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
    saved = os.environ.get(name)
    os.environ[name] = "0"
    try:
        from ray._private import ray_constants
    except ImportError:  # pragma: no cover - a Ray without it: the environment alone
        ray_constants = None
    flag = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    if flag is not None:
        ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        if flag is not None:
            ray_constants.ENABLE_RAY_CLUSTER = flag
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def check_resources(
    workers: int | None,
    cpus_per_worker: float,
    gpus_per_worker: float,
    memory_per_worker: int | None = None,
) -> int:
    """The number of workers to start; UnschedulableError where the cluster
    (as it is now) could never place them all, which Ray would wait for forever.
    ``workers=None``: as many as fit (at least 1). ``memory_per_worker``:
    bytes of Ray's ``memory`` resource each (None: not asked for)."""
    import ray

    if cpus_per_worker < 0 or gpus_per_worker < 0:
        raise ValueError("--cpus-per-worker and --gpus-per-worker must not be negative")
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be at least 1, not {workers}")
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    cpus = [float(r.get("CPU", 0)) for r in nodes]
    gpus = [float(r.get("GPU", 0)) for r in nodes]
    mems = [float(r.get("memory", 0)) for r in nodes]
    eps = 1e-9
    if gpus_per_worker > 0 and sum(gpus) <= 0:
        raise UnschedulableError(
            f"--gpus-per-worker {gpus_per_worker:g}: the Ray cluster has no GPUs "
            f"({len(nodes)} node(s), {sum(cpus):g} CPUs); leave it out to run on CPUs"
        )

    def fits(cpu: float, gpu: float, mem: float) -> int:
        n = []
        if cpus_per_worker > 0:
            n.append(int((cpu + eps) // cpus_per_worker))
        if gpus_per_worker > 0:
            n.append(int((gpu + eps) // gpus_per_worker))
        if memory_per_worker:
            n.append(int(mem // memory_per_worker))
        return min(n) if n else 1 << 30

    room = sum(fits(c, g, m) for c, g, m in zip(cpus, gpus, mems))
    share = f"{cpus_per_worker:g} CPUs"
    if gpus_per_worker:
        share += f" x {gpus_per_worker:g} GPUs"
    if memory_per_worker:
        share += f" x {_gib(memory_per_worker)} memory"
    if room == 0:
        raise UnschedulableError(
            f"no node of the Ray cluster has room for one worker of {share} "
            f"(largest node: {max(cpus, default=0):g} CPUs, {max(gpus, default=0):g} GPUs, "
            f"{_gib(max(mems, default=0))} memory)"
        )
    if workers is None:
        return max(1, min(room, 1 << 10))
    if workers > room:
        raise UnschedulableError(
            f"{workers} workers x {share} do not fit the Ray cluster ({sum(cpus):g} CPUs, "
            f"{sum(gpus):g} GPUs, {_gib(sum(mems))} memory on {len(nodes)} node(s)): at most "
            f"{room} fit; lower --workers or the per-worker share"
        )
    return workers


def _gib(n: float) -> str:
    return f"{n / (1 << 30):.3g} GiB"


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from ``4G``, ``512M``, ``1.5GiB``, ``2000000`` (K, M, G, T: powers
    of 1024); ValueError for anything else."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([KMGT]?)(?:I?B)?\s*", text.upper())
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"--worker-memory {text}: a size such as 4G, 512M or 1.5GiB")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def worker_bytes(width: int, height: int, scale: int, channels: int = 3, itemsize: int = 1) -> int:
    """The memory a worker may need for one picture: the bound the local
    command line is measured against (benchmarks/memory.py: 1.5 x the
    output's bytes + 1.5 GiB)."""
    out = width * height * scale * scale * channels * itemsize
    return int(OUTPUT_FACTOR * out) + WORKER_BASE_BYTES


def _picture_bytes(path: Path, scale: int) -> tuple[int, int, int] | None:
    """(width, height, worker_bytes) from a picture's header; None when only
    decoding can tell (the worker then finds out)."""
    import warnings

    from PIL import Image as PILImage

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PILImage.DecompressionBombWarning)
            with open(path, "rb") as f, PILImage.open(f) as im:
                (w, h), mode = im.size, im.mode
                bands = len(im.getbands())
                raw = str(im.tile[0][3]) if im.tile else ""  # "RGB;16B": 16-bit samples
    except Exception:  # a bomb, a TIFF only tifffile reads, no header...
        return None
    channels = 4 if mode in ("P", "PA") else bands  # a palette: RGB(A) once decoded
    itemsize = 4 if mode in ("F", "I") else 2 if "16" in mode or "16" in raw else 1
    return w, h, worker_bytes(w, h, scale, channels, itemsize)


def _refuse_too_large(jobs: list[Any], uris: dict[Path, str], scale: int, memory: int) -> None:
    """Fail, by name and before they run, the pending pictures whose header
    shows they need more than a worker's ``memory``."""
    for job in jobs:
        if job.status != "pending" or job.src in uris:  # objects: only their workers read them
            continue
        found = _picture_bytes(job.src, scale)
        if found is not None and found[2] > memory:
            w, h, need = found
            job.status = "failed"
            job.error = (
                f"too large for a worker: {w} x {h} pixels needs about {_gib(need)} "
                f"(1.5 x the output + 1.5 GiB), --worker-memory is {_gib(memory)}"
            )


# -- the workers --------------------------------------------------------------


class RestoreWorker:
    """One worker of the pool: loads the model once, then restores one file
    per call; returns one small row per file, never pixels."""

    def __init__(self, spec: RestorerSpec, opts: BatchOptions, threads: int | None) -> None:
        """``spec``: the model; ``opts``: what to do with the files (their level
        already dropped for a model that takes none); ``threads``: torch's CPU
        threads (None: left as they are)."""
        import tempfile

        if threads is not None:
            import torch

            torch.set_num_threads(threads)
        self.restorer, self.broken = None, None
        try:
            self.restorer = spec.build()  # upscale: the local upscale's chain
        except Exception as exc:  # each of its files fails with the reason; a worker
            # that died instead would be replaced again and again
            import socket

            self.broken = f"no model on worker {socket.gethostname()}: {first_line(exc)}"
            self.ran_on = json.dumps({"device": None, "precision": None})
        else:
            engine = self.restorer.engine
            self.ran_on = json.dumps({"device": str(engine.device), "precision": engine.precision})
        self.opts = opts
        self.tmp = tempfile.mkdtemp(prefix="scnrestore-")
        self.fs_cache: dict[str, Any] = {}

    def ready(self) -> str:
        """Where the model runs (JSON: device, precision), once it is built."""
        return self.ran_on

    def one(self, src: str, dst: str, uri: str, attempt: int = 1) -> dict[str, Any]:
        """Restore ``src`` (fetched from ``uri`` first, if any) into ``dst``.
        ``attempt``: 2 and more when a worker died on this file before; an
        output found then is that attempt's (outputs that existed before the
        run are not handed out), so the file is done."""
        from .plan import Job

        notes: list[str] = []
        job = Job(Path(src), Path(dst))
        fetched = None
        if self.broken:
            job.status, job.error = "failed", self.broken
        elif attempt > 1 and not self.opts.overwrite and job.dst.exists():
            job.status = "ok"
            job.info.update(_written_by_earlier_attempt(job.dst))
        else:
            fetched = self._restore(job, uri, notes)
        tmp_name = str(fetched) if fetched is not None else None
        return {
            "input": src,
            "output": dst,
            "status": job.status,
            "error": (job.error or "").replace(tmp_name, src) if tmp_name else job.error or "",
            "seconds": float(job.seconds),
            "info": json.dumps(job.info),
            "chained": bool(job.chained),
            "notes": json.dumps([n.replace(tmp_name, src) if tmp_name else n for n in notes]),
            "ran_on": self.ran_on,
        }

    def _restore(self, job: Any, uri: str, notes: list[str]) -> Path | None:
        """restore_file, an object fetched first; returns the fetched file's name."""
        from .pipeline import failure
        from .run import restore_file

        t0 = time.time()
        fetched = None
        try:
            if uri and not (job.dst.exists() and not self.opts.overwrite):
                fetched = self._fetch(uri, str(job.src))
                job.src = fetched
            restore_file(job, self.restorer, self.opts, note=notes.append)
        except Exception as exc:  # fetching an object; restore_file reports its own
            job.status, job.error = "failed", failure(exc)
            job.seconds = time.time() - t0
        finally:
            if fetched is not None:
                with contextlib.suppress(OSError):
                    fetched.unlink()
        return fetched

    def _fetch(self, uri: str, key: str) -> Path:
        """An object's bytes in a private local file of the same name, to be
        read exactly as a local file is."""
        from pyarrow import fs as pafs

        scheme = uri.split("://", 1)[0]
        fs = self.fs_cache.get(scheme)
        if fs is None:
            fs, path = pafs.FileSystem.from_uri(uri)
            self.fs_cache[scheme] = fs
        else:
            path = uri.split("://", 1)[1]
        local = Path(self.tmp) / f"{abs(hash(key)):x}" / Path(path).name
        local.parent.mkdir(exist_ok=True)
        with fs.open_input_stream(path) as f, open(local, "wb") as g:
            while chunk := f.read(1 << 20):
                g.write(chunk)
        return local


def _written_by_earlier_attempt(dst: Path) -> dict[str, Any]:
    """The size of an output a dead worker finished (as a done file's row has it)."""
    from PIL import Image as PILImage

    try:
        with PILImage.open(dst) as im:
            return {"width": im.size[0], "height": im.size[1]}
    except Exception:  # a format Pillow cannot open: the row goes without it
        return {}


# -- the run ------------------------------------------------------------------


def restore_dataset(
    inputs: str | Iterable[str],
    spec: RestorerSpec,
    opts: BatchOptions | None = None,
    *,
    cluster: ClusterOptions | None = None,
    manifest: str | os.PathLike[str] | None = None,
    on_result: Callable[[Any, list[str]], None] | None = None,
    on_plan: Callable[[list[Any], list[str]], None] | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Report:
    """Restore every image of ``inputs`` on a Ray cluster; see the module doc.

    ``inputs``: files, folders, globs, list files (``.txt``/``.lst``, one path
    or URI a line) and URIs pyarrow can list (``s3://bucket/photos/``).
    ``spec``: the model and how it runs (for upscale, its JPEG and noise
    steps), built once by each worker. ``opts``: what is done with the files,
    as in a local batch: ``output``, a folder every worker can write (or a file
    for one input; None writes beside each input as the CLI does),
    ``recursive``, ``level`` (sigma or JPEG quality, a number or ``"auto"``),
    the output format and encoding, ``skip_existing`` / ``overwrite``; its
    ``task`` and ``scale`` must be the spec's. Default: the spec's task and
    scale, outputs beside the inputs, existing ones skipped (a re-run
    resumes). ``cluster``: where, on how many workers, their memory and the
    tries per file (default: a local cluster, as many workers as fit).
    ``manifest``: where the JSON-lines rows go (default: in the output folder,
    else the current one, as ``scnrestore-manifest.jsonl``). ``on_plan(jobs,
    notes)`` is called once planned, ``on_result(job, notes)`` as each file is
    done, ``on_note(line)`` when a worker died and its file is tried again.
    Raises ValueError (UnschedulableError included) for a request that cannot
    run, before any file is written.
    """
    cluster = cluster or ClusterOptions()
    if opts is None:
        opts = BatchOptions(spec.task, scale=spec.scale, skip_existing=True)
    spec = check_request(spec, opts, cluster)
    if opts.overwrite:
        opts = replace(opts, skip_existing=False)
    started = time.time()
    plan = plan_on_cluster(inputs, spec, opts, cluster)
    if plan.refusals:
        raise ValueError(plan.refusals[0])
    if on_plan is not None:
        on_plan(plan.jobs, plan.notes)
    where = Path(manifest) if manifest is not None else default_manifest(opts.output)
    return run_plan(
        plan, spec, opts, cluster, where, on_result=on_result, on_note=on_note, started=started
    )


def run_plan(
    plan: BatchPlan,
    spec: RestorerSpec,
    opts: BatchOptions,
    cluster: ClusterOptions,
    manifest: Path,
    *,
    on_result: Callable[[Any, list[str]], None] | None = None,
    on_note: Callable[[str], None] | None = None,
    started: float | None = None,
) -> Report:
    """Run a plan's pending jobs on the cluster and write the manifest (the
    settled jobs' rows first); ``started``: when the run began (its planning
    included; default now). The model is checked here, once, before the
    cluster is asked for anything: an unknown name or a bad checkpoint raises
    as in a local run. See :func:`restore_dataset` for the callbacks."""
    started = time.time() if started is None else started
    pending = plan.pending
    rows, by_key = _rows(pending, plan.uris)
    if pending:
        opts = _levelled(spec, opts)
    ran_on: dict[str, str] | None = None
    with contextlib.ExitStack() as stack:
        n = 0
        if pending:  # refused here, before the manifest of an earlier run is replaced
            stack.enter_context(connect(cluster.address))
            n = check_resources(
                cluster.workers, cluster.cpus_per_worker, cluster.gpus_per_worker,
                cluster.worker_memory,
            )  # fmt: skip
        manifest.parent.mkdir(parents=True, exist_ok=True)
        part = manifest.with_name(f".{manifest.name}.part")
        with _replacing(part, manifest) as mf:
            for j in plan.jobs:  # settled while planning: in the manifest too
                if j.status != "pending":
                    mf.write(_manifest_line(j))
            mf.flush()
            pool = _Pool((spec, opts, cluster.torch_threads), cluster, n) if pending else None
            for row in pool.run(rows, on_note) if pool is not None else ():
                job = by_key.get(row["input"])
                if job is None:  # pragma: no cover - a row for no input of ours
                    continue
                where = _take_row(job, row)
                ran_on = ran_on or where
                mf.write(_manifest_line(job))
                mf.flush()
                if on_result is not None:
                    on_result(job, json.loads(row["notes"]))
    return _report(plan.jobs, manifest, time.time() - started, ran_on)


def _rows(pending: list[Job], uris: dict[Path, str]) -> tuple[list[dict[str, str]], dict[str, Job]]:
    """What each worker call is handed (input key, output, URI), and the job of each key."""
    by_key: dict[str, Job] = {}
    rows = []
    for j in pending:
        assert j.dst is not None
        key = uris.get(j.src) or str(j.src.absolute())
        by_key[key] = j
        rows.append({"input": key, "output": str(j.dst.absolute()), "uri": uris.get(j.src, "")})
    return rows, by_key


def _levelled(spec: RestorerSpec, opts: BatchOptions) -> BatchOptions:
    """``opts`` without its level for a model that takes none; building the
    task's network here (upscale: the chain's clean-input upscaler) checks the
    model before any worker starts."""
    on_cpu = replace(spec, device="cpu", precision="fp32", tta=False, steps=None)
    probe = on_cpu.build()
    if opts.level is not None and not probe.conditioned:
        return replace(opts, level=None)
    return opts


def _take_row(job: Job, row: dict[str, Any]) -> dict[str, str] | None:
    """A worker's row into ``job``; returns where it ran (None if it says not)."""
    job.status = row["status"]
    job.error = row["error"] or None
    job.seconds = float(row["seconds"])
    job.info.update(json.loads(row["info"]))
    job.chained = bool(row["chained"])
    return json.loads(row["ran_on"]) if row["ran_on"] else None


def _report(jobs: list[Job], manifest: Path, seconds: float, ran_on: dict | None) -> Report:
    counts = {s: sum(j.status == s for j in jobs) for s in ("ok", "failed", "skipped", "pending")}
    return Report(
        done=counts["ok"],
        failed=counts["failed"],
        skipped=counts["skipped"],
        not_run=counts["pending"],
        manifest=manifest,
        seconds=seconds,
        device=(ran_on or {}).get("device"),
        precision=(ran_on or {}).get("precision"),
        jobs=jobs,
    )


def _check_cluster_options(cluster: ClusterOptions) -> None:
    """ValueError for a retry count or worker memory that cannot work."""
    if cluster.max_retries < 1:
        raise ValueError(f"--max-retries must be at least 1 (one try), not {cluster.max_retries}")
    memory = cluster.worker_memory
    if memory is not None and memory < WORKER_BASE_BYTES:
        raise ValueError(
            f"--worker-memory {_gib(memory)}: a worker needs at least {_gib(WORKER_BASE_BYTES)} "
            "besides its picture (the model and its buffers)"
        )


@contextlib.contextmanager
def _replacing(part: Path, final: Path) -> Iterator[Any]:
    """A file written at ``part`` and renamed to ``final`` even when the run
    stops early (its rows are what was done); the other rows are not run."""
    with open(part, "w", encoding="utf-8", errors="surrogateescape") as f:
        try:
            yield f
        finally:
            f.flush()
            os.replace(part, final)


class _Pool:
    """The workers of a run, driven from here: one file per worker at a time,
    so a worker that dies names the file it died on. A dead worker is replaced
    by a fresh one (Ray's own restarts would try its file again forever) and
    the file goes to the back of the queue, until it has had ``max_retries``
    tries; then its row says why it failed."""

    def __init__(self, args: tuple[Any, ...], cluster: ClusterOptions, size: int) -> None:
        """``args``: each :class:`RestoreWorker`'s; ``size``: workers at most."""
        import ray

        options: dict[str, Any] = {"num_cpus": cluster.cpus_per_worker}
        if cluster.gpus_per_worker:
            options["num_gpus"] = cluster.gpus_per_worker
        if cluster.worker_memory:
            options["memory"] = cluster.worker_memory
        self.worker = ray.remote(max_restarts=0, max_task_retries=0)(RestoreWorker).options(
            **options
        )
        self.args, self.size, self.tries = args, size, cluster.max_retries
        self.starting: dict[Any, Any] = {}  # ready() call -> worker
        self.idle: list[Any] = []
        self.busy: dict[Any, tuple[Any, int, int]] = {}  # one() call -> (worker, row, try)
        self.start_deaths = 0

    def run(
        self, rows: list[dict[str, str]], on_note: Callable[[str], None] | None
    ) -> Iterator[dict[str, Any]]:
        """The result row of each of ``rows``, as each is done (in no set order)."""
        import ray

        todo = deque((i, 1) for i in range(len(rows)))
        try:
            for _ in range(min(self.size, len(rows))):
                self._start()
            while todo or self.busy:
                while todo and self.idle:
                    i, k = todo.popleft()
                    w, row = self.idle.pop(), rows[i]
                    self.busy[w.one.remote(row["input"], row["output"], row["uri"], k)] = (w, i, k)
                waiting = [*self.starting, *self.busy]
                wait = None if self.busy else START_TIMEOUT_S
                done, _ = ray.wait(waiting, num_returns=1, timeout=wait)
                if not done:
                    raise RuntimeError(
                        f"no worker could start in {START_TIMEOUT_S:g} s "
                        "(the cluster lost the room for them?)"
                    )
                if done[0] in self.starting:
                    self._started(done[0])
                    continue
                w, i, k = self.busy.pop(done[0])
                try:
                    result = ray.get(done[0])
                except ray.exceptions.RayError as exc:
                    ray.kill(w)  # (dead already, or unreachable: none of its calls will run)
                    self._start()  # a fresh worker in its place
                    why = _why_it_died(exc)
                    if k < self.tries:
                        todo.append((i, k + 1))
                        if on_note is not None:
                            on_note(
                                f"note: {rows[i]['input']}: {why[0]} (try {k} of "
                                f"{self.tries}), trying it again: {why[1]}"
                            )
                        continue
                    yield _died_row(rows[i], why, k)
                    continue
                self.idle.append(w)
                if k > 1:
                    info = json.loads(result["info"])
                    result["info"] = json.dumps({**info, "attempts": k})
                yield result
        finally:
            for w in [*self.starting.values(), *self.idle, *(b[0] for b in self.busy.values())]:
                with contextlib.suppress(Exception):
                    ray.kill(w)

    def _start(self) -> None:
        w = self.worker.remote(*self.args)
        self.starting[w.ready.remote()] = w

    def _started(self, ref: Any) -> None:
        """A worker's ready() returned: into the pool, or replaced if it died
        starting (up to ``max_retries`` times per worker, in a row)."""
        import ray

        w = self.starting.pop(ref)
        try:
            ray.get(ref)
        except ray.exceptions.RayError as exc:
            self.start_deaths += 1
            if self.start_deaths >= self.tries * self.size:
                why = _why_it_died(exc)[1]
                raise RuntimeError(f"workers die as they start: {why}") from None
            self._start()
            return
        self.start_deaths = 0
        self.idle.append(w)


def _why_it_died(exc: BaseException) -> tuple[str, str]:
    """(what, detail) on a failed call from Ray's error: a worker's death
    (its pid and exit detail), or an exception in the call itself."""
    import ray

    if not isinstance(exc, ray.exceptions.RayActorError):
        return "internal error", first_line(exc)
    text = " ".join(str(exc).split())
    detail = re.search(r"exit detail: (.*?)(?: Some common causes|$)", text)
    pid = re.search(r"\bpid: (\d+)", str(exc))
    what = detail.group(1).rstrip(". ") if detail else first_line(exc).rstrip(". ")
    return "worker died while restoring", (f"pid {pid.group(1)}: " if pid else "") + what


def _died_row(row: dict[str, str], why: tuple[str, str], tries: int) -> dict[str, Any]:
    """The failed row of a file whose every try ended with its worker's death."""
    return {
        "input": row["input"],
        "output": row["output"],
        "status": "failed",
        "error": f"{why[0]} ({tries} attempts): {why[1]}",
        "seconds": 0.0,
        "info": json.dumps({"attempts": tries}),
        "chained": False,
        "notes": "[]",
        "ran_on": "",
    }


def _manifest_line(job: Any) -> str:
    row = {
        "input": str(job.src),
        "output": str(job.dst) if job.dst else None,
        "status": job.status if job.status != "pending" else "not run",
        "error": job.error,
        "seconds": round(job.seconds, 3),
        **job.info,
    }
    return json.dumps(row, ensure_ascii=False) + "\n"


def default_manifest(output: str | os.PathLike[str] | None) -> Path:
    """Where the manifest goes: in the output folder, else the current one."""
    out = Path(output) if output is not None else None
    folder = out if out is not None and (out.is_dir() or not out.suffix) else Path()
    return folder / MANIFEST_NAME
