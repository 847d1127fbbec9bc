"""Reading checkpoint files into an SCN, safely.

Safetensors first; torch files are read with ``weights_only=True`` only, so a
checkpoint can never run code. The usual wrappings are unwrapped:
``model_state_dict`` (the published trainer), ``state_dict``, ``params_ema``,
``params``, ``model`` and a ``module.`` prefix (DataParallel).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .model import SCN

from .errors import CheckpointError, first_line

__all__ = ["CheckpointError", "load_state_dict", "read_metadata", "build_model"]

_WRAPPERS = ("params_ema", "model_state_dict", "state_dict", "params", "model", "net")


def _is_tensor_dict(obj: Any) -> bool:
    import torch

    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(isinstance(v, torch.Tensor) for v in obj.values())
    )


def unwrap(obj: Any) -> dict[str, torch.Tensor]:
    """Find the state dict inside the usual checkpoint wrappings."""
    for _ in range(3):
        if _is_tensor_dict(obj):
            break
        if not isinstance(obj, dict):
            raise CheckpointError("checkpoint holds no state dict")
        for key in _WRAPPERS:
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        else:
            raise CheckpointError(
                "checkpoint holds no state dict (looked for " + ", ".join(_WRAPPERS) + ")"
            )
    if not _is_tensor_dict(obj):
        raise CheckpointError("checkpoint holds no state dict")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module.") :]: v for k, v in obj.items()}
    return obj


def _is_safetensors(path: Path) -> bool:
    """Safetensors files start with an 8-byte header length then '{'."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read a checkpoint file (safetensors or torch) into a float32 state dict."""
    import torch

    path = Path(path)
    if path.is_file() and path.stat().st_size == 0:
        raise CheckpointError(f"{path}: cannot read checkpoint: empty file (0 bytes)")
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file

            sd: Any = load_file(str(path))
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a directory, not a checkpoint") from None
    except Exception as exc:  # unpickling errors, truncated zips, bad headers
        raise CheckpointError(f"{path}: cannot read checkpoint: {_reason(path, exc)}") from None
    sd = unwrap(sd)
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


def _reason(path: Path, exc: BaseException) -> str:
    """One line saying why a checkpoint file could not be read."""
    text = str(exc).strip()
    if "weights_only" in text or "Unsupported global" in text:
        return "refused: it holds Python objects that would run code when loaded"
    with open(path, "rb") as f:
        head = f.read(2)
    # Torch files are zip archives (PK) or, before torch 1.6, pickles (0x80).
    if not _is_safetensors(path) and head[:2] != b"PK" and head[:1] != b"\x80":
        return "not a safetensors or torch checkpoint file"
    return first_line(exc).split(". ")[0]


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The scnrestore metadata stored in a safetensors header ({} otherwise)."""
    path = Path(path)
    if not _is_safetensors(path):
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            meta = dict(f.metadata() or {})
    except Exception as exc:  # SafetensorError: a corrupt or truncated header
        raise CheckpointError(f"{path}: cannot read checkpoint: {_reason(path, exc)}") from None
    if "model_config" in meta:
        try:
            meta["model_config"] = json.loads(meta["model_config"])
        except json.JSONDecodeError:
            meta.pop("model_config")
    return meta


def build_model(
    state_dict: dict[str, torch.Tensor], source: str = "checkpoint", **hparams: Any
) -> SCN:
    """An SCN in eval mode with ``state_dict`` loaded and weight norm folded.

    Layout hyperparameters come from the tensors; ``hparams`` supplies what they
    cannot tell (``num_scales``, ``image_mean``) and is checked against them.
    """
    from .model import SCN, config_from_state_dict, fold_weight_norm

    try:
        cfg = config_from_state_dict(state_dict, **hparams)
    except ValueError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    weight_norm = any(k.endswith(".weight_v") for k in state_dict)
    model = SCN(cfg, weight_norm=weight_norm)
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(
            f"{source}: does not fit an SCN: {first[1].strip() if len(first) > 1 else first[0]}"
        ) from None
    model.eval()
    return fold_weight_norm(model)
