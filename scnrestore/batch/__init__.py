"""Batches of files: planning (inputs -> jobs -> outputs) and running them with
file I/O overlapped with the model. The command line drives it; so can Python::

    from scnrestore.batch import BatchOptions, expand_inputs, plan_outputs, run_jobs

No typer here: messages go through a :class:`Reporter` the caller provides.
"""

from __future__ import annotations

from .pipeline import (
    WRITE_BYTES,
    Encoding,
    Pipeline,
    Reporter,
    Ticket,
    failure,
    write_output,
    write_slots,
)
from .plan import (
    SUFFIX,
    Job,
    Source,
    check_inputs,
    check_writable,
    expand_inputs,
    guard_outputs,
    plan_outputs,
    resolved,
    same_file,
    skip_earlier_outputs,
)
from .run import (
    BatchOptions,
    BatchResult,
    restore_file,
    run_jobs,
    settled_by_output,
)

__all__ = [
    "BatchOptions",
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
