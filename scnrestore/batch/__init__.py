"""Batches of files: planning (inputs -> jobs -> outputs) and running them with
file I/O overlapped with the model. The command line drives it; so can Python::

    from scnrestore.batch import BatchOptions, plan_batch, run_jobs

    plan = plan_batch(["photos/"], BatchOptions("upscale", scale=2))
    # plan.refusals: why it cannot run; plan.notes; plan.jobs -> run_jobs(plan.jobs, ...)

The same plan runs on a Ray cluster (:mod:`scnrestore.batch.cluster`, public
as ``scnrestore.distributed``). No typer here: messages go through a
:class:`Reporter` the caller provides, refusals come back in the plan.
"""

from __future__ import annotations

from .options import BatchOptions, Encoding
from .pipeline import (
    WRITE_BYTES,
    Pipeline,
    Reporter,
    Ticket,
    failure,
    write_output,
    write_slots,
)
from .plan import (
    SUFFIX,
    BatchPlan,
    Job,
    Source,
    check_inputs,
    check_writable,
    expand_inputs,
    guard_outputs,
    output_name_refusal,
    plan_batch,
    plan_outputs,
    resolved,
    same_file,
    skip_earlier_outputs,
)
from .run import (
    BatchResult,
    restore_file,
    run_jobs,
    settled_by_output,
)

__all__ = [
    "BatchOptions",
    "BatchPlan",
    "BatchResult",
    "Encoding",
    "Job",
    "Pipeline",
    "Reporter",
    "SUFFIX",
    "Source",
    "Ticket",
    "WRITE_BYTES",
    "check_inputs",
    "check_writable",
    "expand_inputs",
    "failure",
    "guard_outputs",
    "output_name_refusal",
    "plan_batch",
    "plan_outputs",
    "resolved",
    "restore_file",
    "run_jobs",
    "same_file",
    "skip_earlier_outputs",
    "settled_by_output",
    "write_output",
    "write_slots",
]
