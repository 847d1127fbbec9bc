"""The weights registry: which models exist, what they are, where their files are.

The registry is ``weights.toml`` (shipped inside the package; the copy at the
repository's top level is the same file), one table per model::

    [models.scn-x2]
    task = "upscale"
    scale = 2
    file = "scn-x2.safetensors"
    sha256 = "..."
    size = 4903912
    embedded = true            # shipped inside the package
    num_scales = 4             # what the tensors cannot tell
    image_mean = 0.5
    ...

This module never imports torch: ``scnrestore models list`` stays instant.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ModelEntry",
    "RegistryError",
    "load_registry",
    "default_model_name",
    "resolve",
    "PACKAGE_DIR",
]

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_REGISTRY = PACKAGE_DIR / "weights.toml"
EMBEDDED_DIR = PACKAGE_DIR / "models"
REQUIRED = ("task", "file")
TASKS = ("upscale", "denoise", "dejpeg")


class RegistryError(ValueError):
    """A malformed registry, an unknown model, or a file that is missing."""


@dataclass(frozen=True)
class ModelEntry:
    """One model of the registry, with the metadata it carries."""

    name: str
    task: str
    file: str
    scale: int = 1
    embedded: bool = False
    sha256: str | None = None
    size: int | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def level_range(self) -> tuple[float, float] | None:
        rng = self.raw.get("sigma_range") or self.raw.get("quality_range")
        return (float(rng[0]), float(rng[1])) if rng else None


_HPARAM_KEYS = ("num_scales", "image_mean")


def _parse(source: Path, data: dict[str, Any]) -> dict[str, ModelEntry]:
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise RegistryError(f"{source}: [models] must be a table")
    out = {}
    for name, raw in models.items():
        if not isinstance(raw, dict):
            raise RegistryError(f"{source}: models.{name} must be a table")
        missing = [k for k in REQUIRED if k not in raw]
        if missing:
            raise RegistryError(f"{source}: models.{name} lacks {', '.join(missing)}")
        if raw["task"] not in TASKS:
            raise RegistryError(f"{source}: models.{name}: unknown task {raw['task']!r}")
        out[name] = ModelEntry(
            name=name,
            task=raw["task"],
            file=str(raw["file"]),
            scale=int(raw.get("scale", 1)),
            embedded=bool(raw.get("embedded", False)),
            sha256=raw.get("sha256"),
            size=raw.get("size"),
            hparams={k: raw[k] for k in _HPARAM_KEYS if k in raw},
            raw=dict(raw),
        )
    return out


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise RegistryError(f"{path}: not valid TOML: {exc}") from None


def load_registry(path: Path | None = None) -> dict[str, ModelEntry]:
    """The shipped registry (or ``path``), merged with the user's if it exists."""
    entries = _parse(path or SHIPPED_REGISTRY, _read_toml(path or SHIPPED_REGISTRY))
    user = user_registry_path()
    if path is None and user.is_file():
        entries.update(_parse(user, _read_toml(user)))
    return entries


def user_registry_path() -> Path:
    env = os.environ.get("SCNRESTORE_REGISTRY")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("scnrestore")) / "weights.toml"


def default_model_name(task: str, scale: int = 1) -> str:
    """The registry name used when no --model is given."""
    return f"scn-x{scale}" if task == "upscale" else f"scn-{task}"


def resolve(name_or_path: str) -> tuple[Path, dict[str, Any], ModelEntry | None]:
    """Map a model name or a checkpoint path to (file, hyperparameters, entry).

    A path that exists wins over a registry name. Registry files are taken
    from the package (embedded models).
    """
    p = Path(name_or_path).expanduser()
    if p.is_file():
        return p, {}, None
    registry = load_registry()
    entry = registry.get(name_or_path)
    if entry is None:
        if p.suffix or os.sep in name_or_path:
            raise RegistryError(f"{name_or_path}: no such checkpoint file")
        known = ", ".join(sorted(registry)) or "none yet"
        raise RegistryError(f"unknown model {name_or_path!r} (known: {known})")
    if entry.embedded:
        path = EMBEDDED_DIR / entry.file
        if not path.is_file():
            raise RegistryError(f"model {entry.name}: embedded file {path} is missing")
        return path, dict(entry.hparams), entry
    raise RegistryError(f"model {entry.name}: not embedded and downloads are not set up")
