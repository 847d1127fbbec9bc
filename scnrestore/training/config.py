"""A training run's settings: ``TrainConfig``, recorded in RUN/run.json.

The fields are what ``scnrestore train`` offers (see cli/train.py) and what
every run.json records under "config", flat, as runs have always recorded
them; ``load_run_config`` reads one back and ``resume_config`` makes the
settings a resumed run goes on with.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..architecture import SCNConfig
from ..tasks import CAMERA_MODELS, LOSSES, NOISES, TASKS

if TYPE_CHECKING:
    from .degrade import CameraNoise

__all__ = [
    "TrainConfig",
    "NETWORK_FIELDS",
    "PIPELINES",
    "load_run_config",
    "resume_config",
    "command_line",
    "option",
]

# Where patches are cut and degraded (see devicedata.py).
PIPELINES = ("auto", "host", "device")


def option(
    help: str = "",
    *flags: str,
    min: float | None = None,
    max: float | None = None,
    metavar: str | None = None,
    shown: str | None = None,
    path: bool = False,
    many: bool = False,
    unset: bool = False,
) -> dict[str, Any]:
    """Field metadata: ``scnrestore train`` offers the field as an option
    (cli/train.py builds the options from it). ``flags``: its names (default
    ``--field-name``); ``min``/``max``: bounds; ``shown``: the default as
    typed (a tuple field is typed as numbers with commas); ``path``: a file
    or folder; ``many``: the option repeats; ``unset``: the option's own
    default is none (the command decides)."""
    given = dict(min=min, max=max, metavar=metavar, shown=shown)
    cli = {"help": help, "flags": flags, "path": path, "many": many, "unset": unset}
    return {"cli": cli | {k: v for k, v in given.items() if v is not None}}


# The network a run trains: SCNConfig's hyperparameters, flat in TrainConfig
# (as run.json has always recorded them), with SCNConfig's types and defaults.
# ``TrainConfig.network`` adds the scale and the level planes the task sets.
NETWORK_FIELDS = {
    "num_blocks": option("", "--blocks", min=1),
    "num_residual_units": option("", "--units", min=1),
    "width_multiplier": option("Width multiplier of the blocks.", "--width"),
    "num_scales": option(min=1, max=6),
}


def _network_fields(after: str) -> Callable[[type], type]:
    """Declare ``NETWORK_FIELDS`` on a class about to be made a dataclass,
    after its field ``after``: SCNConfig's names, types and defaults, so the
    two never differ."""
    own = {f.name: f for f in fields(SCNConfig)}

    def declare(cls: type) -> type:
        annotations: dict[str, Any] = {}
        for name, kind in cls.__annotations__.items():
            annotations[name] = kind
            if name != after:
                continue
            for net, metadata in NETWORK_FIELDS.items():
                annotations[net] = own[net].type
                setattr(cls, net, field(default=own[net].default, metadata=metadata))
        cls.__annotations__ = annotations
        return cls

    return declare


@dataclass
@_network_fields(after="warmup")
class TrainConfig:
    """Everything that defines a training run (recorded with its checkpoint)."""

    task: str
    # One folder (a plain string: as every recorded run has it, drawn as
    # then), or several, each with its share of the patches and, once a run
    # starts, its image count and fingerprint (see datasources.py):
    # [{"path": ..., "share": 0.7, "images": 291, "fingerprint": ...}, ...]
    data: str | list[dict[str, Any]] = field(
        metadata=option(
            "Directory of clean training images; repeat it to mix folders, each "
            "with its share of the patches, e.g. --data train291:0.7 --data train:0.3 "
            "(folders without a share split the rest evenly; shares sum to 1). "
            "run.json records each folder's images; --resume refuses if they changed.",
            metavar="DIR[:SHARE]",
            many=True,
        )
    )
    out: str = field(metadata=option("Run directory: checkpoints, log, weights.", path=True))
    scale: int = field(default=2, metadata=option("", "--scale", "-s", min=2, max=4))
    val: str | None = field(
        default=None, metadata=option("Directory of validation images.", path=True)
    )
    steps: int = field(
        default=10000,
        metadata=option(
            "Total optimiser steps (default 10000; --resume: as recorded).", min=1, unset=True
        ),
    )
    batch: int = field(default=16, metadata=option(min=1))
    # input patch side; 0 = task default (48 SR, 96 otherwise)
    patch: int = field(
        default=0, metadata=option("Input patch side; 0 = 48 (SR) or 96 (others).", min=0)
    )
    lr: float = field(default=1e-3, metadata=option("Adam learning rate."))
    lr_milestones: tuple[float, ...] = (0.5, 0.75, 0.9)
    lr_gamma: float = 0.3
    # Linear learning-rate warm-up over the first N steps of a run (0 = none):
    # a fresh Adam at full rate can throw a from-scratch network off course.
    warmup: int = field(default=0, metadata=option("Steps of linear learning-rate warm-up.", min=0))
    # here: NETWORK_FIELDS (num_blocks, num_residual_units, width_multiplier, num_scales)
    sigma_range: tuple[float, float] = (1.0, 75.0)
    quality_range: tuple[int, int] = (5, 95)
    # Half of each batch draws its level from [low, level_focus] instead of the
    # whole range: the low σ / low qualities that are hard to learn (σ near 1
    # asks for an exact identity) or that users most need fixing. None = the
    # task's default: the whole σ range for denoise (uniform), q <= 40 for
    # dejpeg; recorded runs replay exactly either way.
    level_focus: float | None = field(
        default=None,
        metadata=option(
            "denoise/dejpeg: draw half of each batch's levels from \\[lowest, this] "
            "(default: whole σ range; q <= 40).",
        ),
    )
    # Detail-weighted patches: a patch whose mean |Laplacian| (grey, 0-255,
    # see ``patch_detail``) is below ``detail_floor`` is kept with probability
    # detail / detail_floor, otherwise redrawn. Photos users restore are far
    # more textured than most of a wallpaper (median 13.3 on the val photos,
    # 2.9 on the training wallpapers; scripts/patch_detail.py), so uniform
    # patches spend most steps on flat gradients. 0 = uniform patches;
    # recorded runs replay exactly.
    detail_floor: float = field(
        default=0.0,
        metadata=option(
            "Weight patches by detail: one whose mean |Laplacian| (grey, 0-255) "
            "is below this is kept with probability detail/this (0: uniform; "
            "10 makes wallpapers look like photos).",
            min=0,
        ),
    )
    # Downscale augmentation: each training image is also used shrunk by
    # these factors (Pillow BICUBIC with antialiasing, 8-bit), and patches are
    # drawn evenly over (image, factor) pairs. Wallpapers are 1.6k px wide
    # renders; the photos users restore carry denser texture per pixel, which a
    # wallpaper shrunk 2-3x resembles (DnCNN's data generation also shrinks
    # its training images, by 0.9, 0.8 and 0.7). (1.0,) = the images as they are.
    image_scales: tuple[float, ...] = field(
        default=(1.0,),
        metadata=option(
            "Also train on each image shrunk by these factors, e.g. 1,0.5,0.33 "
            "(patches drawn evenly over image x factor; shrunk wallpapers carry "
            "photo-like texture density).",
            shown="1",
        ),
    )
    # JPEG-aware upscaling (upscale only): the low-resolution patch is saved
    # as a JPEG at a quality drawn uniformly from this range (whole numbers),
    # and the network is told the quality on an extra input plane (see
    # ``model.condition_value``); a share ``jpeg_clean`` of the patches stay
    # clean (told "not a JPEG"), so clean inputs keep their quality. None =
    # the plain bicubic task.
    jpeg_range: tuple[int, int] | None = field(
        default=None,
        metadata=option(
            "upscale: train a JPEG-aware upscaler: each low-resolution patch is "
            "saved as a JPEG at a quality drawn from this range, e.g. 30,100, and the "
            "network is told the quality (a share --jpeg-clean stays clean).",
        ),
    )
    jpeg_clean: float = field(
        default=0.2, metadata=option("With --jpeg-range: share of clean patches.", min=0, max=0.99)
    )
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
    ema: float = field(
        default=0.0,
        metadata=option(
            "Keep a moving average of the weights with this decay, e.g. 0.999 "
            "(0: off); validation and model.safetensors use it, model.raw.safetensors "
            "holds the raw weights.",
            min=0,
            max=0.9999,
        ),
    )
    # The pixel loss: "l1" (mean absolute error, the usual SR loss, robust
    # from the first step) or "l2" (mean squared error, which PSNR measures:
    # the field's short fine-tune at the end of an L1 run). Recorded runs
    # without it replay exactly.
    loss: str = field(
        default="l1",
        metadata=option(
            "Pixel loss: l1, or l2 (what PSNR measures) for a short fine-tune "
            "at the end of an l1 run, e.g. --init RUN/model.safetensors --lr 1e-4.",
        ),
    )
    # denoise only: "gaussian" (additive white Gaussian noise of the told σ,
    # the σ-conditioned model) or "real": a blind model (no level plane) for
    # photos from cameras, trained on a mix of ``degrade.add_camera_noise``
    # patches (share noise_mix[0]), clean patches (noise_mix[1]) and white
    # Gaussian noise of a σ drawn from sigma_range (the rest).
    noise: str = field(
        default="gaussian",
        metadata=option(
            "denoise: gaussian (white noise of a told sigma) or real: a blind model "
            "for camera photos (camera noise, clean and white-noise patches mixed).",
            metavar="gaussian|real",
        ),
    )
    noise_mix: tuple[float, float] = field(
        default=(0.6, 0.1),
        metadata=option(
            "--noise real: shares of camera-noise and clean patches (the rest: white noise).",
            metavar="CAMERA,CLEAN",
            shown="0.6,0.1",
        ),
    )
    # The range of the camera noise's shot-noise level (``degrade.CameraNoise``:
    # raw variance per unit of signal, log-uniform): its strength.
    camera_shot: tuple[float, float] = field(
        default=(5e-5, 1.2e-2),
        metadata=option(
            "--noise real: range of the camera's shot-noise level (raw variance "
            "per unit of signal; 1e-4 is a clean daylight shot, 1e-2 high ISO).",
            metavar="LOW,HIGH",
            shown="5e-5,1.2e-2",
        ),
    )
    # How the camera's processing is rendered (``tasks.CAMERA_MODELS``).
    camera_model: str = field(
        default="brooks",
        metadata=option(
            "--noise real: the camera model: brooks (raw noise, colour cut before the "
            "tone curve) or processed (as in-camera noise reduction leaves it: "
            "smoothed, little colour noise).",
            metavar="NAME",
            shown="brooks",
        ),
    )
    # torch.compile the model for training (pays only on long runs).
    compile: bool = False
    val_every: int = field(default=500, metadata=option(min=1))
    ckpt_every: int = field(default=100, metadata=option(min=1))
    log_every: int = field(default=25, metadata=option(min=1))
    device: str = field(default="auto", metadata=option())
    precision: str = field(default="auto", metadata=option())
    seed: int = field(default=0, metadata=option())
    init: str | None = field(
        default=None,
        metadata=option("Start from these weights (e.g. x2 body for x4).", path=True),
    )
    threads: int | None = field(default=None, metadata=option("CPU threads.", min=1))
    # Wall-clock budget in seconds (0 = none). The run measures its own speed
    # and fixes ``steps`` to what fits, before the first learning-rate decay;
    # the resolved step count is recorded, so ``--steps N`` reproduces it.
    time_budget: float = field(
        default=0.0,
        metadata=option(
            "Fit the run into this many seconds: the step total (and so the "
            "decay schedule) is set from the measured speed and recorded.",
            min=0,
        ),
    )
    command: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r} (use {', '.join(TASKS)})")
        from .datasources import normalise_data

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
        if self.data_pipeline not in PIPELINES:
            raise ValueError(
                f"data_pipeline must be one of {', '.join(PIPELINES)}, not {self.data_pipeline!r}"
            )
        self._check_noise()
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

    def _check_noise(self) -> None:
        """The real-noise settings: the noise kind, its mix and the camera."""
        if self.noise not in NOISES:
            raise ValueError(f"noise must be one of {', '.join(NOISES)}, not {self.noise!r}")
        if self.noise != "gaussian" and self.task != "denoise":
            raise ValueError("noise applies to denoise only")
        self.noise_mix = tuple(float(v) for v in self.noise_mix)  # type: ignore[assignment]
        self.camera_shot = tuple(float(v) for v in self.camera_shot)  # type: ignore[assignment]
        if len(self.camera_shot) != 2 or not 0 < self.camera_shot[0] <= self.camera_shot[1]:
            raise ValueError(f"camera_shot must be low,high > 0, not {self.camera_shot}")
        if self.camera_model not in CAMERA_MODELS:
            raise ValueError(
                f"camera_model must be one of {', '.join(CAMERA_MODELS)}, not {self.camera_model!r}"
            )
        if len(self.noise_mix) != 2 or min(self.noise_mix) < 0 or sum(self.noise_mix) > 1:
            raise ValueError(f"noise_mix must be two shares summing to <= 1, not {self.noise_mix}")

    @property
    def level_range(self) -> tuple[float, float]:
        """The σ range (denoise) or quality range (dejpeg) levels are drawn from."""
        return self.sigma_range if self.task == "denoise" else self.quality_range

    @property
    def camera(self) -> CameraNoise:
        """The camera-noise ranges of a ``noise="real"`` run: its camera model's,
        with the shot-noise range the run records."""
        from .degrade import camera_model

        return camera_model(self.camera_model, self.camera_shot)

    @property
    def focus(self) -> float | None:
        """The level half of each batch is drawn below (None: the whole range)."""
        if self.level_focus is not None:
            return self.level_focus
        return 40.0 if self.task == "dejpeg" else None

    @property
    def network(self) -> SCNConfig:
        """The network the run trains: its ``NETWORK_FIELDS``, the run's scale,
        and a level plane if it is told a level."""
        chosen = {name: getattr(self, name) for name in NETWORK_FIELDS}
        return SCNConfig(scale=self.scale, num_cond_channels=self.num_cond_channels, **chosen)

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


def load_run_config(out: str | os.PathLike[str]) -> TrainConfig:
    """The configuration recorded in a run directory (for ``--resume``)."""
    data = json.loads((Path(out) / "run.json").read_text())["config"]
    return TrainConfig(**data)


def command_line(words: list[str]) -> str:
    """A recorded command as shell text: each word quoted where it needs it,
    and the ``&&`` that joins a run to its resumes (:func:`resume_config`)
    left a bare operator."""
    return " ".join(w if w == "&&" else shlex.quote(w) for w in words)


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
