"""Usage errors exit 2 in one line and write nothing; so do unusable checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import hostile as H
import pytest
from conftest import make_checkpoint
from test_hostile import run

# -- usage errors: exit 2, one line, nothing written ---------------------------------------


def _bad_checkpoints(d: Path, ckpt_dir: Path) -> dict[str, tuple[Path, str]]:
    """name -> (checkpoint file, what the one-line error must say)."""
    import torch
    from safetensors.torch import load_file, save_file

    (d / "empty.pt").write_bytes(b"")
    (d / "text.pt").write_text("hello")
    (d / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage garbage")
    good = (ckpt_dir / "x2.safetensors").read_bytes()
    (d / "truncated.safetensors").write_bytes(good[: len(good) // 2])
    torch.save({"model_state_dict": load_file(ckpt_dir / "x2.safetensors")}, d / "t.pt")
    data = (d / "t.pt").read_bytes()
    (d / "truncated.pt").write_bytes(data[: len(data) // 2])
    save_file({"w": torch.zeros(3)}, str(d / "not_scn.safetensors"))
    (d / "adir.pt").mkdir()
    # Trained for denoise (metadata, as scnrestore train writes it), used for dejpeg.
    save_file(load_file(ckpt_dir / "denoise.safetensors"), str(d / "trained_denoise.safetensors"),
              {"format": "scnrestore", "task": "denoise"})  # fmt: skip
    return {
        "empty": (d / "empty.pt", "cannot read checkpoint: empty file (0 bytes)"),
        "text": (d / "text.pt", "cannot read checkpoint: not a safetensors or torch checkpoint"),
        "bad_header": (d / "bad.safetensors", "cannot read checkpoint: Error while deserializing"),
        "truncated_st": (d / "truncated.safetensors", "cannot read checkpoint: "),
        "truncated_pt": (d / "truncated.pt", "cannot read checkpoint: "),
        "not_scn": (d / "not_scn.safetensors", ""),
        "directory": (d / "adir.pt", ""),
        "trained_denoise": (d / "trained_denoise.safetensors", "was trained for denoise, not"),
    }


USAGE = [
    # (id, command and options, what stderr must say)
    ("scale_1", ["upscale", "-s", "1"], "Invalid value for '--scale'"),
    ("scale_5", ["upscale", "-s", "5"], "Invalid value for '--scale'"),
    ("sigma_0", ["denoise", "--sigma", "0"], "--sigma must be between 1 and 75"),
    ("sigma_76", ["denoise", "--sigma", "76"], "--sigma must be between 1 and 75"),
    ("sigma_nan", ["denoise", "--sigma", "nan"], "--sigma must be between 1 and 75"),
    ("sigma_text", ["denoise", "--sigma", "lots"], "is not a number or 'auto'"),
    ("quality_4", ["dejpeg", "--quality", "4"], "--quality must be between 5 and 100"),
    ("quality_101", ["dejpeg", "--quality", "101"], "--quality must be between 5 and 100"),
    ("tile_negative", ["upscale", "-s", "2", "--tile", "-1"], "Invalid value for '--tile'"),
    ("jpeg_quality_0", ["upscale", "-s", "2", "--jpeg-quality", "0"], "--jpeg-quality"),
    ("png_compression_10", ["upscale", "-s", "2", "--png-compression", "10"], "--png-compression"),
    ("bad_format", ["upscale", "-s", "2", "-f", "gif"], "unknown format 'gif'"),
    # -o naming a picture format not written (it used to become a folder), or
    # one -f contradicts (JPEG data used to go into the .png)
    ("output_gif", ["upscale", "-s", "2", "-o", "{tmp}/res.gif"], "GIF is not written (use .png"),
    (
        "output_vs_format",
        ["upscale", "-s", "2", "-o", "{tmp}/conf.png", "-f", "jpg"],
        "and --format jpg disagree; give one of them",
    ),  # fmt: skip
    ("unknown_model", ["upscale", "-s", "2", "--model", "no-such-model"], "unknown model"),
    (
        "missing_ckpt",
        ["upscale", "-s", "2", "--model", "nope/x.safetensors"],
        "no such checkpoint file",
    ),  # fmt: skip
    (
        "x3_for_upscale_x2",
        ["upscale", "-s", "2", "--model", "{ck}/x3.safetensors"],
        "is a x3 network, but upscale x2 needs x2",
    ),  # fmt: skip
    (
        "x2_for_upscale_x4",
        ["upscale", "-s", "4", "--model", "{ck}/x2.safetensors"],
        "is a x2 network, but upscale x4 needs x4",
    ),  # fmt: skip
    (
        "denoise_for_upscale",
        ["upscale", "-s", "2", "--model", "{ck}/denoise.safetensors"],
        "is a x1 network with a level input (a denoise or dejpeg model), but upscale x2",
    ),  # fmt: skip
    (
        "x2_for_denoise",
        ["denoise", "--sigma", "20", "--model", "{ck}/x2.safetensors"],
        "is a x2 network, but denoise needs x1",
    ),  # fmt: skip
]


@pytest.mark.parametrize("case_id,args,says", USAGE, ids=[u[0] for u in USAGE])
def test_usage_errors_exit_2(tmp_path, ckpt_dir, case_id, args, says):
    src = H.plain_rgb(tmp_path)
    args = [a.replace("{ck}", str(ckpt_dir)).replace("{tmp}", str(tmp_path)) for a in args]
    r = run(*args[:1], src, *args[1:])
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert says in " ".join(r.stderr.replace("│", " ").split()), r.stderr  # click boxes wrap
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.png"]


def test_unusable_checkpoints_exit_2_in_one_line(tmp_path, ckpt_dir):
    src = H.plain_rgb(tmp_path)
    d = tmp_path / "ckpts"
    d.mkdir()
    for name, (ckpt, says) in _bad_checkpoints(d, ckpt_dir).items():
        task = ["upscale", "-s", "2"]
        if name == "trained_denoise":
            task = ["dejpeg", "--quality", "20"]
        r = run(*task[:1], src, *task[1:], "--model", ckpt)
        assert r.returncode == 2, (name, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (name, r.stderr)
        assert str(ckpt) in lines[0] and says in lines[0], (name, lines[0])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpts", "plain.png"]


def test_fixed_level_model_for_denoise(tmp_path):
    """An unconditioned x1 checkpoint (like the published per-sigma SCN denoisers)
    is accepted for denoise: it takes no level, so --sigma is noted as unused and
    auto estimates nothing."""
    ckpt = make_checkpoint(tmp_path / "x1.safetensors", scale=1)
    src = H.plain_rgb(tmp_path)
    r = run("denoise", src, "--sigma", "30", "--model", ckpt, "--json")
    assert r.returncode == 0, r.stderr
    assert "note: the model takes no level; --sigma is not used" in r.stderr.splitlines()
    f = json.loads(r.stdout)["files"][0]
    assert f["status"] == "ok" and "level" not in f
    r = run("denoise", src, "--model", ckpt, "--json", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert not [ln for ln in r.stderr.splitlines() if ln.startswith(("note:", "estimated"))]
    assert "estimated" not in r.stderr
