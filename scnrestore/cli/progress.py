"""The command line's one progress factory: every rich bar it draws (a batch's
files and tiles, a model's download, a training run's steps) is made here, on
stderr. The library draws none: it calls back (``progress(done, total)`` for
tiles, ``progress(name, done, total)`` for a download, as pooch's downloaders
take a progress bar), and the command decides whether and how to show it.

rich is imported when a bar is made, never at ``import scnrestore.cli``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["stderr_console", "progress_bar", "download_progress"]


def stderr_console(**options: Any) -> Console:
    """A rich console on stderr (``options``: rich's, e.g. ``highlight=False``)."""
    from rich.console import Console

    return Console(stderr=True, **options)


def progress_bar(console: Console, kind: str) -> Progress:
    """A rich bar on ``console``, not started. ``kind``: ``files`` (a batch: the
    name, done of all, time spent and left; names shown as they are),
    ``bytes`` (a download: size, speed, time left) or ``steps`` (training:
    step of all, loss and validation from the task's fields, time left)."""
    from rich import progress as p

    columns: dict[str, tuple[Any, ...]] = {
        "files": (p.TextColumn("{task.description}", markup=False), p.BarColumn(),
                  p.MofNCompleteColumn(), p.TimeElapsedColumn(), p.TimeRemainingColumn()),
        "bytes": (p.TextColumn("{task.description}"), p.BarColumn(), p.DownloadColumn(),
                  p.TransferSpeedColumn(), p.TimeRemainingColumn()),
        "steps": (p.TextColumn("step {task.completed}/{task.total}"), p.BarColumn(),
                  p.TextColumn("loss {task.fields[loss]:.4f}  {task.fields[val]}"),
                  p.TimeRemainingColumn()),
    }  # fmt: skip
    return p.Progress(*columns[kind], console=console, transient=False)


@contextlib.contextmanager
def download_progress(quiet: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """The progress callback to hand a download (``scnrestore.weights.fetch``):
    None when ``quiet``; else one that draws a bar per file on stderr, once it
    is called and only where stderr is a terminal. The bar stops on leaving."""
    if quiet:
        yield None
        return
    state: dict[str, Any] = {}

    def show(name: str, done: int, total: int) -> None:
        if "bar" not in state:  # decide once
            console = stderr_console()
            state["bar"] = progress_bar(console, "bytes") if console.is_terminal else None
            if state["bar"] is not None:
                state["bar"].start()
        bar = state["bar"]
        if bar is None:
            return
        if name not in state:
            state[name] = bar.add_task(name, total=total)
        bar.update(state[name], completed=done, total=total)

    try:
        yield show
    finally:
        if state.get("bar") is not None:
            state["bar"].stop()
