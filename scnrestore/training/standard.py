"""The field's standard test sets: protocol, published figures, runner.

Users compare restoration tools on colour Set5 / Set14 (super-resolution) and
CBSD68 (denoising, JPEG artefacts). The protocol is the one that reproduces
the published bicubic baselines (Set5 x2 / x3 / x4: 33.67 / 30.40 / 28.43 dB
measured against the published 33.66 / 30.39 / 28.42):

* SR: the HR image cropped (bottom / right) to a multiple of the scale; LR =
  Pillow BICUBIC resize (antialiased); PSNR on BT.601 luma
  (Y = 16 + 65.481 R + 128.553 G + 24.966 B, RGB in [0, 1]), shave = scale.
* Denoise: HR + Gaussian noise of std σ (8-bit scale), rounded and clipped to
  8 bits, seeded per image; PSNR on RGB.
* Dejpeg: Pillow JPEG at quality q (its default 4:2:0); PSNR on RGB, reported
  as the gain over the JPEG.

Everything goes through :func:`scnrestore.training.evaluate.evaluate`, the function
behind ``scnrestore eval``: the same crop, degradations (``degrade``), noise
seeds (an image's index in name order) and metrics, so ``scnrestore eval`` on
one of these folders gives the same figures. Models run as a user gets them:
``Restorer`` with the registry entry's defaults (its ``told_level``,
``keep_input`` / ``keep_luma`` schedules), as ``scnrestore eval`` does unless
told otherwise; each result records the told level and the kept share.

Single-channel files (Set14's ``bridge.png``) are read as RGB with three equal
channels, as ``scnrestore eval`` reads them, and scored on their luma. The
published SR tables' MATLAB code scores a gray file on its gray values instead
(no [16, 235] luma range): 20 log10(255 / 219) = 1.32 dB lower on that image.
That is what separates the published Set14 bicubic 30.24 / 27.55 / 26.00 from
the 30.33 / 27.63 / 26.09 this protocol measures; SR results carry the mean
under that convention too (``ours_gray_as_is``, ``input_gray_as_is``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..metrics import psnr, psnr_y
from ..tasks import LEVEL_TASKS, TASK_SCHEDULES
from . import degrade
from .evaluate import IMAGE_EXTS, evaluate, summarise

if TYPE_CHECKING:
    from ..api import Restorer

__all__ = [
    "SETS",
    "SR_SETS",
    "RESTORE_SETS",
    "CASE_KEYS",
    "SIGMAS",
    "QUALITIES",
    "PUBLISHED",
    "PUBLISHED_NOTES",
    "BAR",
    "GRAY_AS_IS_DB",
    "Case",
    "cases",
    "load_set",
    "noise_rng",
    "degrade_case",
    "score",
    "input_scores",
    "run_case",
    "model_info",
    "run",
    "markdown_table",
]

# Set name -> folder under the bench root (../shared/data/bench).
SETS = {"Set5": "CSet5", "Set14": "CSet14", "B100": "B100", "CBSD68": "CBSD68"}
SR_SETS = ("Set5", "Set14", "B100")
RESTORE_SETS = ("CBSD68",)
# What a case measures: an SR scale, or a task with levels (``tasks.LEVEL_TASKS``).
CASE_KEYS = ("x2", "x3", "x4", *LEVEL_TASKS)
SIGMAS = (15.0, 25.0, 50.0)
QUALITIES = (10.0, 20.0, 30.0, 40.0)
# PSNR-Y of a gray file minus its PSNR on the gray values (Y = 16 + 219 g / 255).
GRAY_AS_IS_DB = 20.0 * math.log10(255.0 / 219.0)

# Published PSNR (dB) on the colour test sets, from the papers: SR on Y
# (shave = scale), denoising on RGB. Keys: set, then case key (see Case.key).
PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    "Set5": {
        "x2": {"bicubic": 33.66, "SRCNN": 36.66, "VDSR": 37.53, "EDSR": 38.11, "SwinIR": 38.42},
        "x3": {"bicubic": 30.39, "SRCNN": 32.75, "VDSR": 33.67, "EDSR": 34.65, "SwinIR": 34.97},
        "x4": {"bicubic": 28.42, "SRCNN": 30.48, "VDSR": 31.35, "EDSR": 32.46, "SwinIR": 32.92},
    },
    "Set14": {
        "x2": {"bicubic": 30.24, "SRCNN": 32.42, "VDSR": 33.05, "EDSR": 33.92, "SwinIR": 34.46},
        "x3": {"bicubic": 27.55, "SRCNN": 29.30, "VDSR": 29.78, "EDSR": 30.52, "SwinIR": 30.93},
        "x4": {"bicubic": 26.00, "SRCNN": 27.50, "VDSR": 28.02, "EDSR": 28.80, "SwinIR": 29.09},
    },
    "B100": {
        "x2": {"bicubic": 29.56, "SRCNN": 31.36, "VDSR": 31.90, "EDSR": 32.32, "SwinIR": 32.53},
        "x3": {"bicubic": 27.21, "SRCNN": 28.41, "VDSR": 28.82, "EDSR": 29.25, "SwinIR": 29.46},
        "x4": {"bicubic": 25.96, "SRCNN": 26.90, "VDSR": 27.29, "EDSR": 27.71, "SwinIR": 27.92},
    },
    "CBSD68": {
        "sigma15": {"CBM3D": 33.52, "CDnCNN": 33.90, "FFDNet": 33.87, "DRUNet": 34.30},
        "sigma25": {"CBM3D": 30.71, "CDnCNN": 31.24, "FFDNet": 31.21, "DRUNet": 31.69},
        "sigma50": {"CBM3D": 27.38, "CDnCNN": 27.95, "FFDNet": 27.96, "DRUNet": 28.51},
    },
}
PUBLISHED_NOTES = {
    "dejpeg": "FBCNN reports about +2.0 dB over the JPEG at q 10-30 (colour, BSDS500)",
}
# The bar (issue 44: above VDSR on all three SR sets, CDnCNN on CBSD68), by
# this protocol: PSNR for SR / denoise, gain over the JPEG for dejpeg.
BAR: dict[str, dict[str, float]] = {
    "Set5": {"x2": 37.60, "x3": 33.70, "x4": 31.40},
    "Set14": {"x2": 33.15, "x3": 29.85, "x4": 28.05},
    "B100": {"x2": 31.95, "x3": 28.85, "x4": 27.35},
    "CBSD68": {"sigma15": 33.90, "sigma25": 31.24, "sigma50": 27.95,
               "q10": 1.60, "q20": 1.50, "q30": 1.40, "q40": 1.35},
}  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One figure of the benchmark: a set, a task, a scale (SR) or a level."""

    set: str
    task: str  # upscale | denoise | dejpeg
    scale: int = 1
    level: float | None = None

    @property
    def key(self) -> str:
        """x2 / sigma15 / q10: the key into PUBLISHED and BAR."""
        if self.task == "upscale":
            return f"x{self.scale}"
        return f"{'sigma' if self.task == 'denoise' else 'q'}{self.level:g}"

    @property
    def metric(self) -> str:
        """The protocol's figure: PSNR-Y for SR, PSNR (RGB) otherwise."""
        return "psnr_y" if self.task == "upscale" else "psnr"

    @property
    def model_key(self) -> str:
        """Which model runs it: x2 / x3 / x4 / denoise / dejpeg."""
        return f"x{self.scale}" if self.task == "upscale" else self.task


def cases(
    sets: Iterable[str] = (*SR_SETS, *RESTORE_SETS),
    tasks: Iterable[str] = CASE_KEYS,
    sigmas: Iterable[float] = SIGMAS,
    qualities: Iterable[float] = QUALITIES,
) -> list[Case]:
    """The cases of ``sets`` x ``tasks``: SR on Set5 / Set14, denoise and dejpeg
    on CBSD68 (a set outside both lists gets every task)."""
    tasks = list(tasks)
    unknown = set(tasks) - set(CASE_KEYS)
    if unknown:
        raise ValueError(f"unknown task(s) {sorted(unknown)}; use {', '.join(CASE_KEYS)}")
    out = []
    for name in sets:
        sr = name not in RESTORE_SETS
        rest = name not in SR_SETS
        for t in tasks:
            if t.startswith("x") and sr:
                out.append(Case(name, "upscale", int(t[1:])))
            elif t == "denoise" and rest:
                out += [Case(name, "denoise", 1, float(s)) for s in sigmas]
            elif t == "dejpeg" and rest:
                out += [Case(name, "dejpeg", 1, float(q)) for q in qualities]
    return out


def load_set(directory: str | Path) -> tuple[list[tuple[str, np.ndarray]], set[str]]:
    """The images of a folder as ``scnrestore eval`` reads them (sorted by
    name, uint8 RGB), and the names of the files that were single-channel."""
    from PIL import Image

    paths = sorted(p for p in Path(directory).iterdir() if p.suffix.lower() in IMAGE_EXTS)
    if not paths:
        raise ValueError(f"{directory}: no images found")
    images, gray = [], set()
    for p in paths:
        with Image.open(p) as im:
            if im.mode in ("1", "L", "LA", "I", "I;16", "F"):
                gray.add(p.name)
            images.append((p.name, np.asarray(im.convert("RGB"))))
    return images, gray


def noise_rng(index: int) -> np.random.Generator:
    """The noise generator of the image at ``index`` (name order), as
    ``scnrestore eval`` seeds it: the same draws at every σ, scaled."""
    return np.random.default_rng(index)


def degrade_case(
    case: Case, clean: np.ndarray, index: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cropped clean image, model input, baseline) for the image at ``index``:
    LR and its bicubic upscale for SR, the noisy / JPEG image twice otherwise."""
    clean = degrade.crop_to_multiple(clean, case.scale)
    inp, base = degrade.make_input(case.task, clean, case.scale, case.level, noise_rng(index))
    return clean, inp, base


def score(case: Case, out: np.ndarray, clean: np.ndarray) -> float:
    """The protocol's PSNR of ``out`` against the (cropped) clean image."""
    if case.task == "upscale":
        return psnr_y(out, clean, case.scale)
    return psnr(out, clean)


def input_scores(case: Case, images: list[tuple[str, np.ndarray]]) -> list[float]:
    """The baseline's figure per image (bicubic, the noisy or the JPEG input),
    without a model: the quick check that the protocol reproduces."""
    out = []
    for i, (_, clean) in enumerate(images):
        clean, _, base = degrade_case(case, clean, i)
        out.append(score(case, base, clean))
    return out


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _published(case: Case) -> dict[str, float]:
    return PUBLISHED.get(case.set, {}).get(case.key, {})


def _bar(case: Case) -> float | None:
    return BAR.get(case.set, {}).get(case.key)


def run_case(
    case: Case,
    images: list[tuple[str, np.ndarray]],
    restorer: Restorer | None = None,
    gray: set[str] | None = None,
    on_image: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """Score one case: the input's figure, and with a ``restorer`` the model's,
    through ``evaluate`` (what ``scnrestore eval`` runs). Returns a plain dict
    (JSON-ready): means, per-image figures, the path the model took."""
    gray = gray or set()
    res: dict[str, Any] = {
        "set": case.set, "task": case.task, "key": case.key, "metric": case.metric,
        "scale": case.scale, "level": case.level, "n_images": len(images),
        "published": _published(case), "bar": _bar(case),
    }  # fmt: skip
    t0 = time.perf_counter()
    if restorer is None:
        base = input_scores(case, images)
        res["input"] = _mean(base)
        res["images"] = [{"image": n, "input": round(b, 4)} for (n, _), b in zip(images, base)]
    else:
        if (restorer.task, restorer.scale) != (case.task, case.scale):
            raise ValueError(f"a {restorer.task} x{restorer.scale} model cannot run {case.key}")
        rows = evaluate(restorer, images, case.level, on_image)
        m = summarise(rows)
        key = case.metric
        res["input"] = m[f"base_{key}"]
        res["ours"] = m[key]
        res["gain"] = m[key] - m[f"base_{key}"]
        res["ssim"] = m["ssim"]
        res["model"] = restorer.model.source
        res["model_key"] = case.model_key
        res["model_info"] = model_info(restorer.model)
        res["precision"] = restorer.engine.precision
        res["device"] = str(restorer.engine.device)
        res["tta"] = restorer.engine.tta
        if restorer.conditioned:
            res["told_level"] = restorer.told(case.level)
        if case.task in LEVEL_TASKS:
            res[TASK_SCHEDULES[case.task]] = restorer.kept_share(case.level)
        res["images"] = [
            {"image": r.image, "input": round(getattr(r, f"base_{key}"), 4),
             "ours": round(getattr(r, key), 4), "seconds": round(r.seconds, 3)}
            for r in rows
        ]  # fmt: skip
    # The published SR tables' convention for gray files (see the module doc):
    # their PSNR on the gray values is their PSNR-Y less GRAY_AS_IS_DB.
    n_gray = sum(1 for name, _ in images if name in gray)
    if case.task == "upscale" and n_gray:
        res["gray_files"] = sorted(name for name, _ in images if name in gray)
        for k in ("input", "ours"):
            if k in res:
                res[f"{k}_gray_as_is"] = res[k] - GRAY_AS_IS_DB * n_gray / len(images)
    res["seconds"] = time.perf_counter() - t0
    return res


def model_info(model: Any) -> dict[str, Any]:
    """Which weights ran: the name or path given, its file's sha256 and, for a
    registry entry, the training steps behind it (results outlive the weights)."""
    import hashlib

    from .. import weights

    source, entry = model.source, model.entry
    info: dict[str, Any] = {"source": source}
    try:
        path = weights.resolve(source, offline=True)[0] if source else None
    except Exception:  # a loaded module without a file: nothing more to say
        path = None
    if path is not None:
        info["sha256"] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    if entry is not None and entry.raw.get("steps") is not None:
        info["steps"] = entry.raw["steps"]
    return info


def run(
    root: str | Path,
    case_list: list[Case],
    models: dict[str, Any] | None = None,
    precision: str = "auto",
    device: str = "auto",
    baseline_only: bool = False,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    on_image: Callable[[Case, Any], None] | None = None,
    tta: bool = False,
) -> dict[str, Any]:
    """Run ``case_list`` on the sets under ``root`` (folders as in SETS, or a
    folder named like the set). ``models``: model key (x2 ... dejpeg) -> a
    registry name, checkpoint path or loaded SCN; missing keys: the registry's
    default. ``tta``: the models run with x8 self-ensemble (``--tta``; the
    published "+" figures, e.g. EDSR+, are measured so). Returns the JSON
    document: results in case order, and the seconds each set took."""
    from ..api import Restorer

    models = models or {}
    root = Path(root)
    loaded: dict[str, tuple[list[tuple[str, np.ndarray]], set[str]]] = {}
    restorers: dict[str, Restorer] = {}
    results, set_seconds = [], {}
    for case in case_list:
        if case.set not in loaded:
            folder = root / SETS.get(case.set, case.set)
            if not folder.is_dir() and (root / case.set).is_dir():
                folder = root / case.set
            loaded[case.set] = load_set(folder)
        images, gray = loaded[case.set]
        restorer = None
        if not baseline_only:
            mk = case.model_key
            if mk not in restorers:
                restorers[mk] = Restorer(
                    case.task, models.get(mk), scale=case.scale, device=device,
                    precision=precision, tta=tta,
                )  # fmt: skip
            restorer = restorers[mk]
        hook = (lambda row, c=case: on_image(c, row)) if on_image else None
        res = run_case(case, images, restorer, gray, hook)
        set_seconds[case.set] = set_seconds.get(case.set, 0.0) + res["seconds"]
        results.append(res)
        if on_result:
            on_result(res)
    return {
        "protocol": "scnrestore.standard (shared/README.md): SR PSNR-Y shave=scale, "
        "denoise / dejpeg PSNR RGB",
        "precision": precision,
        "device": device,
        "tta": tta,
        "models": {k: model_info(r.model) for k, r in restorers.items()},
        "results": results,
        "set_seconds": set_seconds,
    }


# -- the table ----------------------------------------------------------------

_COLUMNS = (
    ("SRCNN", None),
    ("VDSR", "CDnCNN"),
    ("EDSR", "DRUNet"),
)


def _join(values: list[float | None], fmt: str) -> str:
    return " / ".join("–" if v is None or v != v else format(v, fmt) for v in values)


def _row_label(set_name: str, task: str, res: list[dict[str, Any]]) -> str:
    if task == "upscale":
        label = f"{set_name} " + " / ".join(r["key"] for r in res) + " (PSNR-Y)"
    elif task == "denoise":
        label = f"{set_name} σ " + " / ".join(f"{r['level']:g}" for r in res) + " (PSNR)"
    else:
        label = f"{set_name} JPEG q " + " / ".join(f"{r['level']:g}" for r in res)
        label += " (gain over JPEG)"
    return label + (", `--tta`" if any(r.get("tta") for r in res) else "")


def markdown_table(doc: dict[str, Any]) -> str:
    """Our figures beside the published ones, one row per set and task.

    Columns: the input as measured here (bicubic / noisy / JPEG), the
    published bicubic or CBM3D, SRCNN, VDSR or CDnCNN, EDSR or DRUNet, ours
    (dejpeg: the gain over the JPEG), and issue 33's bar.
    """
    groups: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
    for r in doc["results"]:
        groups.setdefault((r["set"], r["task"], bool(r.get("tta"))), []).append(r)
    head = ("| set | input (measured) | bicubic / CBM3D (published) | SRCNN | VDSR / CDnCNN "
            "| EDSR / DRUNet | scnrestore | bar |")  # fmt: skip
    lines = [head, "|" + "---|" * 8]
    for (set_name, task, _), res in groups.items():
        res = sorted(res, key=lambda r: (r["scale"], r["level"] or 0))
        pub = [r["published"] for r in res]
        first = [p.get("bicubic", p.get("CBM3D")) for p in pub]
        cols = [_join([p.get(a) or (p.get(b) if b else None) for p in pub], ".2f")
                for a, b in _COLUMNS]  # fmt: skip
        if task == "dejpeg":
            first_s = "–"
            cols = ["–", "–", PUBLISHED_NOTES["dejpeg"].split(" reports")[0] + " ≈ +2.0"]
            ours = _join([r.get("gain") for r in res], "+.2f")
            bar = _join([r.get("bar") for r in res], "+.2f")
        else:
            first_s = ("CBM3D " if task == "denoise" else "") + _join(first, ".2f")
            ours = _join([r.get("ours") for r in res], ".2f")
            bar = _join([r.get("bar") for r in res], ".2f")
        inp = _join([r.get("input") for r in res], ".2f")
        lines.append(f"| {_row_label(set_name, task, res)} | {inp} | {first_s} | "
                     + " | ".join(cols) + f" | {ours} | {bar} |")  # fmt: skip
    return "\n".join(lines)
