"""Training SCN models: data sampling, the loop, checkpoints, resume, logs.

A run lives in one directory::

    RUN/last.pt        model + optimiser + scheduler + step + RNG state (resume)
    RUN/model.safetensors  the latest weights alone (what gets shipped)
    RUN/log.jsonl      one JSON object per log interval and per validation
    RUN/run.json       the training configuration and the command line

Every write is to a temporary file then renamed, so a killed run always
leaves a loadable checkpoint behind.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import degrade
from .evaluate import evaluate, load_images, summarise

__all__ = ["TrainConfig", "train", "TASKS", "load_run_config"]

TASKS = ("upscale", "denoise", "dejpeg")


@dataclass
class TrainConfig:
    """Everything that defines a training run (recorded with its checkpoint)."""

    task: str
    data: str
    out: str
    scale: int = 2
    val: str | None = None
    steps: int = 10000
    batch: int = 16
    patch: int = 0  # input patch side; 0 = task default (48 SR, 96 otherwise)
    lr: float = 1e-3
    lr_milestones: tuple[float, ...] = (0.5, 0.75, 0.9)
    lr_gamma: float = 0.3
    num_blocks: int = 16
    num_residual_units: int = 32
    width_multiplier: float = 4
    num_scales: int = 4
    sigma_range: tuple[float, float] = (1.0, 75.0)
    quality_range: tuple[int, int] = (5, 95)
    val_every: int = 500
    ckpt_every: int = 100
    log_every: int = 25
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    init: str | None = None
    threads: int | None = None
    command: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r} (use {', '.join(TASKS)})")
        if self.task != "upscale":
            self.scale = 1
        elif self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, not {self.scale}")
        if self.patch <= 0:
            self.patch = 48 if self.task == "upscale" else 96
        self.lr_milestones = tuple(self.lr_milestones)
        self.sigma_range = tuple(self.sigma_range)  # type: ignore[assignment]
        self.quality_range = tuple(self.quality_range)  # type: ignore[assignment]

    @property
    def num_cond_channels(self) -> int:
        return 0 if self.task == "upscale" else 1

    # Fixed evaluation levels used for the validation PSNR of ranged models.
    @property
    def val_level(self) -> float | None:
        return {"upscale": None, "denoise": 25.0, "dejpeg": 20.0}[self.task]


class PatchSampler:
    """Random (input, target) patch pairs with flips and transposes."""

    def __init__(self, cfg: TrainConfig, images: list[np.ndarray], rng: np.random.Generator):
        self.cfg = cfg
        self.rng = rng
        s = cfg.scale
        self.hr = [degrade.crop_to_multiple(im, s) for im in images]
        # SR inputs are downscaled once per image, not per patch, so that
        # patches see exactly what a whole downscaled photo looks like.
        self.lr = [degrade.bicubic_downscale(im, s) if s > 1 else im for im in self.hr]
        min_side = cfg.patch * s
        keep = [i for i, im in enumerate(self.hr) if min(im.shape[:2]) >= min_side]
        if not keep:
            raise ValueError(f"no training image is at least {min_side}px on each side")
        self.index = keep

    def level(self) -> float:
        cfg, rng = self.cfg, self.rng
        if cfg.task == "denoise":
            return float(rng.uniform(*cfg.sigma_range))
        if cfg.task == "dejpeg":
            lo, hi = cfg.quality_range
            # Half the batch from the low qualities users most need fixing.
            if rng.random() < 0.5:
                hi = min(hi, 40)
            return float(rng.integers(lo, hi + 1))
        return 0.0

    def batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Inputs (B,h,w,3 uint8), targets (B,h*s,w*s,3 uint8), levels (B,)."""
        cfg, rng = self.cfg, self.rng
        p, s = cfg.patch, cfg.scale
        xs, ys, levels = [], [], []
        for _ in range(cfg.batch):
            i = self.index[int(rng.integers(len(self.index)))]
            lr_img, hr_img = self.lr[i], self.hr[i]
            h, w = lr_img.shape[:2]
            # JPEG patches start on the 16-px MCU grid, as in a whole photo.
            step = 16 if cfg.task == "dejpeg" else 1
            top = int(rng.integers(0, (h - p) // step + 1)) * step
            left = int(rng.integers(0, (w - p) // step + 1)) * step
            x = lr_img[top : top + p, left : left + p]
            y = hr_img[top * s : (top + p) * s, left * s : (left + p) * s]
            level = self.level()
            if cfg.task == "denoise":
                x = degrade.add_gaussian_noise(x, level, rng)
            elif cfg.task == "dejpeg":
                x = degrade.jpeg_roundtrip(np.ascontiguousarray(x), int(level))
            k = int(rng.integers(8))
            xs.append(_dihedral(x, k))
            ys.append(_dihedral(y, k))
            levels.append(level)
        return np.stack(xs), np.stack(ys), np.asarray(levels, np.float32)


def _dihedral(a: np.ndarray, k: int) -> np.ndarray:
    if k & 4:
        a = a.transpose(1, 0, 2)
    return np.ascontiguousarray(np.rot90(a, k & 3))


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _atomic_save_safetensors(state: dict[str, Any], meta: dict[str, str], path: Path) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(path.name + ".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(tmp), meta)
    os.replace(tmp, path)


def validate(
    model: Any,
    cfg: TrainConfig,
    val_images: list[tuple[str, np.ndarray]],
    device: Any,
    precision: str,
) -> dict[str, float]:
    """Mean PSNR (PSNR-Y for SR) of the model and of the baseline, through the
    same tiled engine users get."""
    from .api import Restorer

    restorer = Restorer(cfg.task, model, scale=cfg.scale, device=device, precision=precision)
    try:
        mean = summarise(evaluate(restorer, val_images, cfg.val_level))
    finally:
        model.train()
    key = "psnr_y" if cfg.task == "upscale" else "psnr"
    return {"psnr": mean[key], "baseline": mean["base_" + key]}


def train(
    cfg: TrainConfig,
    resume: bool = False,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) training; returns the last log record.

    ``progress`` is called with each log record (the CLI draws a bar from it).
    SIGINT/SIGTERM stop the run after the current step, with a checkpoint.
    """
    import torch

    from .model import SCN, SCNConfig
    from .runtime import resolve_device, resolve_precision

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "last.pt"
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)

    mcfg = SCNConfig(
        scale=cfg.scale,
        num_blocks=cfg.num_blocks,
        num_residual_units=cfg.num_residual_units,
        width_multiplier=cfg.width_multiplier,
        num_scales=cfg.num_scales,
        num_cond_channels=cfg.num_cond_channels,
    )
    torch.manual_seed(cfg.seed)
    model = SCN(mcfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    milestones = sorted({max(1, int(f * cfg.steps)) for f in cfg.lr_milestones})
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, cfg.lr_gamma)
    rng = np.random.default_rng(cfg.seed)
    step = 0

    if resume and ckpt_path.exists():
        state = torch.load(ckpt_path, map_location=device, weights_only=True)
        model.load_state_dict(state["model_state_dict"])
        opt.load_state_dict(state["optimizer"])
        step = int(state["step"])
        # A resumed run may be given more steps: the milestones follow the new
        # total, and the learning rate is set from how many are behind us.
        passed = sum(m <= step for m in milestones)
        for group in opt.param_groups:
            group["lr"] = cfg.lr * cfg.lr_gamma**passed
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, cfg.lr_gamma)
        sched.last_epoch = step
        rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"])
    elif resume:
        raise FileNotFoundError(f"{ckpt_path}: nothing to resume")
    elif cfg.init:
        _init_from(model, cfg.init)

    (out / "run.json").write_text(
        json.dumps({"config": asdict(cfg), "model": mcfg.to_dict()}, indent=1)
    )
    sampler = PatchSampler(cfg, [im for _, im in load_images(cfg.data)], rng)
    val_images = load_images(cfg.val) if cfg.val else []
    model.train()
    if device.type == "cpu":
        model = model.to(memory_format=torch.channels_last)

    stop = {"flag": False}

    def _stop(signum: int, frame: Any) -> None:
        stop["flag"] = True

    old_handlers = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}

    def save() -> None:
        _atomic_save(
            {
                "model_state_dict": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "step": step,
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "train_config": asdict(cfg),
                "model_config": mcfg.to_dict(),
            },
            ckpt_path,
        )
        meta = {
            "format": "scnrestore",
            "model_config": json.dumps(mcfg.to_dict()),
            "task": cfg.task,
            "steps": str(step),
            "command": shlex.join(cfg.command),
        }
        _atomic_save_safetensors(model.state_dict(), meta, out / "model.safetensors")

    from .runtime import autocast

    log_f = open(out / "log.jsonl", "a")
    record: dict[str, Any] = {"step": step}
    t0, steps0, loss_acc, n_acc = time.time(), step, 0.0, 0
    try:
        while step < cfg.steps and not stop["flag"]:
            xb, yb, lv = sampler.batch()
            x = torch.from_numpy(xb).to(device).permute(0, 3, 1, 2).float().div_(255)
            y = torch.from_numpy(yb).to(device).permute(0, 3, 1, 2).float().div_(255)
            if cfg.num_cond_channels:
                from .model import condition_value

                cv = torch.tensor([condition_value(cfg.task, v) for v in lv], device=device)
                x = torch.cat([x, cv.view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])], 1)
            x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                pred = model(x)
            loss = torch.nn.functional.l1_loss(pred.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            lv_ = float(loss.detach())
            if not math.isfinite(lv_):
                raise FloatingPointError(f"loss became {lv_} at step {step}")
            loss_acc += lv_
            n_acc += 1
            if step % cfg.log_every == 0 or step == cfg.steps:
                dt = time.time() - t0
                record = {
                    "step": step,
                    "loss": loss_acc / n_acc,
                    "lr": opt.param_groups[0]["lr"],
                    "it_s": (step - steps0) / dt if dt > 0 else 0.0,
                    "time": time.time(),
                }
                loss_acc, n_acc = 0.0, 0
                if val_images and (step % cfg.val_every == 0 or step == cfg.steps):
                    record.update(
                        {
                            "val_" + k: v
                            for k, v in validate(model, cfg, val_images, device, precision).items()
                        }
                    )
                log_f.write(json.dumps(record) + "\n")
                log_f.flush()
                if progress:
                    progress(record)
            if step % cfg.ckpt_every == 0:
                save()
    finally:
        save()
        log_f.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)
    record["step"] = step
    record["stopped"] = bool(stop["flag"])
    return record


def load_run_config(out: str | os.PathLike[str]) -> TrainConfig:
    """The configuration recorded in a run directory (for ``--resume``)."""
    data = json.loads((Path(out) / "run.json").read_text())["config"]
    return TrainConfig(**data)


def _init_from(model: Any, path: str) -> None:
    """Initialise from another run's weights: every tensor whose shape fits.

    The usual use: start x3/x4 from a trained x2 body (all but the tail and skip).
    """
    from .checkpoint import load_state_dict

    src = load_state_dict(path)
    own = model.state_dict()
    fits = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    own.update(fits)
    model.load_state_dict(own)
    print(f"initialised {len(fits)}/{len(own)} tensors from {path}", file=sys.stderr)
