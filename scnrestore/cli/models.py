"""``scnrestore models``: the registry (weights.toml): list, info, download, verify, path."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from .options import EXIT_FAILED, EXIT_USAGE, Command, Group, JsonOpt, OfflineOpt, QuietOpt, usage
from .progress import download_progress

__all__ = ["app"]

app = typer.Typer(
    help="The model registry (weights.toml): list, download, verify the checkpoints.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    cls=Group,
)

ModelNameArg = Annotated[str, typer.Argument(help="Registry name (see: scnrestore models list).")]


@contextlib.contextmanager
def _registry_errors(code: int = EXIT_USAGE) -> Iterator[None]:
    """A malformed registry, an unknown model or a failed download: one line, exit ``code``."""
    from ..weights import RegistryError

    try:
        yield
    except RegistryError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code) from None


def _registry_entry(name: str, registry: dict[str, Any] | None = None) -> Any:
    from ..weights import RegistryError, load_registry

    registry = load_registry() if registry is None else registry
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none yet"
        raise RegistryError(f"unknown model {name!r} (known: {known})")
    return registry[name]


def _human_size(n: int | None) -> str:
    if not n:
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return str(n)


def _level_text(d: dict[str, Any]) -> str:
    """What a model takes: its scale, the JPEG qualities it upscales in one
    pass, or the sigmas / qualities the command accepts for it."""
    from ..tasks import LEVEL_RANGES

    if d["task"] == "upscale":
        rng = d.get("joint_range") or d.get("quality_range")
        return f"x{d['scale']}" + (f", q {rng[0]:g}–{rng[1]:g}" if rng else "")
    for key, sym in (("sigma_range", "σ"), ("quality_range", "q")):
        if key in d:
            lo, hi = d[key]
            if d["task"] in LEVEL_RANGES:  # what the command takes (dejpeg: up to 100)
                lo, hi = min(lo, LEVEL_RANGES[d["task"]][0]), max(hi, LEVEL_RANGES[d["task"]][1])
            return f"{sym} {lo:g}–{hi:g}"
    return "-"


def _task_words(d: dict[str, Any]) -> str:
    if d["task"] == "upscale" and (d.get("joint_range") or d.get("quality_range")):
        return "upscale JPEG"
    return d["task"]


def _levels(q: dict[str, Any], prefix: str) -> list[tuple[str, float, float | None]]:
    """(level, value, gain) for each ``prefix<level>`` key of a quality table."""
    out = []
    for key, value in q.items():
        level = key.removeprefix(prefix)
        if key != level and level.isdigit() and isinstance(value, int | float):
            gain = q.get(f"gain_{level}")
            out.append((level, float(value), gain if isinstance(gain, int | float) else None))
    return out


def _headline(d: dict[str, Any]) -> str:
    """A model's measured quality in words, for ``models list``: the gain over
    bicubic (upscale), the PSNR at the usual sigmas (denoise), the gain over the
    JPEG (dejpeg); other registry keys as they are (``models info`` has all)."""
    q = d.get("quality")
    if not isinstance(q, dict):
        return _quality_text(q)
    if isinstance(q.get("val_psnr_y"), int | float) and isinstance(q.get("gain"), int | float):
        return f"PSNR-Y {q['val_psnr_y']:.2f}, {q['gain']:+.2f} vs bicubic"
    jpeg = [(lv, g) for lv, _, g in _levels(q, "val_psnr_y_") if g is not None][:2]
    if jpeg:
        gains = " / ".join(f"{g:+.2f}" for _, g in jpeg)
        return f"{gains} dB vs bicubic, JPEG q {' / '.join(lv for lv, _ in jpeg)}"
    rows = _levels(q, "val_psnr_")
    if d.get("task") == "denoise":
        rows = [r for r in rows if r[0] in ("15", "25", "50")] or rows
        values = " / ".join(f"{v:.2f}" for _, v, _ in rows)
        return f"{values} dB at σ {' / '.join(lv for lv, _, _ in rows)}"
    rows = [r for r in rows if r[2] is not None and int(r[0]) <= 40] or rows
    if rows and all(g is not None for _, _, g in rows):
        gains = " / ".join(f"{g:+.2f}" for _, _, g in rows)
        return f"{gains} dB vs the JPEG at q {' / '.join(lv for lv, _, _ in rows)}"
    return _quality_text(q)


def _quality_text(q: Any) -> str:
    if isinstance(q, dict):
        return ", ".join(f"{k} {v:g}" for k, v in q.items())
    return str(q) if q else "-"


@app.command(cls=Command, name="list")
def models_list(as_json: JsonOpt = False) -> None:
    """List the models: task, what they take, size, measured quality in words."""
    from ..weights import describe, load_registry

    with _registry_errors():
        rows = [describe(e) for e in load_registry().values()]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    for column in ("name", "task", "takes", "size"):
        table.add_column(column, no_wrap=True)
    table.add_column("measured on 5 val photos", ratio=1)
    for d in rows:
        where = "" if d["where"] == "embedded" else f" {d['where']}"  # cached, remote
        table.add_row(
            d["name"], _task_words(d), _level_text(d), _human_size(d["size"]) + where,
            _headline(d),
        )  # fmt: skip
    console = Console(highlight=False, emoji=False)
    if rows:
        console.print(table)
    else:
        console.print("no models in the registry yet", markup=False)


@app.command(cls=Command, name="info")
def models_info(name: ModelNameArg, as_json: JsonOpt = False) -> None:
    """Every field of one model, with its URLs and local path."""
    from ..weights import describe

    with _registry_errors():
        d = describe(_registry_entry(name))
    if as_json:
        sys.stdout.write(json.dumps(d, indent=1) + "\n")
        return
    for key, value in d.items():
        if key == "urls" and isinstance(value, list):
            typer.echo("urls:" + "".join(f"\n  {u}" for u in value) if value else "urls: -")
            continue
        if isinstance(value, dict):
            value = _quality_text(value)
        typer.echo(f"{key}: {'-' if value is None else value}")


@app.command(cls=Command, name="download")
def models_download(
    names: Annotated[list[str] | None, typer.Argument(help="Registry names.")] = None,
    all_models: Annotated[bool, typer.Option("--all", help="Every model of the registry.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Download models into the cache (verified by size and sha256); exit 1 if any failed."""
    from ..weights import RegistryError, fetch, load_registry

    if bool(names) == all_models:
        usage("give model names or --all")
    with _registry_errors():
        registry = load_registry()
        entries = [_registry_entry(n, registry) for n in names or registry]
    failed = 0
    for entry in entries:
        try:
            with download_progress(quiet) as progress:
                path = fetch(entry, progress=progress)
        except RegistryError as exc:
            typer.echo(f"error: {exc}", err=True)
            failed += 1
            continue
        if not quiet:
            typer.echo(f"{entry.name}: {path}")
    if all_models and not entries and not quiet:
        typer.echo("no models in the registry yet")
    if failed:
        raise typer.Exit(EXIT_FAILED)


@app.command(cls=Command, name="verify")
def models_verify(quiet: QuietOpt = False) -> None:
    """Re-hash the cached (and embedded) files against the registry: good, bad or missing.

    A bad cached file is deleted, so the next use downloads it again. Exit 1 if
    any file was bad.
    """
    from ..weights import load_registry, verify

    with _registry_errors():
        results = [(e.name, *verify(e)) for e in load_registry().values()]
    for name, status, path, detail in results:
        if status == "bad" or not quiet:
            typer.echo(f"{status:7} {name}: {path}" + (f" ({detail})" if detail else ""))
    counts = {s: sum(r[1] == s for r in results) for s in ("good", "bad", "missing")}
    if not quiet:
        typer.echo(f"{counts['good']} good, {counts['bad']} bad, {counts['missing']} missing")
    if counts["bad"]:
        raise typer.Exit(EXIT_FAILED)


@app.command(cls=Command, name="path")
def models_path(name: ModelNameArg, offline: OfflineOpt = False, quiet: QuietOpt = False) -> None:
    """Print the local path of a model's file, downloading it if needed (exit 1 if it can't)."""
    from ..weights import fetch

    with _registry_errors():
        entry = _registry_entry(name)
    with _registry_errors(EXIT_FAILED):
        with download_progress(quiet) as progress:
            path = fetch(entry, offline=offline or None, progress=progress)
    typer.echo(str(path))
