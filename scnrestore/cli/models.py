"""``scnrestore models``: the registry (weights.toml): list, info, download, verify, path."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from .options import EXIT_FAILED, EXIT_USAGE, Command, Group, JsonOpt, OfflineOpt, QuietOpt, usage

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
    if d["task"] == "upscale":
        return f"x{d['scale']}"
    for key, sym in (("sigma_range", "σ"), ("quality_range", "q")):
        if key in d:
            return f"{sym} {d[key][0]:g}–{d[key][1]:g}"
    return "-"


def _quality_text(q: Any) -> str:
    if isinstance(q, dict):
        return ", ".join(f"{k} {v:g}" for k, v in q.items())
    return str(q) if q else "-"


def _quality_cell(d: dict[str, Any]) -> str:
    """The quality of a model in a few short lines, for ``models list``.

    The registry's own keys (``val_psnr_y``/``gain`` for SR, ``val_psnr_<level>``/
    ``gain_<level>`` for the level-conditioned models) become one line per level,
    "σ15 31.36 (+6.52)" (dB; "Y" marks PSNR on luma); anything else is printed
    as it is (``models info`` has it all).
    """
    q = d.get("quality")
    if not isinstance(q, dict):
        return _quality_text(q)
    if isinstance(q.get("val_psnr_y"), int | float):
        gain = q.get("gain")
        extra = f" ({gain:+.2f})" if isinstance(gain, int | float) else ""
        return f"{q['val_psnr_y']:.2f}{extra} Y"
    sym = "σ" if d.get("task") == "denoise" else "q"
    lines = []
    for key, value in q.items():
        level = key.removeprefix("val_psnr_")
        if key == level or not isinstance(value, int | float):
            continue
        gain = q.get(f"gain_{level}")
        extra = f" ({gain:+.2f})" if isinstance(gain, int | float) else ""
        lines.append(f"{sym}{level} {value:.2f}{extra}")
    return "\n".join(lines) if lines else _quality_text(q)


@app.command(cls=Command, name="list")
def models_list(as_json: JsonOpt = False) -> None:
    """List the models: task, scale or range, size, quality, where (embedded/cached/remote)."""
    from ..weights import describe, load_registry

    with _registry_errors():
        rows = [describe(e) for e in load_registry().values()]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=1) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "task", "scale/range", "size", "where")
    table.add_column("val PSNR dB (gain)", no_wrap=True)
    for d in rows:
        table.add_row(
            d["name"], d["task"], _level_text(d), _human_size(d["size"]), d["where"],
            _quality_cell(d),
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
            path = fetch(entry, quiet=quiet)
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
        path = fetch(entry, offline=offline or None, quiet=quiet)
    typer.echo(str(path))
