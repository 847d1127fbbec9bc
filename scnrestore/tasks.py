"""The vocabulary of scnrestore: task names, their level ranges, the schedules' names.

No imports: every room of the package (CLI, API, registry, training) may use it.
"""

from __future__ import annotations

__all__ = [
    "TASKS",
    "LEVEL_TASKS",
    "LEVEL_RANGES",
    "TRAINED_RANGES",
    "JPEG_QUALITIES",
    "SCHEDULES",
    "TASK_SCHEDULES",
    "TOLD_LEVEL",
    "LEVEL_FLAG",
    "LEVEL_NOUN",
    "STEP_FLAG",
    "LEVEL_ENCODING",
    "condition_value",
    "LOSSES",
    "NOISES",
    "CAMERA_MODELS",
]

TASKS = ("upscale", "denoise", "dejpeg")
# The tasks whose networks take a level (sigma, JPEG quality).
LEVEL_TASKS = ("denoise", "dejpeg")
# Valid levels per task: sigma for denoise, JPEG quality for dejpeg.
LEVEL_RANGES = {"denoise": (1.0, 75.0), "dejpeg": (5.0, 100.0)}
# The levels a conditioned network is told, when its registry entry gives no
# sigma_range / quality_range: the ranges `scnrestore train` samples. A level
# beyond them (a JPEG saved at quality 98) is passed as the nearest end.
TRAINED_RANGES = {"denoise": (1.0, 75.0), "dejpeg": (5.0, 95.0)}
# JPEG qualities an input can be said to have: dejpeg --quality, upscale
# --jpeg Q (a JPEG-aware upscaler's entry narrows what it is told).
JPEG_QUALITIES = LEVEL_RANGES["dejpeg"]
# Blend-back schedules, and the task each belongs to.
SCHEDULES = {"keep_luma": "dejpeg", "keep_input": "denoise"}
TASK_SCHEDULES = {task: key for key, task in SCHEDULES.items()}
# The level a conditioned network is told, per true level (denoise, dejpeg).
TOLD_LEVEL = "told_level"
# The command-line option that gives each task's level.
LEVEL_FLAG = {"denoise": "--sigma", "dejpeg": "--quality"}
# What a task's level is called in messages.
LEVEL_NOUN = {"denoise": "sigma", "dejpeg": "quality"}
# upscale's step options (its JPEG and noise steps, each a level task's level
# or off) and their defaults, which their messages name first.
STEP_FLAG = {"dejpeg": ("--jpeg", "auto"), "denoise": ("--denoise", "off")}

# How a level is told to a conditioned network: its level plane holds
# (level - origin) / span. A JPEG-aware upscaler is told how strongly its input
# was compressed, (100 - quality) / 100; a denoiser sigma / 255; a dejpeg
# network quality / 100.
LEVEL_ENCODING = {"upscale": (100.0, -100.0), "denoise": (0.0, 255.0), "dejpeg": (0.0, 100.0)}


def condition_value(task: str, level: float | None) -> float:
    """The level-plane value a conditioned model expects for ``task`` at ``level``
    (see LEVEL_ENCODING). A clean input to a JPEG-aware upscaler (``level``
    None or 0) is told 0, the same as a quality-100 JPEG, so the plane is zero
    where it carries no news."""
    if task == "upscale" and not level:
        return 0.0
    if level is None:
        raise ValueError(f"{task} needs a level")
    if task not in LEVEL_ENCODING:
        raise ValueError(f"task {task!r} takes no level")
    origin, span = LEVEL_ENCODING[task]
    return (float(level) - origin) / span


# Pixel losses `scnrestore train --loss` may train with: l1 (the usual SR
# loss) or l2 (mean squared error, which PSNR measures).
LOSSES = ("l1", "l2")

# The noise a denoise model is trained for (`scnrestore train denoise --noise`):
# gaussian (additive white noise of a told sigma) or real (camera noise, blind).
NOISES = ("gaussian", "real")

# The camera a real-noise run renders (`scnrestore train denoise --noise real
# --camera-model`): brooks (raw noise after Brooks et al., half of it smoothed,
# colour noise cut before the tone curve) or processed (as a camera's own noise
# reduction leaves it: always smoothed, colour noise cut in YCbCr after the
# tone curve; fitted to real cameras' noise statistics, docs/realnoise.md).
CAMERA_MODELS = ("brooks", "processed")
