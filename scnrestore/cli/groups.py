"""Option groups the restore commands share (upscale, denoise, dejpeg; eval the
model ones): each a dataclass whose fields are typer options, written once.

A command takes a group as one parameter (``engine: Engine = Engine()``) and
is decorated with :func:`grouped`: typer then sees the group's fields as the
command's own options, in that place, with their names, defaults, panels and
help as written here; the command receives the group built from them.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from ..spec import DEFAULT_OVERLAP, RestorerSpec
from .options import (
    RESTORE,
    CpusOpt,
    DeviceOpt,
    FormatOpt,
    GpusOpt,
    JpegQualityOpt,
    JsonOpt,
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
    usage,
)

if TYPE_CHECKING:
    from ..batch import BatchOptions
    from ..batch.cluster import ClusterOptions
    from ..outsize import OutSize

__all__ = ["Network", "Model", "Engine", "Runner", "Size", "Files", "grouped"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Network:
    """--model, --num-scales: which network."""

    model: ModelOpt = None
    num_scales: NumScalesOpt = None


@dataclass(frozen=True)
class Model(Network):
    """--model, --num-scales, --offline: which network, and whether it may be fetched."""

    offline: OfflineOpt = False


@dataclass(frozen=True)
class Engine:
    """--device, --precision, --tile, --tile-overlap, --tta: how the network runs."""

    device: DeviceOpt = "auto"
    precision: PrecisionOpt = Precision.auto
    tile: TileOpt = None
    tile_overlap: OverlapOpt = DEFAULT_OVERLAP
    tta: TtaOpt = False

    def spec(self, network: Network, task: str, scale: int, **more: Any) -> RestorerSpec:
        """The RestorerSpec of ``network`` run this way (``more``: its other fields)."""
        return RestorerSpec(
            task, scale, network.model, network.num_scales, self.device, self.precision.value,
            self.tile, self.tile_overlap, self.tta, **more,
        )  # fmt: skip


def _pixels(metavar: str, help: str) -> Any:
    """--width / --height: a number of pixels."""
    return typer.Option(min=1, metavar=metavar, rich_help_panel=RESTORE, help=help)


@dataclass(frozen=True)
class Size:
    """upscale's --outscale, --width, --height: any output size."""

    outscale: Annotated[
        float | None,
        typer.Option(
            metavar="F",
            rich_help_panel=RESTORE,
            help="Any factor above 1 up to 16 (1.5, 3.5, 8): the trained scale at or above "
            "it, twice above 4 (x2 then x4 for 8), then an antialiased resize to the "
            "exact size. Output NAME_x3.5.png.",
        ),
    ] = None
    width: Annotated[
        int | None,
        _pixels(
            "W",
            "Output width in pixels, the aspect kept (with --height: exactly W x H), "
            "as --outscale does it. Output NAME_wW.png.",
        ),
    ] = None
    height: Annotated[
        int | None,
        _pixels(
            "H",
            "Output height in pixels, as --width. Output NAME_hH.png (NAME_WxH.png with both).",
        ),
    ] = None

    def out_size(self, model: str | None) -> OutSize | None:
        """The OutSize asked for (None: -s alone); usage errors."""
        if self.outscale is None and self.width is None and self.height is None:
            return None
        from ..outsize import OutSize

        if model is not None:
            usage("--outscale, --width and --height run the shipped upscalers; drop --model")
        try:
            return OutSize(self.outscale, self.width, self.height)
        except ValueError as exc:
            usage(str(exc))


@dataclass(frozen=True)
class Files:
    """--recursive, --suffix, --format, --jpeg-quality, --png-compression,
    --overwrite, --skip-existing, --quiet, --json: what a batch does with its
    files and what it prints."""

    recursive: RecursiveOpt = False
    suffix: SuffixOpt = None
    fmt: FormatOpt = None
    jpeg_quality: JpegQualityOpt = 95
    png_compression: PngCompressionOpt = 6
    overwrite: OverwriteOpt = False
    skip_existing: SkipOpt = False
    quiet: QuietOpt = False
    as_json: JsonOpt = False

    def batch(
        self, task: str, level: float | str | None, scale: int, output: Path | None
    ) -> BatchOptions:
        """The BatchOptions of a run of ``task`` writing to ``output`` (-o)."""
        from ..batch import BatchOptions

        return BatchOptions(
            task, level, scale, output=output, recursive=self.recursive, fmt=self.fmt,
            jpeg_quality=self.jpeg_quality, png_compression=self.png_compression,
            overwrite=self.overwrite, skip_existing=self.skip_existing,
        )  # fmt: skip


@dataclass(frozen=True)
class Runner(Engine):
    """How the network runs (:class:`Engine`), and where: --ray and its worker options."""

    ray: RayOpt = None
    workers: WorkersOpt = None
    gpus_per_worker: GpusOpt = 0.0
    cpus_per_worker: CpusOpt = 1.0
    worker_memory: WorkerMemoryOpt = None
    max_retries: MaxRetriesOpt = 3

    def cluster(self) -> ClusterOptions | None:
        """--ray and the worker options; None without --ray (a local run)."""
        if self.ray is None:
            return None
        from ..batch.cluster import ClusterOptions, parse_size

        try:
            memory = None if self.worker_memory is None else parse_size(self.worker_memory)
        except ValueError as exc:
            usage(str(exc))
        return ClusterOptions(
            self.ray, self.workers, self.gpus_per_worker, self.cpus_per_worker,
            worker_memory=memory, max_retries=self.max_retries,
        )  # fmt: skip


def grouped(command: F) -> F:
    """``command`` as typer sees it: each parameter whose type is a group
    (a dataclass here) replaced by the group's fields, in its place; the
    command is called with the group built from them."""
    hints = typing.get_type_hints(command, include_extras=True)
    groups: dict[str, Any] = {}
    params: list[inspect.Parameter] = []
    for p in inspect.signature(command).parameters.values():
        kind = hints[p.name]
        if not (isinstance(kind, type) and dataclasses.is_dataclass(kind)):
            params.append(p.replace(annotation=kind))
            continue
        groups[p.name] = kind
        fields = typing.get_type_hints(kind, include_extras=True)
        params += [
            inspect.Parameter(f.name, p.kind, default=f.default, annotation=fields[f.name])
            for f in dataclasses.fields(kind)
        ]

    @functools.wraps(command)
    def typer_command(**options: Any) -> Any:
        for name, kind in groups.items():
            names = [f.name for f in dataclasses.fields(kind)]
            options[name] = kind(**{n: options.pop(n) for n in names})
        return command(**options)

    del typer_command.__wrapped__  # typer reads the signature below, not the command's
    typer_command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    typer_command.__annotations__ = {p.name: p.annotation for p in params}
    return typing.cast(F, typer_command)
