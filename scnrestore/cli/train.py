"""``scnrestore train``: fit an SCN on a folder of clean images."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .options import (
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    DeviceOpt,
    Loss,
    Precision,
    PrecisionOpt,
    QuietOpt,
    Task,
    floats,
    usage,
)

if TYPE_CHECKING:
    from ..training.config import TrainConfig

__all__ = ["train"]


def train(
    task: Annotated[Task, typer.Argument(help="upscale, denoise or dejpeg.")],
    out: Annotated[Path, typer.Option(help="Run directory: checkpoints, log, weights.")],
    data: Annotated[
        list[str] | None,
        typer.Option(
            metavar="DIR[:SHARE]",
            help="Directory of clean training images; repeat it to mix folders, each "
            "with its share of the patches, e.g. --data train291:0.7 --data train:0.3 "
            "(folders without a share split the rest evenly; shares sum to 1). "
            "run.json records each folder's images; --resume refuses if they changed.",
        ),
    ] = None,
    val: Annotated[Path | None, typer.Option(help="Directory of validation images.")] = None,
    scale: Annotated[int, typer.Option("--scale", "-s", min=2, max=4)] = 2,
    steps: Annotated[
        int | None,
        typer.Option(min=1, help="Total optimiser steps (default 10000; --resume: as recorded)."),
    ] = None,
    batch: Annotated[int, typer.Option(min=1)] = 16,
    patch: Annotated[
        int, typer.Option(min=0, help="Input patch side; 0 = 48 (SR) or 96 (others).")
    ] = 0,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    warmup: Annotated[int, typer.Option(min=0, help="Steps of linear learning-rate warm-up.")] = 0,
    blocks: Annotated[int, typer.Option(min=1)] = 16,
    units: Annotated[int, typer.Option(min=1)] = 32,
    width: Annotated[float, typer.Option(help="Width multiplier of the blocks.")] = 4.0,
    num_scales: Annotated[int, typer.Option(min=1, max=6)] = 4,
    val_every: Annotated[int, typer.Option(min=1)] = 500,
    ckpt_every: Annotated[int, typer.Option(min=1)] = 100,
    log_every: Annotated[int, typer.Option(min=1)] = 25,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = Precision.auto,
    seed: int = 0,
    init: Annotated[
        Path | None, typer.Option(help="Start from these weights (e.g. x2 body for x4).")
    ] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads.")] = None,
    level_focus: Annotated[
        float | None,
        typer.Option(
            help="denoise/dejpeg: draw half of each batch's levels from \\[lowest, this] "
            "(default: whole σ range; q <= 40).",
        ),
    ] = None,
    detail_floor: Annotated[
        float,
        typer.Option(
            min=0,
            help="Weight patches by detail: one whose mean |Laplacian| (grey, 0-255) "
            "is below this is kept with probability detail/this (0: uniform; "
            "10 makes wallpapers look like photos).",
        ),
    ] = 0.0,
    image_scales: Annotated[
        str,
        typer.Option(
            help="Also train on each image shrunk by these factors, e.g. 1,0.5,0.33 "
            "(patches drawn evenly over image x factor; shrunk wallpapers carry "
            "photo-like texture density).",
        ),
    ] = "1",
    jpeg_range: Annotated[
        str | None,
        typer.Option(
            help="upscale: train a JPEG-aware upscaler: each low-resolution patch is "
            "saved as a JPEG at a quality drawn from this range, e.g. 30,100, and the "
            "network is told the quality (a share --jpeg-clean stays clean).",
        ),
    ] = None,
    jpeg_clean: Annotated[
        float,
        typer.Option(min=0, max=0.99, help="With --jpeg-range: share of clean patches."),
    ] = 0.2,
    ema: Annotated[
        float,
        typer.Option(
            min=0,
            max=0.9999,
            help="Keep a moving average of the weights with this decay, e.g. 0.999 "
            "(0: off); validation and model.safetensors use it, model.raw.safetensors "
            "holds the raw weights.",
        ),
    ] = 0.0,
    loss: Annotated[
        Loss,
        typer.Option(
            help="Pixel loss: l1, or l2 (what PSNR measures) for a short fine-tune "
            "at the end of an l1 run, e.g. --init RUN/model.safetensors --lr 1e-4.",
        ),
    ] = Loss.l1,
    noise: Annotated[
        str,
        typer.Option(
            metavar="gaussian|real",
            help="denoise: gaussian (white noise of a told sigma) or real: a blind model "
            "for camera photos (camera noise, clean and white-noise patches mixed).",
        ),
    ] = "gaussian",
    noise_mix: Annotated[
        str,
        typer.Option(
            metavar="CAMERA,CLEAN",
            help="--noise real: shares of camera-noise and clean patches (the rest: white noise).",
        ),
    ] = "0.6,0.1",
    camera_shot: Annotated[
        str,
        typer.Option(
            metavar="LOW,HIGH",
            help="--noise real: range of the camera's shot-noise level (raw variance "
            "per unit of signal; 1e-4 is a clean daylight shot, 1e-2 high ISO).",
        ),
    ] = "5e-5,1.2e-2",
    time_budget: Annotated[
        float,
        typer.Option(
            min=0,
            help="Fit the run into this many seconds: the step total (and so the "
            "decay schedule) is set from the measured speed and recorded.",
        ),
    ] = 0.0,
    resume: Annotated[
        bool,
        typer.Option(help="Continue the run in --out (its recorded settings; --steps may grow)."),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Train an SCN (L1 or L2, Adam, multi-step decay, flips and transposes).

    Example: [bold]scnrestore train upscale -s 2 --data train/ --val val/ --out runs/x2[/bold]
    """
    from ..training.config import TrainConfig, resume_config

    command = ["scnrestore", *sys.argv[1:]]
    try:
        if resume and (out / "run.json").exists():
            cfg = resume_config(out, steps=steps, device=device, threads=threads, command=command)
        else:
            if not data:
                usage("--data is required for a new run")
            cfg = TrainConfig(
                task=task.value, data=_sources(data), out=str(out), scale=scale,
                val=str(val) if val else None,
                steps=steps or (10**7 if time_budget else 10000), batch=batch,
                patch=patch, lr=lr, warmup=warmup,
                num_blocks=blocks, num_residual_units=units, width_multiplier=width,
                num_scales=num_scales, val_every=val_every, ckpt_every=ckpt_every,
                log_every=log_every, device=device, precision=precision.value, seed=seed,
                init=str(init) if init else None, threads=threads, command=command,
                time_budget=time_budget, level_focus=level_focus,
                detail_floor=detail_floor,
                image_scales=floats(image_scales, "--image-scales"),
                jpeg_range=_jpeg_range(jpeg_range), jpeg_clean=jpeg_clean, ema=ema,
                loss=loss.value, noise=noise,
                noise_mix=floats(noise_mix, "--noise-mix"),
                camera_shot=floats(camera_shot, "--camera-shot"),
            )  # fmt: skip
    except ValueError as exc:
        usage(str(exc))
    _run(cfg, out, resume, quiet)


def _sources(texts: list[str]) -> list[dict[str, Any]]:
    """--data values as sources with shares; a usage error for a folder that is not there."""
    from ..training.datasources import parse_sources

    found = parse_sources(texts)
    for d in found:
        if not Path(d["path"]).is_dir():
            usage(f"--data {d['path']}: no such folder")
    return found


def _jpeg_range(text: str | None) -> tuple[int, int] | None:
    """'30,100' -> (30, 100); None stays None; a usage error otherwise."""
    if text is None:
        return None
    values = floats(text, "--jpeg-range")
    if len(values) != 2 or any(v != int(v) for v in values):
        usage(f"--jpeg-range must be two whole qualities, low,high (e.g. 30,100), not {text!r}")
    return int(values[0]), int(values[1])


def _run(cfg: TrainConfig, out: Path, resume: bool, quiet: bool) -> None:
    """Train with a progress bar (terminal) or a line per log step; exit 130 if stopped."""
    from ..training.train import train as run_training

    progress = _Progress(cfg.steps, quiet)
    try:
        last = run_training(cfg, resume=resume, progress=progress)
    except (ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    finally:
        progress.stop()
    if not quiet:
        progress.console.print(
            f"{'stopped' if last.get('stopped') else 'done'} at step {last['step']}; "
            f"weights: {out / 'model.safetensors'}",
            markup=False,
        )
    if last.get("stopped"):
        raise typer.Exit(EXIT_INTERRUPTED)


class _Progress:
    """Training progress: a rich bar on a terminal, plain lines otherwise."""

    def __init__(self, steps: int, quiet: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)
        self.steps, self.quiet, self.bar = steps, quiet, None
        if self.console.is_terminal and not quiet:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("step {task.completed}/{task.total}"),
                BarColumn(),
                TextColumn("loss {task.fields[loss]:.4f}  {task.fields[val]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task_id = self.bar.add_task("train", total=steps, loss=float("nan"), val="")
            self.bar.start()

    def __call__(self, rec: dict[str, Any]) -> None:
        val_txt = (
            f"val {rec['val_psnr']:.2f} dB (baseline {rec['val_baseline']:.2f})"
            if "val_psnr" in rec
            else ""
        )
        if self.bar is not None:
            fields = {"loss": rec["loss"]} | ({"val": val_txt} if val_txt else {})
            self.bar.update(self.task_id, completed=rec["step"], total=rec.get("steps"), **fields)
        elif not self.quiet:
            self.console.print(
                f"step {rec['step']}/{rec.get('steps', self.steps)} loss {rec['loss']:.4f} "
                f"lr {rec['lr']:.2e} {rec['it_s']:.2f} it/s {val_txt}".rstrip()
            )

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()
