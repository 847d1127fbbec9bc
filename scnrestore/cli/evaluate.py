"""``scnrestore eval``: degrade clean images as training does, restore them, score both."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..spec import DEFAULT_STEPS
from .groups import Engine, Network, grouped
from .options import (
    CalibrationOpt,
    JsonOpt,
    KeepInputOpt,
    KeepLumaOpt,
    Task,
    floats,
    make_restorer,
    parse_keep,
    usage,
)

if TYPE_CHECKING:
    from ..api import Restorer

__all__ = ["evaluate_cmd"]

# The levels scored when --levels is not given.
DEFAULT_LEVELS = {"denoise": "15,25,50", "dejpeg": "10,20,30,40"}
TABLE_COLUMNS = ("PSNR", "PSNR-Y", "SSIM", "{base} PSNR", "{base} PSNR-Y", "{base} SSIM",
                 "gain PSNR-Y", "s")  # fmt: skip


@grouped
def evaluate_cmd(
    directory: Annotated[Path, typer.Argument(help="Directory of clean images.")],
    task: Annotated[Task, typer.Option(help="upscale, denoise or dejpeg.")] = Task.upscale,
    scale: Annotated[int, typer.Option("--scale", "-s", min=2, max=4)] = 4,
    levels: Annotated[
        str | None,
        typer.Option(help="Comma-separated sigmas / qualities (default 15,25,50 / 10,20,30,40)."),
    ] = None,
    network: Network = Network(),
    engine: Engine = Engine(),
    as_json: JsonOpt = False,
    keep_luma: KeepLumaOpt = "auto",
    keep_input: KeepInputOpt = "auto",
    level_calibration: CalibrationOpt = True,
    jpeg: Annotated[
        str | None,
        typer.Option(
            help="upscale: comma-separated JPEG qualities; the low-resolution input is "
            "saved as a JPEG at each and restored as `scnrestore upscale` does by default.",
        ),
    ] = None,
) -> None:
    """Degrade clean images as training does, restore them, and score both.

    Example: [bold]scnrestore eval --task upscale -s 4 val/[/bold]
    """
    from ..training.evaluate import eval_document, load_images

    lv = _levels(levels, task.value)
    if not directory.is_dir():
        usage(f"{directory} is not a directory")
    try:
        images = load_images(directory)
    except (ValueError, OSError) as exc:
        usage(str(exc))
    keep = (
        parse_keep(keep_input, "--keep-input")
        if task.value == "denoise"
        else parse_keep(keep_luma, "--keep-luma")
    )
    qualities = _qualities(jpeg, task.value)
    # --jpeg: upscale's chain, as the command runs it; else the task's network alone
    steps = DEFAULT_STEPS if qualities else None
    spec = engine.spec(
        network, task.value, scale, keep=keep, calibration=level_calibration, steps=steps
    )
    restorer: Any = make_restorer(spec)
    if qualities:
        results = [_score(restorer, images, None, as_json, q) for q in qualities]
    else:
        results = [_score(restorer, images, level, as_json) for level in lv]
    if as_json:
        sys.stdout.write(json.dumps(eval_document(restorer, results), indent=1) + "\n")


def _levels(text: str | None, task: str) -> list[float | None]:
    from ..tasks import LEVEL_RANGES

    if task == "upscale":
        return [None]
    values = list(floats(text or DEFAULT_LEVELS[task], "levels"))
    lo, hi = LEVEL_RANGES[task]
    if not values or any(not lo <= v <= hi for v in values):
        usage(f"levels for {task} must lie in {lo:g}..{hi:g}")
    return values


def _qualities(text: str | None, task: str) -> list[int]:
    """--jpeg: whole qualities in 5..100, for upscale only."""
    if text is None:
        return []
    if task != "upscale":
        usage("--jpeg is for --task upscale (dejpeg takes its qualities with --levels)")
    from ..tasks import JPEG_QUALITIES

    lo, hi = JPEG_QUALITIES
    values = floats(text, "--jpeg")
    if not values or any(v != int(v) or not lo <= v <= hi for v in values):
        usage(f"--jpeg must be whole qualities in {lo:g}..{hi:g}, not {text!r}")
    return [int(v) for v in values]


def _score(
    restorer: Any, images: list[Any], level: float | None, as_json: bool, jpeg: int | None = None
) -> Any:
    """Evaluate at one level (or JPEG quality of an upscale's input); print its
    table unless ``as_json``; the level's result."""
    from ..api import level_info
    from ..training.evaluate import evaluate, level_result

    rows = evaluate(restorer, images, level, jpeg=jpeg)
    result = level_result(level, rows, level_info(restorer, level))
    if jpeg is not None:
        from ..chain import describe

        result = {"jpeg": jpeg, "steps": describe(restorer.plan_for(jpeg)), **result}
    if not as_json:
        _print_table(restorer, level, rows, result)
    return result


def _print_table(restorer: Restorer, level: float | None, rows: list[Any], result: Any) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    task = restorer.task
    base = {"upscale": "bicubic", "denoise": "noisy"}.get(task, "JPEG")
    table = Table(title=_title(restorer, level, result))
    for col in ("image", *(c.format(base=base) for c in TABLE_COLUMNS)):
        table.add_column(col, justify="left" if col == "image" else "right")
    for r in rows:
        table.add_row(escape(r.image), f"{r.psnr:.2f}", f"{r.psnr_y:.2f}", f"{r.ssim:.4f}",
                      f"{r.base_psnr:.2f}", f"{r.base_psnr_y:.2f}", f"{r.base_ssim:.4f}",
                      f"{r.psnr_y - r.base_psnr_y:+.2f}", f"{r.seconds:.1f}")  # fmt: skip
    m = result["mean"]
    table.add_row("mean", f"{m['psnr']:.2f}", f"{m['psnr_y']:.2f}", f"{m['ssim']:.4f}",
                  f"{m['base_psnr']:.2f}", f"{m['base_psnr_y']:.2f}", f"{m['base_ssim']:.4f}",
                  f"{m['gain_psnr_y']:+.2f}", f"{m['seconds']:.1f}", style="bold")  # fmt: skip
    console = Console(highlight=False, emoji=False)
    if not console.is_terminal:
        console = Console(highlight=False, emoji=False, width=160)
    console.print(table)


def _title(restorer: Restorer, level: float | None, result: dict[str, Any]) -> str:
    """ "denoise level 25 (network told 26.5), keeping 10% of the noisy input"."""
    from ..api import level_info

    task, info = restorer.task, level_info(restorer, level)
    title = task + (f" x{restorer.scale}" if task == "upscale" else f" level {level:g}")
    if "jpeg" in result:
        title += f" of a JPEG at quality {result['jpeg']} ({result['steps']})"
    told = info.get("told_level")
    if told is not None and told != level:
        title += f" (network told {told:.3g})"
    keep = info.get("keep_luma") or info.get("keep_input")
    if keep:
        what = "the JPEG's luma" if task == "dejpeg" else "the noisy input"
        title += f", keeping {keep:.0%} of {what}"
    return title
