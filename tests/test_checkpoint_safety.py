"""Untrusted checkpoints: a pickle that would run code is refused."""

from __future__ import annotations

import os
from pathlib import Path

import hostile as H
import pytest
from test_hostile import run


class Evil:
    """Unpickling this runs a shell command: a checkpoint that would run code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def evil_checkpoint(path: Path, marker: Path) -> Path:
    """A checkpoint-shaped torch file with a payload beside the weights."""
    import torch

    sd = {"body.0.weight": torch.zeros(8, 3, 3, 3), "body.0.bias": torch.zeros(8)}
    torch.save({"model_state_dict": sd, "extra": Evil(marker)}, path)
    return path


def test_malicious_pickle_would_run_code(tmp_path):
    """The payload is real: plain ``torch.load`` runs it (so the refusal below means something)."""
    import torch

    marker = tmp_path / "PWNED"
    evil_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(tmp_path / "evil.pt", weights_only=False)
    assert marker.exists()


def test_malicious_pickle_is_refused(tmp_path):
    import scnrestore
    from scnrestore.checkpoint import CheckpointError

    marker = tmp_path / "PWNED"
    ckpt = evil_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(CheckpointError, match="refused: it holds Python objects"):
        scnrestore.load_model(ckpt)
    H.plain_rgb(tmp_path)
    r = run("upscale", tmp_path / "plain.png", "-s", "2", "--model", ckpt)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"error: {ckpt}: cannot read checkpoint: "
        "refused: it holds Python objects that would run code when loaded"
    )
    assert not marker.exists()
    assert not (tmp_path / "plain_x2.png").exists()
