"""--help reads like typer's own: a value type only where an option takes a value,
and each command names its own default output name."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from scnrestore.cli import app

COMMANDS = [[], ["upscale"], ["denoise"], ["dejpeg"], ["train"], ["eval"], ["models"],
            ["models", "list"], ["models", "info"], ["models", "download"],
            ["models", "verify"], ["models", "path"]]  # fmt: skip


def help_text(*command: str) -> str:
    r = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"})
    assert r.exit_code == 0, r.output
    return r.output


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "scnrestore")
def test_flags_and_arguments_show_no_type(command):
    text = help_text(*command)
    assert "<bool>" not in text and "<list[str]>" not in text, text
    for flag in ("--help", "--recursive", "--json", "--quiet", "--version", "--tta"):
        row = next((line for line in text.splitlines() if re.search(rf"{flag}\b", line)), "")
        assert "<" not in row.split(flag, 1)[-1].split("  ")[0], row


def test_value_options_keep_their_types():
    text = help_text("upscale")
    assert "<path>" in text and "<int range>" in text and "<auto|fp32|bf16|fp16>" in text


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
    assert own in names and not names - {own, "NAME_x2.png"}, names
