"""Shared fixtures: real checkpoints written to temp dirs, real image files."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import fileserver
import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REFERENCE = FIXTURES / "reference"


def golden_cases() -> list[dict]:
    return json.loads((REFERENCE / "golden_cases.json").read_text())


def make_checkpoint(path: Path, seed: int = 0, **cfg) -> Path:
    """A small randomly initialised SCN saved as safetensors."""
    import torch
    from safetensors.torch import save_file

    from scnrestore.model import SCN, SCNConfig

    torch.manual_seed(seed)
    params = dict(num_blocks=2, num_residual_units=8, width_multiplier=2, num_scales=3)
    params.update(cfg)
    model = SCN(SCNConfig(**params))
    with torch.no_grad():  # make the body matter: a tail like the published init
        model.body[-1].weight_g.fill_(0.5)
    save_file(model.state_dict(), str(path))
    return path


@pytest.fixture(scope="session")
def ckpt_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ckpt")
    for s in (2, 3, 4):
        make_checkpoint(d / f"x{s}.safetensors", scale=s)
    make_checkpoint(d / "denoise.safetensors", scale=1, num_cond_channels=1)
    make_checkpoint(d / "dejpeg.safetensors", scale=1, num_cond_channels=1, seed=1)
    return d


@pytest.fixture(scope="session")
def photo() -> np.ndarray:
    """A 96x128 crop of a real photo (coffee, from examples/)."""
    from PIL import Image

    root = Path(__file__).resolve().parents[1]
    with Image.open(root / "examples" / "coffee.png") as im:
        return np.asarray(im.convert("RGB"))[40:136, 60:188].copy()


# -- the registry and downloader tests (a real HTTP server, see fileserver.py) --


@pytest.fixture()
def server() -> Iterator[fileserver.FileServer]:
    s = fileserver.FileServer()
    yield s
    s.close()


@pytest.fixture()
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp cache and an empty user registry; no offline, mirror or proxy settings."""
    reg = tmp_path / "user-weights.toml"
    reg.write_text("[models]\n")
    monkeypatch.setenv("SCNRESTORE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("SCNRESTORE_REGISTRY", str(reg))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    for var in ("SCNRESTORE_OFFLINE", "SCNRESTORE_WEIGHTS_URL"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path
