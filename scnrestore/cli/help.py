"""A command's --help that fits a terminal of 80 columns and a pipe.

typer's own layout gives each option six columns (long name, short name,
their negations, type, help), so at 80 columns names and words are cut
(``--skip-exis…``). Here each option takes two: its names with the value it
takes (``-s, --scale 2|3|4``; a long one breaks onto a second line), and the
help. Options are grouped in the panels their ``rich_help_panel`` names, in
the order the command declares them, so a command's own options come first.
Nothing is cut: words wrap, and the value column is never wider than
:data:`NAMES_MAX`.

Only click's public parameter API is read (names, help, default, type,
metavar), plus typer's ``rich_help_panel``; by duck type, since typer may
bring click along or a copy of it (``typer._click``).
"""

from __future__ import annotations

import enum
import inspect
import typing
from pathlib import Path
from typing import Any

Param = Any  # a click (or typer._click) Parameter

__all__ = ["format_command_help", "metavar_of", "usage_line", "NAMES_MAX"]

#: The widest the names-and-value column grows before a value breaks onto its own line.
NAMES_MAX = 26
ARGUMENTS, OPTIONS = "Arguments", "Options"


def _is_argument(p: Param) -> bool:
    return getattr(p, "param_type_name", "") == "argument"


def usage_line(command: Any, ctx: Any) -> str:
    """``Usage: scnrestore upscale [OPTIONS] INPUTS...``: arguments in capitals."""
    pieces = ["[OPTIONS]"] if any(not _is_argument(p) for p in command.params) else []
    for p in command.params:
        if _is_argument(p):
            name = argument_name(p)
            pieces.append(name if p.required else f"[{name}]")
    return " ".join(["Usage:", ctx.command_path, *pieces])


def argument_name(p: Param) -> str:
    """An argument's name as the usage line and the Arguments panel show it."""
    if p.metavar:
        return p.metavar
    name = (p.name or "arg").upper()
    return name + ("..." if p.nargs != 1 else "")


def metavar_of(p: Param) -> str:
    """The value an option takes, for people: its metavar, its choices
    (``auto|fp32|bf16|fp16``) or a word for its type (N, F, PATH, TEXT)."""
    if p.is_flag or p.count:
        return ""
    if p.metavar:
        return p.metavar
    kind = _value_type(p)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "|".join(str(c.value) for c in kind)
    if isinstance(kind, tuple):  # click.Choice
        return "|".join(str(getattr(c, "value", c)) for c in kind)
    return {int: "N", float: "F", Path: "PATH"}.get(kind, "TEXT")  # type: ignore[call-overload]


def _value_type(p: Param) -> Any:
    """The Python type of an option's value (int, float, Path, an Enum, str),
    or a tuple of choices: from typer's annotation or click's ParamType."""
    td = getattr(p, "type_descriptor", None)
    ann = getattr(td, "annotation", None)
    if ann is not None:
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        return args[0] if args and typing.get_origin(ann) is not list else ann
    t = getattr(p, "type", None)
    if getattr(t, "choices", None):
        return tuple(t.choices)  # type: ignore[union-attr]
    name = getattr(t, "name", "")
    if name.startswith("integer"):
        return int
    if name.startswith("float"):
        return float
    return Path if name in ("path", "directory", "file") else str


def _range(p: Param) -> str:
    """``[2-4]``, ``[>=0]``: the bounds of a number option, where it has them."""
    where = p if hasattr(p, "min") else getattr(p, "type", None)
    lo, hi = getattr(where, "min", None), getattr(where, "max", None)
    if lo is not None and hi is not None:
        return f"[{lo:g}-{hi:g}]"
    if lo is not None:
        return f"[>={lo:g}]"
    return f"[<={hi:g}]" if hi is not None else ""


def _default(p: Param, ctx: Any) -> str:
    """``[default: 4]``, or nothing for flags, unset and hidden defaults."""
    flag = getattr(p, "is_flag", False)
    if flag and not p.secondary_opts:
        return ""
    show = getattr(p, "show_default", True)
    if isinstance(show, str):
        return f"[default: {show}]"
    value = p.default
    if show is False or value is None or callable(value) or value == []:
        return ""
    if flag:  # --x/--no-x: the one that is on
        on = p.opts if value else p.secondary_opts
        return f"[default: {on[0]}]" if on else ""
    if isinstance(value, enum.Enum):
        value = value.value
    return f"[default: {value}]"


def _names(p: Param) -> list[str]:
    """The lines of the first column: names, then the value they take."""
    if _is_argument(p):
        return [argument_name(p)]
    shorts = [o for o in p.opts if not o.startswith("--")]
    longs = [o for o in p.opts if o.startswith("--")]
    names = ", ".join(shorts + longs)
    if p.secondary_opts:
        names += " / " + ", ".join(p.secondary_opts)
    value = metavar_of(p)
    whole = f"{names} {value}".strip()
    if len(whole) <= NAMES_MAX:
        return [whole]
    lines = (
        [names]
        if len(names) <= NAMES_MAX
        else [names.split(" / ")[0], "/ " + ", ".join(p.secondary_opts)]
    )
    return lines + ([f"  {value}"] if value else [])


def _help(p: Param, ctx: Any) -> str:
    text = inspect.cleandoc(getattr(p, "help", None) or "").replace("\n", " ")
    bounds = "" if getattr(p, "metavar", None) else _range(p)  # a metavar says it already
    extras = [e for e in (bounds, _default(p, ctx)) if e]
    if p.required:
        extras.append("[required]")
    return " ".join([text, *(e.replace("[", r"\[") for e in extras)]).strip()


def panels(command: Any, ctx: Any) -> dict[str, list[Param]]:
    """Parameters by panel: Arguments, then the command's options that name
    no panel (its own) under Options, then the named panels in the order the
    command first uses them; ``--help`` ends Options, or comes last alone."""
    out: dict[str, list[Param]] = {ARGUMENTS: [], OPTIONS: []}
    rest: list[Param] = []
    for p in command.get_params(ctx):
        if getattr(p, "hidden", False):
            continue
        if _is_argument(p):
            out[ARGUMENTS].append(p)
            continue
        panel = getattr(p, "rich_help_panel", None)
        if panel:
            out.setdefault(panel, []).append(p)
        elif p.name == "help":
            rest.append(p)
        else:
            out[OPTIONS].append(p)
    if out[OPTIONS]:
        out[OPTIONS] += rest
    else:
        del out[OPTIONS]
        out[OPTIONS] = rest
    return {k: v for k, v in out.items() if v}


def format_command_help(command: Any, ctx: Any) -> None:
    """Print ``command``'s help to stdout (rich: colour on a terminal, plain in a pipe)."""
    from rich.console import Console
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    console = Console(highlight=False)
    console.print(Padding(Text(usage_line(command, ctx), style="bold"), (1, 1, 1, 1)))
    if command.help:
        doc = inspect.cleandoc(command.help).partition("\f")[0]
        paragraphs = [" ".join(par.split()) for par in doc.split("\n\n")]
        body = Text.from_markup("\n\n".join(paragraphs))
        console.print(Padding(body, (0, 1, 1, 1)))
    groups = panels(command, ctx)
    rows = {name: [(_names(p), _help(p, ctx)) for p in params] for name, params in groups.items()}
    width = max(len(line) for entries in rows.values() for names, _ in entries for line in names)
    for name, entries in rows.items():
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True, width=width)
        table.add_column(ratio=1, overflow="fold")
        for names, help_text in entries:
            table.add_row(Text("\n".join(names)), Text.from_markup(help_text))
        console.print(Panel(table, title=name, title_align="left", border_style="dim"))
