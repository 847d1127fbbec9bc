"""``scnrestore train``: fit an SCN on a folder of clean images.

The command's options are ``TrainConfig``'s fields: each field whose
metadata offers it (``training.config.option``: names, help, bounds) becomes
an option of the field's type and default, in the order of ``OPTIONS``.
"""

from __future__ import annotations

import functools
import inspect
import sys
import typing
from dataclasses import MISSING, Field, fields
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from ..training.config import TrainConfig
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

__all__ = ["train", "OPTIONS"]

# TrainConfig's fields as options, in --help order.
OPTIONS = (
    "out", "data", "val", "scale", "steps", "batch", "patch", "lr", "warmup",
    "num_blocks", "num_residual_units", "width_multiplier", "num_scales",
    "val_every", "ckpt_every", "log_every", "device", "precision", "seed", "init",
    "threads", "level_focus", "detail_floor", "image_scales", "jpeg_range", "jpeg_clean",
    "ema", "loss", "noise", "noise_mix", "camera_shot", "camera_model",
    "time_budget",
)  # fmt: skip
# Fields offered as the options the restore commands share.
SHARED: dict[str, Any] = {"device": DeviceOpt, "precision": PrecisionOpt}
# Fields whose value is one of a vocabulary: typed as its enum.
CHOICES: dict[str, type[Enum]] = {"loss": Loss, "precision": Precision}

TaskArg = Annotated[Task, typer.Argument(help="upscale, denoise or dejpeg.")]


def train(task: TaskArg, **options: Any) -> None:
    """Train an SCN (L1 or L2, Adam, multi-step decay, flips and transposes).

    Example: [bold]scnrestore train upscale -s 2 --data train/ --val val/ --out runs/x2[/bold]
    """
    from ..training.config import resume_config

    command = ["scnrestore", *sys.argv[1:]]
    out, resume, quiet = options["out"], options.pop("resume"), options.pop("quiet")
    steps, device, threads = options["steps"], options["device"], options["threads"]
    try:
        if resume and (out / "run.json").exists():
            cfg = resume_config(out, steps=steps, device=device, threads=threads, command=command)
        else:
            if not options["data"]:
                usage("--data is required for a new run")
            values = {name: _value(name, v) for name, v in options.items()}
            values["steps"] = steps or (10**7 if values["time_budget"] else 10000)
            cfg = TrainConfig(task=task.value, command=command, **values)
    except ValueError as exc:
        usage(str(exc))
    _run(cfg, out, resume, quiet)


def _signature() -> inspect.Signature:
    """``train``'s parameters: the task, TrainConfig's offered fields, then
    the command's own (--resume, --quiet)."""
    by_name = {f.name: f for f in fields(TrainConfig)}
    task = inspect.Parameter("task", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=TaskArg)
    resume = typer.Option(
        help="Continue the run in --out (its recorded settings; --steps may grow)."
    )
    return inspect.Signature(
        [
            task,
            *(_option(by_name[name]) for name in OPTIONS),
            _keyword("resume", Annotated[bool, resume], False),
            _keyword("quiet", QuietOpt, False),
        ],
        return_annotation=None,
    )


def _keyword(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def _option(f: Field) -> inspect.Parameter:
    """A field as an option: its type as typed on the command line, its
    default, and the names, help and bounds its metadata gives."""
    meta = f.metadata["cli"]
    default = inspect.Parameter.empty if f.default is MISSING else f.default
    kind = _typed_as(f.name, meta)
    if meta.get("unset") or meta.get("many"):
        default = None
    elif "shown" in meta:
        default = meta["shown"]
    elif f.name in CHOICES:
        default = CHOICES[f.name](default)
    elif kind in (int, float):
        default = kind(default)
    if f.name in SHARED:
        return _keyword(f.name, SHARED[f.name], default)
    bounds = {k: meta[k] for k in ("min", "max", "metavar") if k in meta}
    info = typer.Option(*meta["flags"], help=meta["help"] or None, **bounds)
    return _keyword(f.name, Annotated[kind, info], default)


def _typed_as(name: str, meta: dict[str, Any]) -> Any:
    """The type of an option's value as typed on the command line: a path,
    a choice, numbers with commas (a tuple field) as text, or the field's own."""
    kind = _hints()[name]
    optional = type(None) in typing.get_args(kind)
    if meta.get("many"):
        return list[str] | None
    if name in CHOICES:
        return CHOICES[name]
    if meta.get("path"):
        return Path | None if optional else Path
    if _is_tuple(name):
        return str | None if optional else str
    return kind


@functools.cache
def _hints() -> dict[str, Any]:
    return typing.get_type_hints(TrainConfig)


def _is_tuple(name: str) -> bool:
    kind = _hints()[name]
    return tuple in (typing.get_origin(kind), *map(typing.get_origin, typing.get_args(kind)))


def _value(name: str, value: Any) -> Any:
    """An option's value as TrainConfig takes it (a usage error if it cannot be)."""
    if name == "data":
        return _sources(value)
    if name == "jpeg_range":
        return _jpeg_range(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, str) and _is_tuple(name):
        return floats(value, "--" + name.replace("_", "-"))
    return value


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


train.__signature__ = _signature()  # type: ignore[attr-defined]


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
        from .progress import progress_bar, stderr_console

        self.console = stderr_console(highlight=False, soft_wrap=True, emoji=False)
        self.steps, self.quiet, self.bar = steps, quiet, None
        if self.console.is_terminal and not quiet:
            self.bar = progress_bar(self.console, "steps")
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
