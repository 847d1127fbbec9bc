"""Restore many images on a Ray cluster: the public name of
:mod:`scnrestore.batch.cluster` (README and docs/distributed.md import
``scnrestore.distributed``); the code lives with the batch it runs."""

from __future__ import annotations

from .batch.cluster import (
    LIST_EXTS,
    MANIFEST_NAME,
    MAX_RETRIES,
    ClusterOptions,
    Report,
    RestoreWorker,
    UnschedulableError,
    check_request,
    check_resources,
    connect,
    default_manifest,
    parse_size,
    plan_jobs,
    plan_on_cluster,
    restore_dataset,
    run_plan,
    worker_bytes,
)

__all__ = [
    "LIST_EXTS",
    "MANIFEST_NAME",
    "MAX_RETRIES",
    "ClusterOptions",
    "Report",
    "RestoreWorker",
    "UnschedulableError",
    "check_request",
    "check_resources",
    "connect",
    "default_manifest",
    "parse_size",
    "plan_jobs",
    "plan_on_cluster",
    "restore_dataset",
    "run_plan",
    "worker_bytes",
]
