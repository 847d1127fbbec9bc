"""The ``scnrestore`` app: --version, and the commands, one module each.

Exit codes: 0 every file done (or skipped on purpose; an empty folder is a
note); 1 at least one file failed (each reported in one line, the batch went
on); 2 usage error (bad option, unknown or unobtainable model, unusable
checkpoint); 130 interrupted (Ctrl-C), after a summary of what was done.

torch is imported only when a command runs a model, so ``--help`` is instant.
"""

from __future__ import annotations

from typing import Annotated

import typer

from .._version import __version__
from . import compare, evaluate, models, restore, train
from .options import Command, Group

__all__ = ["app"]

app = typer.Typer(
    name="scnrestore",
    help="Restore images with Scale-wise Convolutional Networks (SCN): "
    "upscale, denoise and remove JPEG artifacts.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    cls=Group,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"scnrestore {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Restore images with Scale-wise Convolutional Networks."""


app.command(cls=Command)(restore.upscale)
app.command(cls=Command)(restore.denoise)
app.command(cls=Command)(restore.dejpeg)
app.command(cls=Command)(compare.compare)
app.command(cls=Command)(train.train)
app.command("eval", cls=Command)(evaluate.evaluate_cmd)
app.add_typer(models.app, name="models")
