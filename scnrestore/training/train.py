"""The training loop: checkpoints, resume, logs, validation.

A run lives in one directory::

    RUN/last.pt        model + optimiser + scheduler + step + RNG state (resume)
    RUN/model.safetensors  the latest weights alone (what gets shipped; with
                       ``ema`` the moving average, and the raw weights beside
                       it in RUN/model.raw.safetensors)
    RUN/log.jsonl      one JSON object per log interval and per validation
    RUN/run.json       the training configuration, the command line, and the
                       device/precision/torch version that ``auto`` resolved to

Every write is to a temporary file then renamed, so a killed run always
leaves a loadable checkpoint behind.
"""

from __future__ import annotations

import json
import math
import shlex
import signal
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_output
from .config import TrainConfig
from .datasources import check_sources, load_sources, record_sources
from .evaluate import evaluate, load_images, summarise
from .sampler import PatchSampler, Prefetcher
from .warmstart import init_from

__all__ = ["train", "validate", "weights_metadata", "Ema"]


def _milestones(cfg: TrainConfig, after: int = 0) -> list[int]:
    """Steps at which the learning rate decays, for ``cfg.steps`` in total
    (none at or before step ``after``).

    A step may appear more than once: when a time budget's first estimate
    comes late (a slow or busy machine) several milestones can fall at or
    before ``after``; they all move to ``after + 1`` and each still decays
    (MultiStepLR applies gamma once per repeat), so the run ends at the
    learning rate its schedule promises."""
    return sorted(max(after + 1, int(f * cfg.steps)) for f in cfg.lr_milestones)


def weights_metadata(
    model_config: dict[str, Any], task: str, step: int, command: list[str]
) -> dict[str, str]:
    """The safetensors header of a run's ``model.safetensors``."""
    return {
        "format": "scnrestore",
        "model_config": json.dumps(model_config),
        "task": task,
        "steps": str(step),
        "command": shlex.join(command),
    }


def _atomic_save(obj: Any, path: Path) -> None:
    """torch.save through imageio's atomic output: complete and fsynced, or absent."""
    import torch

    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def _atomic_save_safetensors(state: dict[str, Any], meta: dict[str, str], path: Path) -> None:
    from safetensors.torch import save

    # Bytes, not save_file: that one makes its own temporary file beside the
    # path it is given, which for an anonymous file is /proc/self/fd.
    data = save({k: v.detach().cpu().contiguous() for k, v in state.items()}, meta)
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def validate(
    model: Any,
    cfg: TrainConfig,
    val_images: list[tuple[str, np.ndarray]],
    device: Any,
    precision: str,
) -> dict[str, float]:
    """Mean PSNR (PSNR-Y for SR) of the model and of the baseline, through the
    same tiled engine users get."""
    from ..api import Restorer

    restorer = Restorer(cfg.task, model, scale=cfg.scale, device=device, precision=precision)
    try:
        jpeg = 80 if cfg.jpeg_range else None  # a JPEG-aware upscaler: a web-quality JPEG
        mean = summarise(evaluate(restorer, val_images, cfg.val_level, jpeg=jpeg))
    finally:
        model.train()
    key = "psnr_y" if cfg.task == "upscale" else "psnr"
    return {"psnr": mean[key], "baseline": mean["base_" + key]}


def _data_feed(
    cfg: TrainConfig, kind: str, device: Any, rng: np.random.Generator, state: dict | None
) -> Any:
    """The run's batches: a ``DeviceSampler`` (``kind`` "device", its
    generator restored from ``state``) or a ``PatchSampler`` on a thread."""
    images, groups = load_sources(cfg.data)
    if kind != "device":
        return Prefetcher(PatchSampler(cfg, images, rng, groups))
    from .devicedata import DeviceSampler

    feed = DeviceSampler(cfg, images, device, rng, groups=groups)
    if state is not None and "device_rng" in state:
        feed.set_state(state["device_rng"])
    return feed


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

    from ..model import SCN, SCNConfig
    from ..runtime import resolve_device, resolve_precision

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
    milestones = _milestones(cfg)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, cfg.lr_gamma)
    rng = np.random.default_rng(cfg.seed)
    step = 0
    state = None

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
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location moved it
    elif resume:
        raise FileNotFoundError(f"{ckpt_path}: nothing to resume")
    elif cfg.init:
        init_from(model, cfg.init)

    from .devicedata import choose_pipeline

    pipeline = {"kind": choose_pipeline(cfg, device, state)}

    def write_run_json() -> None:
        with atomic_output(out / "run.json") as tmp:
            # ``auto`` depends on the machine (a CPU's precision is measured):
            # what it resolved to is part of the record.
            resolved = {"device": str(device), "precision": precision, "torch": torch.__version__}
            doc = {"config": asdict(cfg), "model": mcfg.to_dict(), "resolved": resolved,
                   "data_pipeline": pipeline}  # fmt: skip
            tmp.write_text(json.dumps(doc, indent=1))

    if state is not None:
        check_sources(cfg.data)  # the folders the run began with, unchanged
    record_sources(cfg.data)
    write_run_json()
    feed = _data_feed(cfg, pipeline["kind"], device, rng, state)
    if pipeline["kind"] == "device":
        pipeline = feed.describe()
        write_run_json()
    val_images = load_images(cfg.val) if cfg.val else []
    model.train()
    model = model.to(memory_format=torch.channels_last)
    # After the layout change, which gives the parameters new storage.
    ema = Ema(model, cfg.ema) if cfg.ema else None
    if ema is not None and state is not None and "ema" in state:
        ema.load_state_dict(state["ema"])
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # training shapes never change
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # fp16 needs loss scaling; bf16 and fp32 do not.
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    forward = torch.compile(model) if cfg.compile else model
    loss_fn = {"l1": torch.nn.functional.l1_loss, "l2": torch.nn.functional.mse_loss}[cfg.loss]

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
                "numpy_rng": feed.rng_state,
                "torch_rng": torch.get_rng_state(),
                **({"device_rng": feed.get_state()} if pipeline["kind"] == "device" else {}),
                **({"ema": ema.state_dict()} if ema is not None else {}),
                "train_config": asdict(cfg),
                "model_config": mcfg.to_dict(),
            },
            ckpt_path,
        )
        meta = weights_metadata(mcfg.to_dict(), cfg.task, step, cfg.command)
        if ema is None:
            _atomic_save_safetensors(model.state_dict(), meta, out / "model.safetensors")
            return
        _atomic_save_safetensors(model.state_dict(), meta, out / "model.raw.safetensors")
        _atomic_save_safetensors(ema.weights, meta | {"ema": f"{cfg.ema:g}"},
                                 out / "model.safetensors")  # fmt: skip

    from ..runtime import autocast

    # A resumed run whose total was not yet fixed carries the unspent part of
    # its budget (see the ``finally`` below) and measures its pace afresh.
    budget = _Budget(cfg, step) if cfg.time_budget > 0 else None
    log_f = open(out / "log.jsonl", "a")
    record: dict[str, Any] = {"step": step}
    t0, steps0, n_acc = time.time(), step, 0
    # The loss is summed on the device: reading it every step would make the
    # host wait for the accelerator and stall the pipeline.
    loss_acc = torch.zeros((), device=device)
    try:
        while step < cfg.steps and not stop["flag"]:
            xb, yb, lv = feed.next()
            x = torch.as_tensor(xb).to(device, non_blocking=True)
            y = torch.as_tensor(yb).to(device, non_blocking=True)
            x = x.permute(0, 3, 1, 2).float().div_(255)
            y = y.permute(0, 3, 1, 2).float().div_(255)
            if cfg.num_cond_channels:
                from ..model import condition_value

                if torch.is_tensor(lv):  # the device pipeline: no host sync
                    from .devicedata import condition_values

                    cv = condition_values(cfg.task, lv)
                else:
                    cv = torch.tensor([condition_value(cfg.task, v) for v in lv], device=device)
                x = torch.cat([x, cv.view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])], 1)
            x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, precision):
                pred = forward(x)
            loss = loss_fn(pred.float(), y)
            if step < cfg.warmup:
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * (step + 1) / cfg.warmup
            opt.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            sched.step()
            if ema is not None:
                ema.update()
            step += 1
            loss_acc += loss.detach()
            n_acc += 1
            if budget is not None:
                if budget.revise(step, sched):
                    write_run_json()
            if step % cfg.log_every == 0 or step == cfg.steps:
                mean_loss = float(loss_acc) / n_acc
                if not math.isfinite(mean_loss):
                    raise FloatingPointError(f"loss became {mean_loss} by step {step}")
                dt = time.time() - t0
                record = {
                    "step": step,
                    "steps": cfg.steps,
                    "loss": mean_loss,
                    "lr": opt.param_groups[0]["lr"],
                    "it_s": (step - steps0) / dt if dt > 0 else 0.0,
                    "time": time.time(),
                }
                loss_acc.zero_()
                n_acc = 0
                if val_images and (step % cfg.val_every == 0 or step == cfg.steps):
                    measured = ema.model_copy() if ema is not None else model
                    scores = validate(measured, cfg, val_images, device, precision)
                    record.update({"val_" + k: v for k, v in scores.items()})
                log_f.write(json.dumps(record) + "\n")
                log_f.flush()
                if progress:
                    progress(record)
            if step % cfg.ckpt_every == 0:
                save()
    finally:
        feed.close()
        if budget is not None and cfg.time_budget:
            if step >= cfg.steps:
                # Reached the estimated total before the freeze (a slow pace
                # estimates a short run): that total is the run.
                cfg.time_budget = 0.0
            else:
                # Stopped before the total was fixed: record the unspent budget
                # and the cap it was given, so --resume re-measures the pace
                # (the machine may differ) and still fits the rest into it.
                cfg.time_budget = max(1.0, budget.deadline - time.time())
                cfg.steps = budget.cap
            write_run_json()
        save()
        log_f.close()
        for s, h in old_handlers.items():
            signal.signal(s, h)
    record["step"] = step
    record["stopped"] = bool(stop["flag"])
    return record


class Ema:
    """An exponential moving average of a model's weights (fp32).

    ``update`` after each optimiser step folds the live weights in with decay
    ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so an average
    started from a fine-tuned network follows it at first instead of holding
    on to the starting weights. The optimiser updates parameters in place, so
    the live tensors are gathered once.
    """

    def __init__(self, model: Any, decay: float):
        self.model = model
        self.decay = decay
        self.n = 0
        live = model.state_dict()
        self.names = [k for k, v in live.items() if v.is_floating_point()]
        self._live = [live[k] for k in self.names]
        self.avg = [v.detach().float().clone() for v in self._live]

    def update(self) -> None:
        import torch

        d = min(self.decay, (1 + self.n) / (10 + self.n))
        with torch.no_grad():
            torch._foreach_lerp_(self.avg, [v.float() for v in self._live], 1.0 - d)
        self.n += 1

    @property
    def weights(self) -> dict[str, Any]:
        """The averaged state dict (non-float entries from the live model)."""
        out = dict(self.model.state_dict())
        out.update({k: a.to(out[k].dtype) for k, a in zip(self.names, self.avg, strict=True)})
        return out

    def model_copy(self) -> Any:
        """A copy of the model holding the averaged weights (to validate)."""
        import copy

        twin = copy.deepcopy(self.model)
        twin.load_state_dict(self.weights)
        return twin

    def state_dict(self) -> dict[str, Any]:
        avg = dict(zip(self.names, self.avg, strict=True))
        return {"n": self.n, "decay": self.decay, "avg": avg}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.n = int(state["n"])
        for i, k in enumerate(self.names):
            self.avg[i].copy_(state["avg"][k])


class _Budget:
    """Fits a run into ``cfg.time_budget`` seconds of wall clock.

    While the learning rate is still at its initial value (before the first
    milestone) the step total is re-estimated every few seconds from the
    measured speed, so the decay schedule lands inside the budget. At 80% of
    the way to the first milestone the total is frozen and written back into
    the configuration (``time_budget`` cleared), so the recorded run replays
    exactly with ``--steps``. The run then completes its schedule even if the
    pace changes later (stop it with Ctrl-C / SIGTERM for a checkpoint).
    A run stopped before the freeze records its unspent seconds instead, and
    ``--resume`` goes on measuring from there.
    """

    WARMUP_STEPS = 10  # cuDNN autotuning and allocator growth are not the pace
    EVERY_S = 5.0

    def __init__(self, cfg: TrainConfig, step: int):
        self.cfg = cfg
        self.step0 = step
        self.t_start = time.time()
        self.deadline = self.t_start + cfg.time_budget
        self.mark: tuple[int, float] | None = None
        self.last = 0.0
        self.cap = cfg.steps
        self.every = min(self.EVERY_S, cfg.time_budget / 20)

    def revise(self, step: int, sched: Any) -> bool:
        """Update ``cfg.steps`` and the milestones; True when the config changed."""
        cfg, now = self.cfg, time.time()
        if not cfg.time_budget:
            return False
        if self.mark is None:
            if step - self.step0 >= self.WARMUP_STEPS:
                self.mark, self.last = (step, now), now
            return False
        if now - self.last < self.every:
            return False
        self.last = now
        first = min(sched.milestones) if sched.milestones else cfg.steps
        if step >= 0.8 * first:
            cfg.time_budget = 0.0  # frozen: from here the run is defined by its steps
            return True
        rate = (step - self.mark[0]) / (now - self.mark[1])
        total = min(self.cap, step + 1 + int(rate * max(0.0, self.deadline - now)))
        if total == cfg.steps:
            return False
        cfg.steps = total
        from collections import Counter

        sched.milestones = Counter(_milestones(cfg, after=step))
        return True
