"""What the commands share: exit codes, option types, their parsing, the model they run.

torch is imported only when a command runs a model, so ``--help`` is instant:
nothing here imports more than typer.
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from ..errors import one_line
from ..levels import parse_level as _parse_level
from ..runtime import PRECISIONS
from ..tasks import LOSSES, TASKS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ..batch import BatchPlan
    from ..protocol import RestorerLike
    from ..spec import RestorerSpec

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

Precision = StrEnum("Precision", [(p, p) for p in PRECISIONS])
Task = StrEnum("Task", [(t, t) for t in TASKS])
Loss = StrEnum("Loss", [(n, n) for n in LOSSES])


# -- help that reads like typer's own ---------------------------------------------


def _no_type(ctx: Any) -> None:
    return None


def _plain(params: list[Any]) -> list[Any]:
    """No type after a flag (``--recursive``, ``--help``) nor after the
    arguments (``inputs...``): they take no value to describe."""
    for p in params:
        if isinstance(p, TyperArgument) or getattr(p, "is_flag", False):
            p.display_type_rich = _no_type  # type: ignore[attr-defined]
    return params


class Command(TyperCommand):
    """A command whose --help fits 80 columns and a pipe (see :mod:`.help`):
    two columns, options grouped by their ``rich_help_panel``, value lists
    shown, a plain usage line (``INPUTS...``)."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        from .help import usage_line

        return usage_line(self, ctx).split(" ")[1 + len(ctx.command_path.split(" ")) :]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        from .help import format_command_help

        format_command_help(self, ctx)


class Group(TyperGroup):
    """A group (the app, ``models``) with the same help as :class:`Command`."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _plain(super().get_params(ctx))


# -- shared options ---------------------------------------------------------------

# The --help panels (see .help): a command's own options come first, in RESTORE.
RESTORE, OUTPUT, PERFORMANCE, CLUSTER = "Restore", "Output", "Performance", "Cluster"

Inputs = Annotated[
    list[str],
    typer.Argument(
        help="Image files, directories or glob patterns.", show_default=False, metavar="INPUTS..."
    ),
]


def output_option(default_name: str) -> Any:
    """--output / -o, its help naming the command's own default output name."""
    return typer.Option(
        "--output",
        "-o",
        metavar="PATH",
        rich_help_panel=OUTPUT,
        help="Output file (one input) or directory (mirrors the input tree). "
        f"Default: beside each input, as {default_name}.",
    )


def level_option(help: str) -> Any:
    """--sigma / --quality: a level, N or auto, with the command's own help."""
    return typer.Option(metavar="N|auto", rich_help_panel=RESTORE, help=help)


RecursiveOpt = Annotated[
    bool,
    typer.Option("--recursive", "-r", rich_help_panel=OUTPUT, help="Descend into subdirectories."),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        metavar="NAME|FILE",
        rich_help_panel=RESTORE,
        help="Registry name or checkpoint file (.safetensors / .pt / .pth).",
    ),
]
NumScalesOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=6,
        rich_help_panel=RESTORE,
        help="Pyramid levels of a checkpoint that does not record it.",
    ),
]
DeviceOpt = Annotated[
    str,
    typer.Option(
        metavar="auto|cpu|cuda|cuda:N|mps",
        rich_help_panel=PERFORMANCE,
        help="auto: CUDA, else MPS, else the CPU.",
    ),
]
PrecisionOpt = Annotated[
    Precision,
    typer.Option(
        rich_help_panel=PERFORMANCE,
        help="Compute precision. auto: bf16 on CUDA cards with bf16 (else fp16), "
        "on CPUs where bf16 is measured faster (AMX; AVX512-BF16 probed once), else fp32.",
    ),
]
TileOpt = Annotated[
    int | None,
    typer.Option(
        min=0,
        rich_help_panel=PERFORMANCE,
        help="Tile side in input pixels; 0 = whole image. Default: from memory.",
    ),
]
OverlapOpt = Annotated[
    int,
    typer.Option(min=0, rich_help_panel=PERFORMANCE, help="Pixels shared by neighbouring tiles."),
]
TtaOpt = Annotated[
    bool,
    typer.Option(
        "--tta",
        rich_help_panel=PERFORMANCE,
        help="x8 self-ensemble (flips and transposes): 8x slower, slightly better.",
    ),
]
FormatOpt = Annotated[
    str | None,
    typer.Option(
        "--format",
        "-f",
        metavar="png|jpg|webp|tif|bmp",
        rich_help_panel=OUTPUT,
        help="Output format. Default: the input's (PNG for a JPEG input).",
    ),
]
JpegQualityOpt = Annotated[
    int,
    typer.Option(
        min=1, max=100, rich_help_panel=OUTPUT, help="Quality of JPEG / WebP output files."
    ),
]
PngCompressionOpt = Annotated[
    int,
    typer.Option(
        min=0,
        max=9,
        rich_help_panel=OUTPUT,
        help="zlib level of PNG output files: 1 encodes 3-5x faster than 6 for files"
        " 10-20% larger (big upscales on a GPU spend more time encoding than computing).",
    ),
]
OverwriteOpt = Annotated[
    bool,
    typer.Option("--overwrite", rich_help_panel=OUTPUT, help="Replace existing output files."),
]
SkipOpt = Annotated[
    bool,
    typer.Option(
        "--skip-existing", rich_help_panel=OUTPUT, help="Skip inputs whose output exists."
    ),
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", rich_help_panel=OUTPUT, help="Print errors only.")
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", rich_help_panel=OUTPUT, help="Print one JSON summary on stdout."),
]
SuffixOpt = Annotated[
    str | None,
    typer.Option(
        metavar="TEXT",
        rich_help_panel=OUTPUT,
        help="What the output name adds to the input's, beside it "
        "(NAME + TEXT + extension). Default: the command's (_x4, _denoised, ...).",
    ),
]
OfflineOpt = Annotated[
    bool,
    typer.Option(
        "--offline",
        rich_help_panel=RESTORE,
        help="Never download a model: use embedded or cached files only.",
    ),
]
KeepLumaOpt = Annotated[
    str,
    typer.Option(
        metavar="W|auto",
        rich_help_panel=RESTORE,
        help="Share of the JPEG's own luma to keep, 0-1, or auto: the model's measured "
        "share for the quality (dejpeg; none at low quality, all at 99-100).",
    ),
]
CalibrationOpt = Annotated[
    bool,
    typer.Option(
        "--level-calibration/--no-level-calibration",
        rich_help_panel=RESTORE,
        help="Tell the network the model's calibrated level for the given sigma / quality "
        "(measured per model; see docs/models.md). Off: the level as given.",
    ),
]
KeepInputOpt = Annotated[
    str,
    typer.Option(
        metavar="W|auto",
        rich_help_panel=RESTORE,
        help="Share of the noisy input to blend back, 0-1, or auto: the model's measured "
        "share for the sigma (denoise; most for nearly clean photos, none for noisy ones).",
    ),
]


# scale-out on a Ray cluster (scnrestore.distributed; pip install 'scnrestore[ray]')
RayOpt = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="local|auto|ADDRESS",
        rich_help_panel=CLUSTER,
        help="Run on a Ray cluster: local (started here), auto (the one this machine is in) "
        "or its address. Existing outputs are skipped; a manifest of results is written.",
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(min=1, rich_help_panel=CLUSTER, help="--ray: workers (default: as many as fit)."),
]
GpusOpt = Annotated[
    float,
    typer.Option(
        min=0, rich_help_panel=CLUSTER, help="--ray: GPUs per worker (0.5: two share one)."
    ),
]
CpusOpt = Annotated[
    float, typer.Option(min=0, rich_help_panel=CLUSTER, help="--ray: CPUs per worker.")
]
WorkerMemoryOpt = Annotated[
    str | None,
    typer.Option(
        metavar="SIZE",
        rich_help_panel=CLUSTER,
        help="--ray: memory reserved for each worker (4G, 512M); a picture that "
        "cannot fit in it fails, by name, before it runs.",
    ),
]
MaxRetriesOpt = Annotated[
    int,
    typer.Option(
        min=1,
        rich_help_panel=CLUSTER,
        help="--ray: tries of a file whose worker dies on it (a crash, out of "
        "memory); then that file fails and the run goes on.",
    ),
]


JpegOpt = Annotated[
    str,
    typer.Option(
        "--jpeg",
        metavar="auto|off|Q",
        rich_help_panel=RESTORE,
        help="auto: a JPEG input (known by its quantisation tables) is upscaled for what "
        "it is, its artefacts removed in the same pass; off: every input is treated as "
        "clean; or a quality 5-100 that every input was saved with.",
    ),
]
DenoiseOpt = Annotated[
    str,
    typer.Option(
        "--denoise",
        metavar="off|auto|SIGMA",
        rich_help_panel=RESTORE,
        help="off, auto (per image: the blind real-noise model where one ships, else "
        "the sigma estimated) or a sigma 1-75 (white Gaussian noise): remove noise "
        "before upscaling, after the JPEG step.",
    ),
]


# -- the model a command runs -------------------------------------------------------


def make_restorer(spec: RestorerSpec) -> RestorerLike:
    """``spec.build()``: the command's Restorer, or Chain for upscale; or exit 2 with one line."""
    from ..errors import CheckpointError, RegistryError

    try:
        return spec.build()
    except (RegistryError, CheckpointError, ValueError, OSError) as exc:
        typer.echo(one_line(f"error: {exc}"), err=True)
        raise typer.Exit(EXIT_USAGE) from None


def fetch_model(spec: RestorerSpec, offline: bool, *, quiet: bool) -> None:
    """Have the model's file before the batch starts (a download shows its bar
    unless ``quiet``); exit 2 with one line for a name the registry does not know."""
    from ..weights import default_model

    fetch_models(lambda: [spec.model or default_model(spec.task, spec.scale)], offline, quiet=quiet)


def fetch_models(names: Callable[[], Iterable[str]], offline: bool, *, quiet: bool) -> None:
    """Have every file of ``names()`` (a download shows its bar unless ``quiet``);
    exit 2 with one line if the registry cannot name or give one of them."""
    from ..weights import RegistryError, resolve
    from .progress import download_progress

    try:
        with download_progress(quiet) as progress:
            for name in names():
                resolve(name, offline=offline or None, progress=progress)
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def check_plan(plan: BatchPlan) -> None:
    """What the batch planner refused, as a usage error (exit 2): the first of them."""
    if plan.refusals:
        usage(plan.refusals[0])


# -- parsing ----------------------------------------------------------------------


def usage(msg: str) -> NoReturn:
    """A usage error: click prints it with the usage line, exit 2."""
    raise typer.BadParameter(msg)


def parse_level(task: str, level: str | None) -> float | str | None:
    """--sigma / --quality: a number within the task's range, or "auto"
    (estimated per file); a usage error (exit 2) otherwise."""
    try:
        return _parse_level(level, task)
    except ValueError as exc:
        usage(str(exc))


def parse_keep(text: str, flag: str) -> float | None:
    """--keep-luma / --keep-input: None for auto (the registry's schedule), else 0..1."""
    if text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        usage(f"{flag} must be a number from 0 to 1 or auto, not {text}")
    return value


def parse_steps(jpeg: str, denoise: str) -> tuple[float | str | None, float | str | None]:
    """upscale's --jpeg and --denoise, checked before any model loads (exit 2)."""
    try:
        return _parse_level(jpeg, "dejpeg", step=True), _parse_level(denoise, "denoise", step=True)
    except ValueError as exc:
        usage(str(exc))


def floats(text: str, what: str) -> tuple[float, ...]:
    """'1,0.5' -> (1.0, 0.5); a usage error (exit 2) naming ``what`` otherwise."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        usage(f"{what} must be numbers separated by commas, not {text!r}")
