"""Training SCN models: data sampling, the loop, checkpoints, resume, logs.

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
import os
import queue
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_output
from ..tasks import LOSSES, NOISES, TASKS
from . import degrade
from .datasources import check_sources, draw_cdf, load_sources, normalise_data, record_sources
from .evaluate import evaluate, load_images, summarise

__all__ = ["TrainConfig", "train", "TASKS", "load_run_config", "resume_config"]


@dataclass
class TrainConfig:
    """Everything that defines a training run (recorded with its checkpoint)."""

    task: str
    # One folder (a plain string: as every recorded run has it, drawn as
    # then), or several, each with its share of the patches and, once a run
    # starts, its image count and fingerprint (see datasources.py):
    # [{"path": ..., "share": 0.7, "images": 291, "fingerprint": ...}, ...]
    data: str | list[dict[str, Any]]
    out: str
    scale: int = 2
    val: str | None = None
    steps: int = 10000
    batch: int = 16
    patch: int = 0  # input patch side; 0 = task default (48 SR, 96 otherwise)
    lr: float = 1e-3
    lr_milestones: tuple[float, ...] = (0.5, 0.75, 0.9)
    lr_gamma: float = 0.3
    # Linear learning-rate warm-up over the first N steps of a run (0 = none):
    # a fresh Adam at full rate can throw a from-scratch network off course.
    warmup: int = 0
    num_blocks: int = 16
    num_residual_units: int = 32
    width_multiplier: float = 4
    num_scales: int = 4
    sigma_range: tuple[float, float] = (1.0, 75.0)
    quality_range: tuple[int, int] = (5, 95)
    # Half of each batch draws its level from [low, level_focus] instead of the
    # whole range: the low σ / low qualities that are hard to learn (σ near 1
    # asks for an exact identity) or that users most need fixing. None = the
    # task's default: the whole σ range for denoise (uniform), q <= 40 for
    # dejpeg; recorded runs replay exactly either way.
    level_focus: float | None = None
    # Detail-weighted patches: a patch whose mean |Laplacian| (grey, 0-255,
    # see ``patch_detail``) is below ``detail_floor`` is kept with probability
    # detail / detail_floor, otherwise redrawn. Photos users restore are far
    # more textured than most of a wallpaper (median 13.3 on the val photos,
    # 2.9 on the training wallpapers; scripts/patch_detail.py), so uniform
    # patches spend most steps on flat gradients. 0 = uniform patches;
    # recorded runs replay exactly.
    detail_floor: float = 0.0
    # Downscale augmentation: each training image is also used shrunk by
    # these factors (Pillow BICUBIC with antialiasing, 8-bit), and patches are
    # drawn evenly over (image, factor) pairs. Wallpapers are 1.6k px wide
    # renders; the photos users restore carry denser texture per pixel, which a
    # wallpaper shrunk 2-3x resembles (DnCNN's data generation also shrinks
    # its training images, by 0.9, 0.8 and 0.7). (1.0,) = the images as they are.
    image_scales: tuple[float, ...] = (1.0,)
    # JPEG-aware upscaling (upscale only): the low-resolution patch is saved
    # as a JPEG at a quality drawn uniformly from this range (whole numbers),
    # and the network is told the quality on an extra input plane (see
    # ``model.condition_value``); a share ``jpeg_clean`` of the patches stay
    # clean (told "not a JPEG"), so clean inputs keep their quality. None =
    # the plain bicubic task.
    jpeg_range: tuple[int, int] | None = None
    jpeg_clean: float = 0.2
    # Where patches are cut and degraded (see devicedata.py): "host" (numpy
    # and Pillow per patch, on a background thread), "device" (torch ops on
    # the training device, from images and a JPEG bank made once), or "auto"
    # (device for a new run; a resumed run keeps its checkpoint's pipeline).
    data_pipeline: str = "auto"
    # The device pipeline's JPEG bank holds every Nth quality of the range
    # (and its top): quality is quantised to those levels.
    jpeg_bank_step: int = 5
    # Exponential moving average of the weights (0 = off): the average is what
    # validation measures and model.safetensors holds (with a warm-up, so a
    # fresh average follows the weights quickly: decay min(ema, (1+n)/(10+n))
    # after n updates). Recorded runs without it replay exactly.
    ema: float = 0.0
    # The pixel loss: "l1" (mean absolute error, the usual SR loss, robust
    # from the first step) or "l2" (mean squared error, which PSNR measures:
    # the field's short fine-tune at the end of an L1 run). Recorded runs
    # without it replay exactly.
    loss: str = "l1"
    # denoise only: "gaussian" (additive white Gaussian noise of the told σ,
    # the σ-conditioned model) or "real": a blind model (no level plane) for
    # photos from cameras, trained on a mix of ``degrade.add_camera_noise``
    # patches (share noise_mix[0]), clean patches (noise_mix[1]) and white
    # Gaussian noise of a σ drawn from sigma_range (the rest).
    noise: str = "gaussian"
    noise_mix: tuple[float, float] = (0.6, 0.1)
    # The range of the camera noise's shot-noise level (``degrade.CameraNoise``:
    # raw variance per unit of signal, log-uniform): its strength.
    camera_shot: tuple[float, float] = (5e-5, 1.2e-2)
    # torch.compile the model for training (pays only on long runs).
    compile: bool = False
    val_every: int = 500
    ckpt_every: int = 100
    log_every: int = 25
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    init: str | None = None
    threads: int | None = None
    # Wall-clock budget in seconds (0 = none). The run measures its own speed
    # and fixes ``steps`` to what fits, before the first learning-rate decay;
    # the resolved step count is recorded, so ``--steps N`` reproduces it.
    time_budget: float = 0.0
    command: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r} (use {', '.join(TASKS)})")
        self.data = normalise_data(self.data)
        if self.task != "upscale":
            self.scale = 1
        elif self.scale not in (2, 3, 4):
            raise ValueError(f"scale must be 2, 3 or 4, not {self.scale}")
        if self.patch <= 0:
            self.patch = 48 if self.task == "upscale" else 96
        self.lr_milestones = tuple(self.lr_milestones)
        self.sigma_range = tuple(self.sigma_range)  # type: ignore[assignment]
        self.quality_range = tuple(self.quality_range)  # type: ignore[assignment]
        if self.level_focus is not None:
            if self.task == "upscale":
                raise ValueError("level_focus applies to denoise and dejpeg only")
            lo, hi = self.level_range
            if not lo < self.level_focus <= hi:
                raise ValueError(
                    f"level_focus must be in ({lo:g}, {hi:g}], not {self.level_focus:g}"
                )
        if not self.detail_floor >= 0:
            raise ValueError(f"detail_floor must be >= 0, not {self.detail_floor:g}")
        if self.jpeg_range is not None:
            if self.task != "upscale":
                raise ValueError("jpeg_range applies to upscale only (dejpeg has quality_range)")
            lo, hi = (int(q) for q in self.jpeg_range)
            if not 5 <= lo <= hi <= 100:
                raise ValueError(f"jpeg_range must lie in 5..100 with low <= high, not {lo}, {hi}")
            self.jpeg_range = (lo, hi)
        if not 0.0 <= self.jpeg_clean < 1.0:
            raise ValueError(f"jpeg_clean must lie in [0, 1), not {self.jpeg_clean:g}")
        from .devicedata import PIPELINES

        if self.data_pipeline not in PIPELINES:
            raise ValueError(
                f"data_pipeline must be one of {', '.join(PIPELINES)}, not {self.data_pipeline!r}"
            )
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {', '.join(NOISES)}, not {self.noise!r}")
        if self.noise != "gaussian" and self.task != "denoise":
            raise ValueError("noise applies to denoise only")
        self.noise_mix = tuple(float(v) for v in self.noise_mix)  # type: ignore[assignment]
        self.camera_shot = tuple(float(v) for v in self.camera_shot)  # type: ignore[assignment]
        if len(self.camera_shot) != 2 or not 0 < self.camera_shot[0] <= self.camera_shot[1]:
            raise ValueError(f"camera_shot must be low,high > 0, not {self.camera_shot}")
        if len(self.noise_mix) != 2 or min(self.noise_mix) < 0 or sum(self.noise_mix) > 1:
            raise ValueError(f"noise_mix must be two shares summing to <= 1, not {self.noise_mix}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, not {self.loss!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema must lie in [0, 1), not {self.ema:g}")
        if not self.jpeg_bank_step >= 1:
            raise ValueError(f"jpeg_bank_step must be >= 1, not {self.jpeg_bank_step}")
        self.image_scales = tuple(float(f) for f in self.image_scales)
        if not self.image_scales or not all(0 < f <= 1 for f in self.image_scales):
            raise ValueError(
                "image_scales must be factors in (0, 1], not "
                + (", ".join(f"{f:g}" for f in self.image_scales) or "none")
            )

    @property
    def level_range(self) -> tuple[float, float]:
        """The σ range (denoise) or quality range (dejpeg) levels are drawn from."""
        return self.sigma_range if self.task == "denoise" else self.quality_range

    @property
    def camera(self) -> degrade.CameraNoise:
        """The camera-noise ranges of a ``noise="real"`` run: ``degrade.CameraNoise``'s,
        but the shot-noise range the run records."""
        return degrade.CameraNoise(shot=self.camera_shot)

    @property
    def focus(self) -> float | None:
        """The level half of each batch is drawn below (None: the whole range)."""
        if self.level_focus is not None:
            return self.level_focus
        return 40.0 if self.task == "dejpeg" else None

    @property
    def num_cond_channels(self) -> int:
        if self.noise == "real":  # blind: the network reads the noise itself
            return 0
        return 0 if self.task == "upscale" and self.jpeg_range is None else 1

    @property
    def jpeg_grid(self) -> bool:
        """Inputs are JPEGs: patches start on the 16-px MCU grid, as in a whole photo."""
        return self.task == "dejpeg" or self.jpeg_range is not None

    # Fixed evaluation levels used for the validation PSNR of ranged models.
    @property
    def val_level(self) -> float | None:
        return {"upscale": None, "denoise": 25.0, "dejpeg": 20.0}[self.task]


class PatchSampler:
    """Random (input, target) patch pairs with flips and transposes.

    ``groups`` gives the data source (index into ``cfg.data``'s folders) of
    each image; with several sources each gets its share of the patches.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        images: list[np.ndarray],
        rng: np.random.Generator,
        groups: list[int] | None = None,
    ):
        self.cfg = cfg
        self.rng = rng
        s = cfg.scale
        groups = [g for _ in cfg.image_scales for g in (groups or [0] * len(images))]
        images = [degrade.shrink(im, f) for f in cfg.image_scales for im in images]
        self.hr = [degrade.crop_to_multiple(im, s) for im in images]
        # SR inputs are downscaled once per image, not per patch, so that
        # patches see exactly what a whole downscaled photo looks like.
        self.lr = [degrade.bicubic_downscale(im, s) if s > 1 else im for im in self.hr]
        min_side = cfg.patch * s
        keep = [i for i, im in enumerate(self.hr) if min(im.shape[:2]) >= min_side]
        if not keep:
            raise ValueError(f"no training image is at least {min_side}px on each side")
        self.index = keep
        self.groups = [groups[i] for i in keep]  # the source of each kept image
        self.cdf = draw_cdf(cfg.data, self.groups, min_side)

    def draw_image(self) -> int:
        """The index (into ``hr``/``lr``) of the image the next patch is cut from."""
        rng, n = self.rng, len(self.index)
        if self.cdf is None:  # one source: uniform, as recorded runs drew
            return self.index[int(rng.integers(n))]
        return self.index[min(n - 1, int(np.searchsorted(self.cdf, rng.random(), "right")))]

    def level(self) -> float:
        cfg, rng = self.cfg, self.rng
        if cfg.task == "upscale":
            if cfg.jpeg_range is None or rng.random() < cfg.jpeg_clean:
                return 0.0  # clean: not a JPEG
            return float(rng.integers(cfg.jpeg_range[0], cfg.jpeg_range[1] + 1))
        lo, hi = cfg.level_range
        if cfg.focus is not None and rng.random() < 0.5:
            hi = min(hi, cfg.focus)
        if cfg.task == "denoise":
            return float(rng.uniform(lo, hi))
        return float(rng.integers(lo, int(hi) + 1))  # dejpeg: whole qualities

    def batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Inputs (B,h,w,3 uint8), targets (B,h*s,w*s,3 uint8), levels (B,)."""
        cfg, rng = self.cfg, self.rng
        xs, ys, levels = [], [], []
        for _ in range(cfg.batch):
            x, y = self.patch_pair()
            level = self.level()
            if cfg.task == "denoise" and cfg.noise == "real":
                x = _real_noise_patch(cfg, x, level, rng)
            elif cfg.task == "denoise":
                x = degrade.add_gaussian_noise(x, level, rng)
            elif cfg.task == "dejpeg" or level > 0:  # dejpeg, or a JPEG-aware upscale
                x = degrade.jpeg_roundtrip(np.ascontiguousarray(x), int(level))
            k = int(rng.integers(8))
            xs.append(degrade.dihedral(x, k))
            ys.append(degrade.dihedral(y, k))
            levels.append(level)
        return np.stack(xs), np.stack(ys), np.asarray(levels, np.float32)

    def patch_pair(self) -> tuple[np.ndarray, np.ndarray]:
        """One clean (input, target) pair, detail-weighted if the run asks."""
        cfg, rng = self.cfg, self.rng
        p, s = cfg.patch, cfg.scale
        # JPEG patches start on the 16-px MCU grid, as in a whole photo.
        step = 16 if cfg.jpeg_grid else 1
        # At most 64 draws, so a wholly flat data set still trains (on its last draw).
        for _ in range(64):
            i = self.draw_image()
            lr_img, hr_img = self.lr[i], self.hr[i]
            h, w = lr_img.shape[:2]
            top = int(rng.integers(0, (h - p) // step + 1)) * step
            left = int(rng.integers(0, (w - p) // step + 1)) * step
            x = lr_img[top : top + p, left : left + p]
            y = hr_img[top * s : (top + p) * s, left * s : (left + p) * s]
            if cfg.detail_floor <= 0 or rng.random() * cfg.detail_floor < patch_detail(y):
                return x, y
        return x, y


def _real_noise_patch(
    cfg: TrainConfig, x: np.ndarray, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """A blind real-noise model's input: camera noise, clean, or white noise of
    ``sigma``, by the run's ``noise_mix`` (as the device sampler draws them)."""
    u = rng.random()
    camera, clean = cfg.noise_mix
    if u < camera:
        return degrade.add_camera_noise(np.ascontiguousarray(x), rng, cfg.camera)
    if u < camera + clean:
        return x
    return degrade.add_gaussian_noise(x, sigma, rng)


def patch_detail(patch: np.ndarray) -> float:
    """Mean absolute 4-neighbour Laplacian of a uint8 RGB patch's grey level.

    About 0-2 on smooth gradients and skies, 10-30 on textured photo areas.
    """
    g = patch.astype(np.float32).mean(axis=-1)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(np.abs(lap).mean())


class Prefetcher:
    """Draws batches from a sampler on a background thread.

    Each batch travels with the RNG state *after* it was drawn, so a
    checkpoint records exactly the state that reproduces the next batch the
    loop will use: a resumed run sees the same batches as an unbroken one.
    """

    def __init__(self, sampler: PatchSampler, depth: int = 4):
        self.sampler = sampler
        self.rng_state = sampler.rng.bit_generator.state
        self._q: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="patch-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                item = (*self.sampler.batch(), self.sampler.rng.bit_generator.state)
                while not self._stop.is_set():
                    try:
                        self._q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # surfaced in the training loop
            self._q.put(exc)

    def next(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        item = self._q.get()
        if isinstance(item, BaseException):
            raise item
        xb, yb, lv, self.rng_state = item
        return xb, yb, lv

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


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
        _init_from(model, cfg.init)

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


def load_run_config(out: str | os.PathLike[str]) -> TrainConfig:
    """The configuration recorded in a run directory (for ``--resume``)."""
    data = json.loads((Path(out) / "run.json").read_text())["config"]
    return TrainConfig(**data)


def resume_config(
    out: str | os.PathLike[str],
    *,
    steps: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    command: list[str] | None = None,
) -> TrainConfig:
    """The settings to resume the run in ``out`` with: those it recorded, and
    what a resumed run may change: more ``steps``, the ``device``, the CPU
    ``threads``; ``command`` joins the recorded ones (``&&``). The run goes on
    in ``out`` wherever it was recorded (a run copied back from another
    machine resumes where it now is)."""
    cfg = load_run_config(out)
    cfg.out = str(out)
    cfg.steps = steps or cfg.steps
    cfg.device, cfg.threads = device, threads or cfg.threads
    cfg.command = cfg.command + ["&&"] + (command or [])
    return cfg


# The level a blind model starts from when grown from a σ-conditioned one: the
# told σ at which the Gaussian denoiser did best on real camera noise.
BLIND_INIT_SIGMA = 10.0


def _fold_level_plane(src: dict[str, Any], own: dict[str, Any], fits: dict[str, Any]) -> dict:
    """A blind model grown from a conditioned one (the real-noise denoiser from
    the σ-conditioned one): the first conv loses its level plane, and that
    plane's constant contribution at ``BLIND_INIT_SIGMA`` moves into the conv's
    bias, so the new network computes what the old one did at that σ (exactly,
    but for the one-pixel border the zero padding touches)."""
    from ..model import condition_value

    folded: dict[str, Any] = {}
    for k, v in src.items():
        if not k.endswith(".weight_v") or k in fits:
            continue
        o = own.get(k)
        if o is None or o.ndim != 4 or v.shape[0] != o.shape[0] or v.shape[1] <= o.shape[1]:
            continue
        stem = k[: -len("weight_v")]
        g, b = src[stem + "weight_g"].float(), src[stem + "bias"].float()
        w = g * v.float() / v.float().flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        n = o.shape[1]
        # The network subtracts its image mean (0.5) from every input plane.
        level = condition_value("denoise", BLIND_INIT_SIGMA) - 0.5
        bias = b + level * w[:, n:].sum(dim=(1, 2, 3))
        folded[stem + "bias"] = bias.to(own[stem + "bias"].dtype)
        kept = w[:, :n]
        folded[k] = kept.to(o.dtype)
        folded[stem + "weight_g"] = kept.flatten(1).norm(dim=1).view(-1, 1, 1, 1).to(o.dtype)
    return folded


def _init_from(model: Any, path: str) -> None:
    """Initialise from another run's weights: every tensor whose shape fits.

    The usual use: start x3/x4 from a trained x2 body (all but the tail and skip).
    """
    import torch

    from ..checkpoint import load_state_dict

    src = load_state_dict(path)
    own = model.state_dict()
    fits = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    # A conditioned model grown from an unconditioned one (JPEG-aware x2 from
    # the plain x2): the first conv gains input planes. Their weights start
    # at zero, so the new network computes exactly what the old one did.
    for k, v in src.items():
        o = own.get(k)
        if (
            k not in fits
            and o is not None
            and o.ndim == v.ndim == 4
            and o.shape[0] == v.shape[0]
            and o.shape[2:] == v.shape[2:]
            and o.shape[1] > v.shape[1]
        ):
            grown = torch.zeros_like(o)
            grown[:, : v.shape[1]] = v.to(o.dtype)
            fits[k] = grown
    fits.update(_fold_level_plane(src, own, fits))
    own.update(fits)
    model.load_state_dict(own)
    print(f"initialised {len(fits)}/{len(own)} tensors from {path}", file=sys.stderr)
