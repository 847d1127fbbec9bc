"""--help fits a terminal of 80 columns and a pipe: no cut name or word, no
``<str>``, value lists shown, a plain usage line, each command's own options
before the shared ones; a value type only where an option takes a value, and
each command names its own default output name."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from scnrestore.cli import app


def _commands() -> list[tuple[list[str], object]]:
    """Every command and group of the app, as (argv prefix, click command)."""
    found = []

    def walk(prefix: list[str], cmd: object) -> None:
        found.append((prefix, cmd))
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            walk([*prefix, name], sub)

    walk([], typer.main.get_command(app))
    return found


COMMANDS = _commands()
IDS = [" ".join(c) or "scnrestore" for c, _ in COMMANDS]


def help_text(*command: str, columns: int = 250) -> str:
    env = {"COLUMNS": str(columns), "NO_COLOR": "1"}
    r = CliRunner().invoke(app, [*command, "--help"], env=env)
    assert r.exit_code == 0, r.output
    return r.output


def test_every_command_is_covered():
    names = {" ".join(c) for c, _ in COMMANDS}
    assert {"upscale", "denoise", "dejpeg", "compare", "train", "eval", "models list"} <= names


@pytest.mark.parametrize("command,cmd", COMMANDS, ids=IDS)
def test_help_fits_80_columns_with_nothing_cut(command, cmd):
    text = help_text(*command, columns=80)
    assert "…" not in text and "<str>" not in text and "{" not in text, text
    wide = [line for line in text.splitlines() if len(line) > 80]
    assert not wide, wide
    flat = " ".join(text.replace("│", " ").split())
    for p in cmd.params:  # every name in full: none folded or cut
        if not getattr(p, "hidden", False):
            for name in [*p.opts, *p.secondary_opts]:
                shown = name if name.startswith("-") else name.upper()
                assert re.search(rf"(^|[\s,/]){re.escape(shown)}($|[\s,.])", flat), (name, text)


def test_help_piped_is_plain_and_80_wide():
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR")}
    r = subprocess.run(
        [sys.executable, "-m", "scnrestore", "upscale", "--help"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    assert "\x1b[" not in r.stdout and "…" not in r.stdout
    assert max(len(line) for line in r.stdout.splitlines()) <= 80
    assert "Usage: scnrestore upscale [OPTIONS] INPUTS..." in r.stdout


def test_own_options_first_in_panels_and_value_lists_shown():
    text = help_text("upscale", columns=80)
    order = ["Restore", "Output", "Performance", "Cluster"]
    at = [text.index(f"─ {name} ─") for name in order]
    assert at == sorted(at), at
    assert text.index("--jpeg") < text.index("--output") < text.index("--device")
    assert text.index("--device") < text.index("--ray")
    for values in ("auto|cpu|cuda|cuda:N|mps", "png|jpg|webp|tif|bmp", "auto|off|Q",
                   "off|auto|SIGMA", "auto|fp32|bf16|fp16", "2|3|4"):  # fmt: skip
        assert values in text, values
    assert "N|auto" in help_text("denoise") and "N|auto" in help_text("dejpeg")
    denoise = help_text("denoise", columns=80)
    assert denoise.index("--sigma") < denoise.index("--keep-input") < denoise.index("--output")


@pytest.mark.parametrize("command,cmd", COMMANDS, ids=IDS)
def test_flags_and_arguments_show_no_type(command, cmd):
    text = help_text(*command)
    assert "<bool>" not in text and "<list[str]>" not in text, text
    for flag in ("--help", "--recursive", "--json", "--quiet", "--version", "--tta"):
        row = next((line for line in text.splitlines() if re.search(rf"{flag}\b", line)), "")
        assert re.match(r"( {2,}|\s*│|$)", row.split(flag, 1)[-1]), row


@pytest.mark.parametrize(
    "command,own",
    [
        ("upscale", "NAME_x4.png"),
        ("denoise", "NAME_denoised.png"),
        ("dejpeg", "NAME_dejpeg.png"),
    ],  # fmt: skip
)
def test_each_command_names_its_own_default_output(command, own):
    text = help_text(command)
    names = set(re.findall(r"NAME_\w+\.png", text))
    assert own in names and not names - {
        own,
        "NAME_x2.png",
        "NAME_wW.png",
        "NAME_hH.png",
        "NAME_WxH.png",
    }, names
