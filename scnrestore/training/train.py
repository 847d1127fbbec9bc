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
import signal
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_output
from .config import TrainConfig, command_line
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
        "command": command_line(command),
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
    run = _Run(cfg, resume)
    with _StopSignals() as stop:
        record = run.loop(stop, progress)
    record["step"] = run.step
    record["stopped"] = stop.flag
    return record


class _StopSignals:
    """SIGINT and SIGTERM set ``flag`` (the loop stops after its step) while
    the block runs; the handlers before it come back after."""

    def __init__(self) -> None:
        self.flag = False

    def __enter__(self) -> _StopSignals:
        self._old = {s: signal.signal(s, self._stop) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _stop(self, signum: int, frame: Any) -> None:
        self.flag = True

    def __exit__(self, *exc: object) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)


class _Run:
    """One training run: the network, its optimiser and data, and the loop.

    Made in the order the run's random streams are drawn from (the torch seed,
    the network's initial weights, a resumed run's generators, the data), so a
    seeded run makes the same batches and losses every time it is run.
    """

    def __init__(self, cfg: TrainConfig, resume: bool) -> None:
        import torch

        from ..runtime import resolve_device, resolve_precision

        self.cfg = cfg
        self.out = Path(cfg.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.ckpt_path = self.out / "last.pt"
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = resolve_device(cfg.device)
        self.precision = resolve_precision(cfg.precision, self.device)
        self._build(resume)
        self._open_data()
        self._prepare()

    def _build(self, resume: bool) -> None:
        """The network, optimiser and schedule: new, from ``--init``, or resumed."""
        import torch

        from ..model import SCN

        cfg = self.cfg
        self.mcfg = cfg.network
        torch.manual_seed(cfg.seed)
        self.model = SCN(self.mcfg).to(self.device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.milestones = _milestones(cfg)
        self.sched = torch.optim.lr_scheduler.MultiStepLR(self.opt, self.milestones, cfg.lr_gamma)
        self.rng = np.random.default_rng(cfg.seed)
        self.step = 0
        self.state: dict[str, Any] | None = None
        if resume and self.ckpt_path.exists():
            self._resume()
        elif resume:
            raise FileNotFoundError(f"{self.ckpt_path}: nothing to resume")
        elif cfg.init:
            init_from(self.model, cfg.init)

    def _resume(self) -> None:
        """Carry on from the checkpoint: weights, optimiser, step and generators."""
        import torch

        cfg = self.cfg
        state = torch.load(self.ckpt_path, map_location=self.device, weights_only=True)
        self.state = state
        self.model.load_state_dict(state["model_state_dict"])
        self.opt.load_state_dict(state["optimizer"])
        self.step = step = int(state["step"])
        # A resumed run may be given more steps: the milestones follow the new
        # total, and the learning rate is set from how many are behind us.
        passed = sum(m <= step for m in self.milestones)
        for group in self.opt.param_groups:
            group["lr"] = cfg.lr * cfg.lr_gamma**passed
        self.sched = torch.optim.lr_scheduler.MultiStepLR(self.opt, self.milestones, cfg.lr_gamma)
        self.sched.last_epoch = step
        self.rng.bit_generator.state = state["numpy_rng"]
        torch.set_rng_state(state["torch_rng"].cpu())  # map_location moved it

    def _open_data(self) -> None:
        """The data pipeline (recorded in run.json) and the batches it feeds."""
        from .devicedata import choose_pipeline

        cfg = self.cfg
        self.pipeline = {"kind": choose_pipeline(cfg, self.device, self.state)}
        if self.state is not None:
            check_sources(cfg.data)  # the folders the run began with, unchanged
        record_sources(cfg.data)
        self.write_run_json()
        self.feed = _data_feed(cfg, self.pipeline["kind"], self.device, self.rng, self.state)
        if self.pipeline["kind"] == "device":
            self.pipeline = self.feed.describe()
            self.write_run_json()

    def _prepare(self) -> None:
        """Validation images, memory layout, moving average, precision, loss."""
        import torch

        cfg, device = self.cfg, self.device
        self.val_images = load_images(cfg.val) if cfg.val else []
        self.model.train()
        self.model = self.model.to(memory_format=torch.channels_last)
        # After the layout change, which gives the parameters new storage.
        self.ema = Ema(self.model, cfg.ema) if cfg.ema else None
        if self.ema is not None and self.state is not None and "ema" in self.state:
            self.ema.load_state_dict(self.state["ema"])
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # training shapes never change
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        # fp16 needs loss scaling; bf16 and fp32 do not.
        fp16 = self.precision == "fp16"
        self.scaler = torch.amp.GradScaler(device.type) if fp16 else None
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        losses = {"l1": torch.nn.functional.l1_loss, "l2": torch.nn.functional.mse_loss}
        self.loss_fn = losses[cfg.loss]

    def write_run_json(self) -> None:
        import torch

        with atomic_output(self.out / "run.json") as tmp:
            # ``auto`` depends on the machine (a CPU's precision is measured):
            # what it resolved to is part of the record.
            resolved = {
                "device": str(self.device),
                "precision": self.precision,
                "torch": torch.__version__,
            }
            doc = {"config": asdict(self.cfg), "model": self.mcfg.to_dict(), "resolved": resolved,
                   "data_pipeline": self.pipeline}  # fmt: skip
            tmp.write_text(json.dumps(doc, indent=1))

    def save(self) -> None:
        """The checkpoint (last.pt) and the weights (model.safetensors)."""
        import torch

        cfg, out, ema = self.cfg, self.out, self.ema
        device = self.pipeline["kind"] == "device"
        device_rng = {"device_rng": self.feed.get_state()} if device else {}
        _atomic_save(
            {
                "model_state_dict": self.model.state_dict(),
                "optimizer": self.opt.state_dict(),
                "scheduler": self.sched.state_dict(),
                "step": self.step,
                "numpy_rng": self.feed.rng_state,
                "torch_rng": torch.get_rng_state(),
                **device_rng,
                **({"ema": ema.state_dict()} if ema is not None else {}),
                "train_config": asdict(cfg),
                "model_config": self.mcfg.to_dict(),
            },
            self.ckpt_path,
        )
        meta = weights_metadata(self.mcfg.to_dict(), cfg.task, self.step, cfg.command)
        if ema is None:
            _atomic_save_safetensors(self.model.state_dict(), meta, out / "model.safetensors")
            return
        _atomic_save_safetensors(self.model.state_dict(), meta, out / "model.raw.safetensors")
        _atomic_save_safetensors(ema.weights, meta | {"ema": f"{cfg.ema:g}"},
                                 out / "model.safetensors")  # fmt: skip

    def loop(
        self, stop: _StopSignals, progress: Callable[[dict[str, Any]], None] | None
    ) -> dict[str, Any]:
        """Steps until ``cfg.steps`` or a stop signal; the last log record."""

        cfg = self.cfg
        # A resumed run whose total was not yet fixed carries the unspent part of
        # its budget (see ``_finish``) and measures its pace afresh.
        self.budget = _Budget(cfg, self.step) if cfg.time_budget > 0 else None
        log = _Log(self.out / "log.jsonl", self.step, self.device)
        record: dict[str, Any] = {"step": self.step}
        try:
            while self.step < cfg.steps and not stop.flag:
                loss = self.train_step()
                log.add(loss)
                if self.budget is not None and self.budget.revise(self.step, self.sched):
                    self.write_run_json()
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    record = self.log_record(log)
                    if progress:
                        progress(record)
                if self.step % cfg.ckpt_every == 0:
                    self.save()
        finally:
            self._finish(log)
        return record

    def train_step(self) -> Any:
        """One optimiser step on the next batch; its loss (on the device)."""
        from ..runtime import autocast

        cfg, opt = self.cfg, self.opt
        x, y = self._batch()
        with autocast(self.device, self.precision):
            pred = self.forward(x)
        loss = self.loss_fn(pred.float(), y)
        if self.step < cfg.warmup:
            for group in opt.param_groups:
                group["lr"] = cfg.lr * (self.step + 1) / cfg.warmup
        opt.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            opt.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(opt)
            self.scaler.update()
        self.sched.step()
        if self.ema is not None:
            self.ema.update()
        self.step += 1
        return loss

    def _batch(self) -> tuple[Any, Any]:
        """The next batch as network input (with its level plane) and target."""
        import torch

        cfg, device = self.cfg, self.device
        xb, yb, lv = self.feed.next()
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
        return x.contiguous(memory_format=torch.channels_last), y

    def log_record(self, log: _Log) -> dict[str, Any]:
        """The log record of this step (validated when it is time), written out."""
        cfg, step = self.cfg, self.step
        record = log.record(step, cfg.steps, self.opt.param_groups[0]["lr"])
        if self.val_images and (step % cfg.val_every == 0 or step == cfg.steps):
            measured = self.ema.model_copy() if self.ema is not None else self.model
            scores = validate(measured, cfg, self.val_images, self.device, self.precision)
            record.update({"val_" + k: v for k, v in scores.items()})
        log.write(record)
        return record

    def _finish(self, log: _Log) -> None:
        """Stop the data, record where a time budget stands, save, close the log."""
        cfg, budget = self.cfg, self.budget
        self.feed.close()
        if budget is not None and cfg.time_budget:
            if self.step >= cfg.steps:
                # Reached the estimated total before the freeze (a slow pace
                # estimates a short run): that total is the run.
                cfg.time_budget = 0.0
            else:
                # Stopped before the total was fixed: record the unspent budget
                # and the cap it was given, so --resume re-measures the pace
                # (the machine may differ) and still fits the rest into it.
                cfg.time_budget = max(1.0, budget.deadline - time.time())
                cfg.steps = budget.cap
            self.write_run_json()
        self.save()
        log.close()


class _Log:
    """RUN/log.jsonl, and the loss summed on the device between records
    (reading it every step would make the host wait for the accelerator and
    stall the pipeline)."""

    def __init__(self, path: Path, step: int, device: Any) -> None:
        import torch

        self.f = open(path, "a")
        self.t0, self.steps0, self.n = time.time(), step, 0
        self.loss = torch.zeros((), device=device)

    def add(self, loss: Any) -> None:
        self.loss += loss.detach()
        self.n += 1

    def record(self, step: int, steps: int, lr: float) -> dict[str, Any]:
        """The mean loss since the last record, the learning rate and the pace."""
        mean_loss = float(self.loss) / self.n
        if not math.isfinite(mean_loss):
            raise FloatingPointError(f"loss became {mean_loss} by step {step}")
        dt = time.time() - self.t0
        record = {
            "step": step,
            "steps": steps,
            "loss": mean_loss,
            "lr": lr,
            "it_s": (step - self.steps0) / dt if dt > 0 else 0.0,
            "time": time.time(),
        }
        self.loss.zero_()
        self.n = 0
        return record

    def write(self, record: dict[str, Any]) -> None:
        self.f.write(json.dumps(record) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


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
