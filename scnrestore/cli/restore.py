"""``scnrestore upscale`` / ``denoise`` / ``dejpeg``: a batch of files through one model."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..spec import RestorerSpec
from .groups import Files, Model, Runner, Size, grouped
from .options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    RESTORE,
    CalibrationOpt,
    DenoiseOpt,
    Inputs,
    JpegOpt,
    KeepInputOpt,
    KeepLumaOpt,
    check_plan,
    fetch_model,
    fetch_models,
    level_option,
    make_restorer,
    output_option,
    parse_keep,
    parse_level,
    parse_steps,
    usage,
)

if TYPE_CHECKING:
    from ..batch import BatchOptions
    from ..batch.cluster import ClusterOptions
    from ..protocol import RestorerLike

__all__ = ["upscale", "denoise", "dejpeg", "run_batch"]


def run_batch(
    inputs: list[str],
    opts: BatchOptions,
    spec: RestorerSpec,
    quiet: bool,
    as_json: bool,
    cluster: ClusterOptions | None = None,
    offline: bool = False,
    suffix: str | None = None,
) -> None:
    """Shared body of upscale / denoise / dejpeg: plan, fetch the model, run, sum up.

    ``spec``: the model and how it runs (for upscale, its chain; see
    scnrestore.chain). ``cluster``: --ray and the worker options, the batch on
    a Ray cluster instead. ``offline``: --offline, for fetching the model.
    ``suffix``: --suffix, what an output beside its input adds to its name
    (None: the task's, or the output size's for --outscale / --width).
    """
    from ..batch import plan_batch, run_jobs
    from .report import ConsoleReporter, print_summary

    if cluster is not None:
        from .distributed import run_cli

        if suffix is not None or spec.size is not None:
            usage("--suffix, --outscale, --width and --height do not run with --ray yet")
        return run_cli(inputs, opts, spec, quiet, as_json, cluster=cluster, offline=offline)

    if suffix is None and spec.size is not None:
        suffix = spec.size.suffix
    plan = plan_batch(inputs, opts, suffix=suffix)
    check_plan(plan)
    if plan.pending:
        fetch_model(spec, offline, quiet=quiet)
    reporter = ConsoleReporter(quiet, as_json, len(plan.jobs))
    for line in plan.notes:
        reporter.note(line)

    try:
        result = run_jobs(plan.jobs, opts, reporter, lambda: _ready(spec, offline))
    finally:
        reporter.close()
    print_summary(result, reporter, as_json)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if any(j.status == "failed" for j in plan.jobs):
        raise typer.Exit(EXIT_FAILED)


def _ready(spec: RestorerSpec, offline: bool) -> RestorerLike:
    """The spec's restorer, with every model it may need at hand before the
    first file is restored (a JPEG-aware upscaler, dejpeg, the denoiser:
    fetched quietly now, as loading them would; one line and exit 2 if one
    cannot be had)."""
    restorer = make_restorer(spec)
    fetch_models(restorer.models, offline, quiet=True)
    return restorer


def _run(
    inputs: list[str], opts: BatchOptions, spec: RestorerSpec, files: Files,
    runner: Runner, offline: bool,
) -> None:  # fmt: skip
    """run_batch with the groups' options: what each command ends with."""
    run_batch(
        inputs, opts, spec, files.quiet, files.as_json, runner.cluster(), offline, files.suffix
    )


# -- the commands -------------------------------------------------------------------


@grouped
def upscale(
    inputs: Inputs,
    scale: Annotated[
        int,
        typer.Option(
            "--scale",
            "-s",
            min=2,
            max=4,
            metavar="2|3|4",
            rich_help_panel=RESTORE,
            help="The trained scale (--outscale: any other).",
        ),
    ] = 4,
    size: Size = Size(),
    jpeg: JpegOpt = "auto",
    denoise: DenoiseOpt = "off",
    model: Model = Model(),
    output: Annotated[Path | None, output_option("NAME_x4.png (NAME_x2.png with -s 2)")] = None,
    files: Files = Files(),
    runner: Runner = Runner(),
) -> None:
    """Upscale images 2x, 3x or 4x, or to any size; a JPEG's artefacts go in the same pass.

    Steps, in this order: JPEG artefacts (the last thing done to a file), noise
    (--denoise), the upscale; in memory, rounded once at the end.

    Example: [bold]scnrestore upscale photo.jpg -s 4[/bold]
    """
    parse_steps(jpeg, denoise)  # a usage error before anything else
    out_size = size.out_size(model.model)
    opts = files.batch("upscale", None, scale, output)
    spec = runner.spec(model, "upscale", scale, steps=(jpeg, denoise), size=out_size)
    _run(inputs, opts, spec, files, runner, model.offline)


@grouped
def denoise(
    inputs: Inputs,
    sigma: Annotated[
        str,
        level_option(
            "Noise level (standard deviation on the 0-255 scale), 1-75, for "
            "white Gaussian noise; or auto: estimated per image and printed (with a "
            "blind real-noise model in the registry, scn-denoise-real: that model, "
            "and the σ it removed).",
        ),
    ] = "auto",
    keep_input: KeepInputOpt = "auto",
    level_calibration: CalibrationOpt = True,
    model: Model = Model(),
    output: Annotated[Path | None, output_option("NAME_denoised.png")] = None,
    files: Files = Files(),
    runner: Runner = Runner(),
) -> None:
    """Remove noise: Gaussian noise of a told or estimated sigma, or a camera's.

    Examples: [bold]scnrestore denoise --sigma 25 dir/[/bold],
    [bold]scnrestore denoise photo.jpg[/bold] (sigma auto)
    """
    from ..weights import auto_denoise_model

    level = parse_level("denoise", sigma)
    if model.model is None and level == "auto":
        # the blind real-noise model, where it ships
        model = replace(model, model=auto_denoise_model())
    opts = files.batch("denoise", level, 1, output)
    keep = parse_keep(keep_input, "--keep-input")
    spec = runner.spec(model, "denoise", 1, keep=keep, calibration=level_calibration)
    _run(inputs, opts, spec, files, runner, model.offline)


@grouped
def dejpeg(
    inputs: Inputs,
    quality: Annotated[
        str,
        level_option(
            "JPEG quality the images were saved with, 5-100, or auto: read "
            "from each JPEG file's quantisation tables (other files in a folder or "
            "glob are skipped). The model was trained on 5-95 and is told 95 for "
            "higher qualities.",
        ),
    ] = "auto",
    keep_luma: KeepLumaOpt = "auto",
    level_calibration: CalibrationOpt = True,
    model: Model = Model(),
    output: Annotated[Path | None, output_option("NAME_dejpeg.png")] = None,
    files: Files = Files(),
    runner: Runner = Runner(),
) -> None:
    """Remove JPEG compression artefacts.

    Example: [bold]scnrestore dejpeg --quality 10 *.jpg[/bold]
    """
    opts = files.batch("dejpeg", parse_level("dejpeg", quality), 1, output)
    keep = parse_keep(keep_luma, "--keep-luma")
    spec = runner.spec(model, "dejpeg", 1, keep=keep, calibration=level_calibration)
    _run(inputs, opts, spec, files, runner, model.offline)
