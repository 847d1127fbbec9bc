"""``scnrestore upscale`` / ``denoise`` / ``dejpeg``: a batch of files through one model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..spec import DEFAULT_OVERLAP, RestorerSpec
from .options import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    RESTORE,
    CalibrationOpt,
    CpusOpt,
    DenoiseOpt,
    DeviceOpt,
    FormatOpt,
    GpusOpt,
    Inputs,
    JpegOpt,
    JpegQualityOpt,
    JsonOpt,
    KeepInputOpt,
    KeepLumaOpt,
    MaxRetriesOpt,
    ModelOpt,
    NumScalesOpt,
    OfflineOpt,
    OverlapOpt,
    OverwriteOpt,
    PngCompressionOpt,
    Precision,
    PrecisionOpt,
    QuietOpt,
    RayOpt,
    RecursiveOpt,
    SkipOpt,
    SuffixOpt,
    TileOpt,
    TtaOpt,
    WorkerMemoryOpt,
    WorkersOpt,
    make_restorer,
    output_option,
    parse_keep,
    parse_level,
    parse_steps,
    usage,
)

if TYPE_CHECKING:
    from ..batch import BatchOptions, Job
    from ..distributed import ClusterOptions
    from ..outsize import OutSize
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
    from ..batch import run_jobs
    from .report import ConsoleReporter, print_summary

    if cluster is not None:
        from .distributed import run_cli

        if suffix is not None or spec.size is not None:
            usage("--suffix, --outscale, --width and --height do not run with --ray yet")

        def before(jobs: list[Job]) -> None:
            if opts.output is not None and not opts.output.is_dir():
                _check_output_name(opts.output, opts.fmt, len(jobs))
            if any(j.status == "pending" for j in jobs):
                _fetch_model(spec, offline, quiet=quiet)

        return run_cli(inputs, opts, spec, quiet, as_json, before=before, cluster=cluster)

    jobs, notes = _plan(inputs, opts, suffix, spec.size)
    if any(j.status == "pending" for j in jobs):
        _fetch_model(spec, offline, quiet=quiet)
    reporter = ConsoleReporter(quiet, as_json, len(jobs))
    for line in notes:
        reporter.note(line)

    try:
        result = run_jobs(jobs, opts, reporter, lambda: _ready(spec, offline))
    finally:
        reporter.close()
    print_summary(result, reporter, as_json)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if any(j.status == "failed" for j in jobs):
        raise typer.Exit(EXIT_FAILED)


def _plan(
    inputs: list[str], opts: BatchOptions, suffix: str | None, size: OutSize | None
) -> tuple[list[Job], list[str]]:
    """The jobs of a batch, settled as far as can be before a model loads, and notes:
    clashes, unreadable inputs, outputs that cannot be written, and files
    that are this tool's earlier outputs (left out unless named)."""
    from ..batch import (
        SUFFIX,
        check_inputs,
        check_writable,
        expand_inputs,
        guard_outputs,
        plan_outputs,
        skip_earlier_outputs,
    )
    from ..imageio import format_for_path

    if opts.overwrite and opts.skip_existing:
        usage("--overwrite and --skip-existing exclude each other")
    if opts.fmt:
        try:
            format_for_path("x", opts.fmt)
        except ValueError as exc:
            usage(str(exc))
    pairs, jobs_missing, notes = expand_inputs(inputs, opts.recursive)
    if suffix is None:
        suffix = size.suffix if size is not None else SUFFIX[opts.task].format(scale=opts.scale)
    pairs, earlier, more = skip_earlier_outputs(pairs, (suffix,))
    if opts.output is not None and not opts.output.is_dir():
        _check_output_name(opts.output, opts.fmt, len(pairs))
    jobs = jobs_missing + plan_outputs(pairs, opts.output, suffix, opts.fmt)
    guard_outputs(jobs)
    check_writable(jobs)
    notes += more + check_inputs(jobs, opts.task, opts.level)
    return jobs + earlier, notes


def _check_output_name(output: Path, fmt: str | None, n_inputs: int) -> None:
    """Usage errors for an ``-o`` that is not a folder: a file name for many
    inputs, a picture format scnrestore does not write, or one that
    contradicts ``-f``."""
    from ..imageio import FORMATS, INPUT_EXTS, format_for_path

    ext = output.suffix.lower()
    if ext in INPUT_EXTS and ext not in FORMATS:
        writable = ".png, .tif, .webp, .bmp or .jpg"
        usage(f"--output {output}: {ext[1:].upper()} is not written (use {writable})")
    if ext not in FORMATS:
        return  # a folder to be made (names like out.v2 are folders too)
    if n_inputs > 1:
        usage(f"--output {output} looks like a file, but there are {n_inputs} inputs")
    if fmt and format_for_path(output, fmt) != format_for_path(output):
        usage(f"--output {output} and --format {fmt} disagree; give one of them")


def _fetch_model(spec: RestorerSpec, offline: bool, *, quiet: bool) -> None:
    """Have the model's file before the batch starts (a download draws its own bar)."""
    from ..weights import RegistryError, default_model, resolve

    try:
        name = spec.model or default_model(spec.task, spec.scale)
        resolve(name, offline=offline or None, quiet=quiet)
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def _ready(spec: RestorerSpec, offline: bool) -> RestorerLike:
    """The spec's restorer, with every model it may need at hand before the
    first file is restored (a JPEG-aware upscaler, dejpeg, the denoiser:
    fetched quietly now, as loading them would; one line and exit 2 if one
    cannot be had)."""
    from ..weights import RegistryError, resolve

    restorer = make_restorer(spec)
    try:
        for name in restorer.models():
            resolve(name, offline=offline or None)
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    return restorer


def _cluster(
    ray: str | None,
    workers: int | None,
    gpus_per_worker: float,
    cpus_per_worker: float,
    worker_memory: str | None = None,
    max_retries: int = 3,
) -> ClusterOptions | None:
    """--ray and the worker options; None without --ray (a local run)."""
    if ray is None:
        return None
    from ..distributed import ClusterOptions, parse_size

    try:
        memory = None if worker_memory is None else parse_size(worker_memory)
    except ValueError as exc:
        usage(str(exc))
    return ClusterOptions(
        ray, workers, gpus_per_worker, cpus_per_worker, worker_memory=memory,
        max_retries=max_retries,
    )  # fmt: skip


# -- the commands -------------------------------------------------------------------


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
    outscale: Annotated[
        float | None,
        typer.Option(
            metavar="F",
            rich_help_panel=RESTORE,
            help="Any factor above 1 up to 16 (1.5, 3.5, 8): the trained scale at or above "
            "it, twice above 4 (x2 then x4 for 8), then an antialiased resize to the "
            "exact size. Output NAME_x3.5.png.",
        ),
    ] = None,
    width: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="W",
            rich_help_panel=RESTORE,
            help="Output width in pixels, the aspect kept (with --height: exactly W x H), "
            "as --outscale does it. Output NAME_wW.png.",
        ),
    ] = None,
    height: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="H",
            rich_help_panel=RESTORE,
            help="Output height in pixels, as --width. Output NAME_hH.png (NAME_WxH.png "
            "with both).",
        ),
    ] = None,
    jpeg: JpegOpt = "auto",
    denoise: DenoiseOpt = "off",
    model: ModelOpt = None,
    num_scales: NumScalesOpt = None,
    offline: OfflineOpt = False,
    output: Annotated[Path | None, output_option("NAME_x4.png (NAME_x2.png with -s 2)")] = None,
    recursive: RecursiveOpt = False,
    suffix: SuffixOpt = None,
    fmt: FormatOpt = None,
    jpeg_quality: JpegQualityOpt = 95,
    png_compression: PngCompressionOpt = 6,
    overwrite: OverwriteOpt = False,
    skip_existing: SkipOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.auto,
    tile: TileOpt = None,
    tile_overlap: OverlapOpt = DEFAULT_OVERLAP,
    tta: TtaOpt = False,
    ray: RayOpt = None,
    workers: WorkersOpt = None,
    gpus_per_worker: GpusOpt = 0.0,
    cpus_per_worker: CpusOpt = 1.0,
    worker_memory: WorkerMemoryOpt = None,
    max_retries: MaxRetriesOpt = 3,
) -> None:
    """Upscale images 2x, 3x or 4x, or to any size; a JPEG's artefacts go in the same pass.

    Steps, in this order: JPEG artefacts (the last thing done to a file), noise
    (--denoise), the upscale; in memory, rounded once at the end.

    Example: [bold]scnrestore upscale photo.jpg -s 4[/bold]
    """
    from ..batch import BatchOptions

    parse_steps(jpeg, denoise)  # a usage error before anything else
    size = _out_size(outscale, width, height, model)
    opts = BatchOptions(
        "upscale", None, scale, output=output, recursive=recursive, fmt=fmt,
        jpeg_quality=jpeg_quality, png_compression=png_compression, overwrite=overwrite,
        skip_existing=skip_existing,
    )  # fmt: skip
    spec = RestorerSpec(
        "upscale", scale, model, num_scales, device, precision.value, tile, tile_overlap, tta,
        steps=(jpeg, denoise), size=size,
    )  # fmt: skip
    cluster = _cluster(ray, workers, gpus_per_worker, cpus_per_worker, worker_memory, max_retries)
    run_batch(inputs, opts, spec, quiet, as_json, cluster, offline, suffix)


def _out_size(
    outscale: float | None, width: int | None, height: int | None, model: str | None
) -> OutSize | None:
    """--outscale / --width / --height as an OutSize (None: -s alone); usage errors."""
    if outscale is None and width is None and height is None:
        return None
    from ..outsize import OutSize

    if model is not None:
        usage("--outscale, --width and --height run the shipped upscalers; drop --model")
    try:
        return OutSize(outscale, width, height)
    except ValueError as exc:
        usage(str(exc))


def denoise(
    inputs: Inputs,
    sigma: Annotated[
        str,
        typer.Option(
            metavar="N|auto",
            rich_help_panel=RESTORE,
            help="Noise level (standard deviation on the 0-255 scale), 1-75, for "
            "white Gaussian noise; or auto: estimated per image and printed (with a "
            "blind real-noise model in the registry, scn-denoise-real: that model, "
            "and the σ it removed).",
        ),
    ] = "auto",
    keep_input: KeepInputOpt = "auto",
    level_calibration: CalibrationOpt = True,
    model: ModelOpt = None,
    num_scales: NumScalesOpt = None,
    offline: OfflineOpt = False,
    output: Annotated[Path | None, output_option("NAME_denoised.png")] = None,
    recursive: RecursiveOpt = False,
    suffix: SuffixOpt = None,
    fmt: FormatOpt = None,
    jpeg_quality: JpegQualityOpt = 95,
    png_compression: PngCompressionOpt = 6,
    overwrite: OverwriteOpt = False,
    skip_existing: SkipOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.auto,
    tile: TileOpt = None,
    tile_overlap: OverlapOpt = DEFAULT_OVERLAP,
    tta: TtaOpt = False,
    ray: RayOpt = None,
    workers: WorkersOpt = None,
    gpus_per_worker: GpusOpt = 0.0,
    cpus_per_worker: CpusOpt = 1.0,
    worker_memory: WorkerMemoryOpt = None,
    max_retries: MaxRetriesOpt = 3,
) -> None:
    """Remove noise: Gaussian noise of a told or estimated sigma, or a camera's.

    Examples: [bold]scnrestore denoise --sigma 25 dir/[/bold],
    [bold]scnrestore denoise photo.jpg[/bold] (sigma auto)
    """
    from ..batch import BatchOptions
    from ..weights import auto_denoise_model

    level = parse_level("denoise", sigma)
    if model is None and level == "auto":
        model = auto_denoise_model()  # the blind real-noise model, where it ships
    opts = BatchOptions(
        "denoise", level, 1, output=output, recursive=recursive,
        fmt=fmt, jpeg_quality=jpeg_quality, png_compression=png_compression,
        overwrite=overwrite, skip_existing=skip_existing,
    )  # fmt: skip
    spec = RestorerSpec(
        "denoise", 1, model, num_scales, device, precision.value, tile, tile_overlap, tta,
        keep=parse_keep(keep_input, "--keep-input"), calibration=level_calibration,
    )  # fmt: skip
    cluster = _cluster(ray, workers, gpus_per_worker, cpus_per_worker, worker_memory, max_retries)
    run_batch(inputs, opts, spec, quiet, as_json, cluster, offline, suffix)


def dejpeg(
    inputs: Inputs,
    quality: Annotated[
        str,
        typer.Option(
            metavar="N|auto",
            rich_help_panel=RESTORE,
            help="JPEG quality the images were saved with, 5-100, or auto: read "
            "from each JPEG file's quantisation tables (other files in a folder or "
            "glob are skipped). The model was trained on 5-95 and is told 95 for "
            "higher qualities.",
        ),
    ] = "auto",
    keep_luma: KeepLumaOpt = "auto",
    level_calibration: CalibrationOpt = True,
    model: ModelOpt = None,
    num_scales: NumScalesOpt = None,
    offline: OfflineOpt = False,
    output: Annotated[Path | None, output_option("NAME_dejpeg.png")] = None,
    recursive: RecursiveOpt = False,
    suffix: SuffixOpt = None,
    fmt: FormatOpt = None,
    jpeg_quality: JpegQualityOpt = 95,
    png_compression: PngCompressionOpt = 6,
    overwrite: OverwriteOpt = False,
    skip_existing: SkipOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.auto,
    tile: TileOpt = None,
    tile_overlap: OverlapOpt = DEFAULT_OVERLAP,
    tta: TtaOpt = False,
    ray: RayOpt = None,
    workers: WorkersOpt = None,
    gpus_per_worker: GpusOpt = 0.0,
    cpus_per_worker: CpusOpt = 1.0,
    worker_memory: WorkerMemoryOpt = None,
    max_retries: MaxRetriesOpt = 3,
) -> None:
    """Remove JPEG compression artefacts.

    Example: [bold]scnrestore dejpeg --quality 10 *.jpg[/bold]
    """
    from ..batch import BatchOptions

    opts = BatchOptions(
        "dejpeg", parse_level("dejpeg", quality), 1, output=output, recursive=recursive,
        fmt=fmt, jpeg_quality=jpeg_quality, png_compression=png_compression,
        overwrite=overwrite, skip_existing=skip_existing,
    )  # fmt: skip
    spec = RestorerSpec(
        "dejpeg", 1, model, num_scales, device, precision.value, tile, tile_overlap, tta,
        keep=parse_keep(keep_luma, "--keep-luma"), calibration=level_calibration,
    )  # fmt: skip
    cluster = _cluster(ray, workers, gpus_per_worker, cpus_per_worker, worker_memory, max_retries)
    run_batch(inputs, opts, spec, quiet, as_json, cluster, offline, suffix)
