"""Ship guard: a candidate checkpoint against the shipped model of its registry name.

    python scripts/guard.py runs/dn24 --name scn-denoise \
        --record training-records/denoise/stage24_guard
    python scripts/guard.py runs/x2s7/model.safetensors --name scn-x2 --sets Set5 --levels x2
    python scripts/ship.py runs/dn24 --name scn-denoise --stage "stage 24, CPU" --guard

A candidate ships only if, on every set the bar names for its task,
  1. the set's mean (over its levels and images) does not fall
     (candidate - shipped >= --min-gain, default 0), and
  2. no single image loses more than --max-loss dB (default 0.2) at any level.

What is scored (the levels of issue 44's bar, and the protocol of README's
standard table, ../shared/README.md):
  - upscale xS: PSNR-Y (shave = S) on Set5, Set14, B100 and val;
  - a JPEG-aware upscaler: val, the low-resolution input saved at q 70 / 80 / 90;
  - denoise: PSNR (RGB) at σ 15 / 25 / 50 on CBSD68 and val;
  - dejpeg: PSNR (RGB) at q 10 / 20 / 30 / 40 on CBSD68 and val;
  - and the light levels on val (denoise σ 1 / 2 / 5, dejpeg q 90 / 95): nearly
    clean photos, where fine-tunes on natural photos have lost a few hundredths
    of a dB a stage. Their images are held to --max-loss like the bar's; they
    stay out of the set's mean, so a stage may trade a little there for the
    bar's levels, but no photo may pay much for it.
Each image is degraded and scored by scnrestore.training.evaluate.evaluate, the function
behind `scnrestore eval` and scnrestore.training.standard.run_case (seeded noise, Pillow
bicubic / JPEG), so the figures are README's. The shipped model runs on its
default path (its registry entry's told_level and keep_input / keep_luma
schedules); the candidate with the entry's keep schedule, as `ship.py --stage`
ships it (--no-schedule: without), told the level as given.

The shipped model's per-image scores are cached, keyed by (model sha256, set,
level, precision), in benchmarks/results/guard_cache/SHA16.json: a second
guard against the same shipped model scores the candidate only. An entry is
scored again if the set's images or the shipped path (told level, kept share)
changed. The candidate's scores are kept the same way under
guard_cache/candidates/ (not committed), so a guard that was stopped (a full
dejpeg guard takes hours on one thread) resumes at the first set and level it
had not finished; --no-cache scores both again. The shipped file guarded
against itself is scored once: that fills its cache ahead of a candidate, on a
core that is free while the candidate still trains:

    python scripts/guard.py scnrestore/models/scn-denoise.safetensors --name scn-denoise

Each stage is guarded against the model it replaces, so losses that each stage
keeps inside the bound could add up past it over several stages. The cache
folder's baselines.json names, per model, the weights shipped before the
fine-tunes on natural photos began; where their scores are cached, no image
may fall more than the bound below them either (one line per offender, "...
against the baseline SHA"), and the record gives the worst image against them.

Writes --record PREFIX.json (per set, level and image: shipped, candidate,
delta) and PREFIX.md (means, and the worst five images per set and level).
Exit 0: pass; 1: fail, one line per offending image ("CBSD68 σ25 102061.png:
-0.31 dB") and per falling mean; 2: the sets are missing (one line saying
where to get them) or the arguments are wrong.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

# isort: off
import scnrestore  # noqa: F401  (before torch: it sets up torch's CPU allocator)

# isort: on
from scnrestore.files import atomic_output
from scnrestore.tasks import TASK_SCHEDULES
from scnrestore.training import standard
from scnrestore.training.evaluate import evaluate, load_images
from scnrestore.weights import load_registry, resolve, schedule_weight

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BENCH = ROOT.parent / "shared" / "data" / "bench"
DEFAULT_VAL = ROOT.parent / "shared" / "data" / "val"
CACHE_DIR = ROOT / "benchmarks" / "results" / "guard_cache"
#: Candidates' scores, under the cache folder (not committed): a guard that
#: was stopped resumes at the first set and level it had not finished.
CANDIDATES = "candidates"
#: In the cache folder: per model name, the weights shipped before the
#: fine-tunes on natural photos began. No image may fall more than max_loss
#: below them either (their cached scores), so losses that each stage keeps
#: inside the bound cannot add up past it.
BASELINES = "baselines.json"
ALL_SETS = ("val", "Set5", "Set14", "B100", "CBSD68")
# Set name -> folder under the bench root (val is a folder of its own).
FOLDERS = {**standard.SETS, "B100": "B100"}
# Where the sets come from, for the one line said when they are missing.
SOURCES = {
    "CSet5": "github.com/majedelhelou/denoising_datasets (CSet5, CSet14, CBSD68)",
    "CSet14": "github.com/majedelhelou/denoising_datasets (CSet5, CSet14, CBSD68)",
    "CBSD68": "github.com/majedelhelou/denoising_datasets (CSet5, CSet14, CBSD68)",
    "B100": "github.com/jiny2001/dcscn-super-resolution (data/bsd100, as B100)",
    "val": "scikit-image's sample photos (skimage.data: astronaut, chelsea, coffee, "
    "motorcycle_left, rocket; ../shared/data/val)",
}
# The bar's levels per kind of model: (sets, levels).
BAR_SETS = {
    "upscale": ("Set5", "Set14", "B100", "val"),
    "jpeg": ("val",),
    "denoise": ("CBSD68", "val"),
    "dejpeg": ("CBSD68", "val"),
}
BAR_LEVELS = {
    "jpeg": (70.0, 80.0, 90.0),
    "denoise": standard.SIGMAS,
    "dejpeg": standard.QUALITIES,
}
# Light levels, scored on val only, each image held to the bound, out of the mean.
LIGHT_LEVELS = {
    "denoise": (1.0, 2.0, 5.0),
    "dejpeg": (90.0, 95.0),
}
WORST = 5


@dataclass(frozen=True)
class Level:
    """One set at one level: what a model is told and how it is scored."""

    set: str
    task: str  # upscale | denoise | dejpeg
    scale: int = 1
    level: float | None = None  # σ (denoise), quality (dejpeg); None for SR
    jpeg: float | None = None  # a JPEG-aware upscaler: the LR file's quality
    light: bool = False  # a light level: each image bounded, left out of the set's mean

    @property
    def label(self) -> str:
        """x2 / x2 q70 / σ25 / q20."""
        if self.task == "upscale":
            return f"x{self.scale}" + ("" if self.jpeg is None else f" q{self.jpeg:g}")
        return f"{'σ' if self.task == 'denoise' else 'q'}{self.level:g}"

    @property
    def value(self) -> float | None:
        """The level the restorer is told (and its schedules are read at)."""
        return self.level if self.jpeg is None else self.jpeg

    @property
    def metric(self) -> str:
        return "psnr_y" if self.task == "upscale" else "psnr"


@dataclass
class Options:
    """What to score and how; the defaults are the bar's."""

    sets: list[str] | None = None  # None: every set the bar names for the task
    levels: list[str] | None = None  # None: every level; else e.g. ["25", "σ50", "x2"]
    precision: str = "fp32"
    device: str = "cpu"
    max_loss: float = 0.2
    min_gain: float = 0.0
    root: Path = DEFAULT_BENCH
    val: Path = DEFAULT_VAL
    cache_dir: Path | None = CACHE_DIR  # None: no cache
    # The candidate's keep_input / keep_luma: True the entry's (as ship.py
    # --stage keeps it), a list of (level, share) points, False / None: none.
    schedule: bool | list | None = True
    on_image: Callable[[str], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # recorded in the document


# -- what to score ---------------------------------------------------------------


def model_kind(name: str) -> tuple[str, int, bool]:
    """(task, scale, JPEG-aware) of the registry entry ``name``."""
    entry = load_registry().get(name)
    if entry is None:
        known = ", ".join(sorted(load_registry()))
        raise ValueError(f"no registry entry {name!r} (known: {known})")
    jpeg = entry.task == "upscale" and int(entry.hparams.get("num_cond_channels") or 0) > 0
    return entry.task, int(entry.scale), jpeg


def _number(token: str) -> float:
    text = token.strip().lower()
    for prefix in ("sigma", "σ", "q", "x"):
        text = text.removeprefix(prefix)
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--levels: {token!r} is not a level (e.g. 25, σ25, q20, x2)") from None


def plan(
    task: str,
    scale: int,
    jpeg: bool,
    sets: Iterable[str] | None = None,
    levels: Iterable[str] | None = None,
) -> list[Level]:
    """The (set, level) pairs the bar names for such a model, narrowed to
    ``sets`` and ``levels`` (numbers, or labels like σ25 / q20 / x2)."""
    kind = "jpeg" if jpeg else task
    bar_sets = BAR_SETS[kind]
    chosen = list(sets) if sets else list(bar_sets)
    unknown = [s for s in chosen if s not in bar_sets]
    if unknown:
        raise ValueError(f"--sets: {', '.join(unknown)} not scored for {kind}; use {bar_sets}")
    wanted = {_number(t) for t in levels} if levels else None
    out = []
    for s in chosen:
        if kind == "upscale":
            items = [Level(s, task, scale)]
        elif jpeg:
            items = [Level(s, task, scale, None, q) for q in BAR_LEVELS[kind]]
        else:
            items = [Level(s, task, 1, lv) for lv in BAR_LEVELS[kind]]
            if s == "val":
                items += [Level(s, task, 1, lv, light=True) for lv in LIGHT_LEVELS[kind]]
        out += [it for it in items if wanted is None or (it.value or it.scale) in wanted]
    if not out:
        names = sorted({it.label for it in plan(task, scale, jpeg)})
        raise ValueError(f"--levels: none of {sorted(levels or [])} is scored; use {names}")
    return out


def folder(set_name: str, root: Path, val: Path) -> Path:
    if set_name == "val":
        return val
    f = root / FOLDERS.get(set_name, set_name)
    return f if f.is_dir() or not (root / set_name).is_dir() else root / set_name


def missing_data(levels: list[Level], root: Path, val: Path) -> str | None:
    """One line saying where to get the sets that are missing, or None."""
    absent = [
        s for s in dict.fromkeys(lv.set for lv in levels) if not folder(s, root, val).is_dir()
    ]
    if not absent:
        return None
    where = [f"{val} from {SOURCES['val']} (or --val FOLDER)" for s in absent if s == "val"]
    bench = [FOLDERS.get(s, s) for s in absent if s != "val"]
    if bench:
        src = "; ".join(dict.fromkeys(SOURCES.get(b, b) for b in bench))
        where.insert(0, f"{', '.join(bench)} under {root} from {src} (or --root FOLDER)")
    return "error: the guard's sets are missing: copy " + "; and ".join(where)


# -- scoring and the cache -----------------------------------------------------


def images_digest(images: list[tuple[str, np.ndarray]]) -> str:
    """What the scores were measured on: names and pixels."""
    h = hashlib.sha256()
    for name, arr in images:
        h.update(name.encode() + b"\0" + str(arr.shape).encode())
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def prepare(restorer: Any, lv: Level, schedule: list | None) -> dict[str, Any]:
    """Set the candidate's keep share for ``lv`` (``schedule``: the entry's
    points, as ship.py applies them) and say which path the restorer takes."""
    key = TASK_SCHEDULES.get(restorer.task)
    if schedule is not None and key and lv.value is not None:
        setattr(restorer, key, schedule_weight(schedule, lv.value))
    told = restorer.told(lv.value) if restorer.conditioned else None
    kept = restorer.kept_share(lv.value) if lv.value is not None else 0.0
    return {"told": None if told is None else round(float(told), 4), "kept": round(kept, 4)}


def score(
    restorer: Any,
    images: list[tuple[str, np.ndarray]],
    lv: Level,
    on_image: Callable[[str], None] | None = None,
    who: str = "",
) -> dict[str, float]:
    """Image name -> the protocol's figure (PSNR-Y for SR, PSNR otherwise);
    ``on_image`` gets a progress line per image, naming ``who`` runs."""

    def hook(row: Any) -> None:
        if on_image:
            fig = getattr(row, lv.metric)
            on_image(f"{who} {lv.set} {lv.label} {row.image}: {fig:.3f} ({row.seconds:.1f} s)")

    jpeg = None if lv.jpeg is None else int(lv.jpeg)
    rows = evaluate(restorer, images, lv.level, hook, jpeg=jpeg)
    return {r.image: float(getattr(r, lv.metric)) for r in rows}


def cached_scores(
    cache: ScoreCache,
    key: str,
    digest: str,
    path: dict[str, Any],
    hits: list[str],
    measure: Callable[[], dict[str, float]],
) -> dict[str, float]:
    """The cache's scores for ``key`` (its label added to ``hits``), else
    ``measure()``'s, which are then cached."""
    scores = cache.get(key, digest, path)
    if scores is not None:
        hits.append(key.split("|")[0] + " " + key.split("|")[1])
        return scores
    scores = measure()
    cache.put(key, digest, path, scores)
    return scores


class ScoreCache:
    """The shipped model's per-image scores, one JSON file per model sha256."""

    def __init__(self, directory: Path | None, sha256: str) -> None:
        self.path = None if directory is None else directory / f"{sha256[:16]}.json"
        self.sha256 = sha256

    @staticmethod
    def key(lv: Level, precision: str, device: str) -> str:
        return "|".join([lv.set, lv.label, precision] + ([] if device == "cpu" else [device]))

    def _read(self) -> dict[str, Any]:
        if self.path is None or not self.path.is_file():
            return {}
        doc = json.loads(self.path.read_text())
        return doc.get("entries", {}) if doc.get("sha256") == self.sha256 else {}

    def find(self, lv: Level, precision: str, digest: str) -> tuple[dict[str, float], str] | None:
        """Scores for ``lv`` on the images of ``digest``, whatever the path,
        and their precision: ``precision`` where cached, else another."""
        found = sorted(
            (key.split("|")[2] != precision, key.split("|")[2], e["scores"])
            for key, e in self._read().items()
            if key.split("|")[:2] == [lv.set, lv.label] and e.get("images_digest") == digest
        )
        return (found[0][2], found[0][1]) if found else None

    def get(self, key: str, digest: str, path: dict[str, Any]) -> dict[str, float] | None:
        hit = self._read().get(key)
        if hit and hit.get("images_digest") == digest and hit.get("path") == path:
            return hit["scores"]
        return None

    def put(self, key: str, digest: str, path: dict[str, Any], scores: dict[str, float]) -> None:
        """Add one entry; a lock and an atomic rewrite keep guards side by side safe."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self._read()
            entries[key] = {"images_digest": digest, "path": path, "scores": scores,
                            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}  # fmt: skip
            doc = {"sha256": self.sha256, "entries": dict(sorted(entries.items()))}
            with atomic_output(self.path) as tmp:
                tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")


# -- comparing -------------------------------------------------------------------


def _mean(values: Iterable[float]) -> float:
    return float(np.mean(list(values)))


def _triple(shipped: float, candidate: float) -> dict[str, float]:
    return {"shipped": round(shipped, 4), "candidate": round(candidate, 4),
            "delta": round(candidate - shipped, 4)}  # fmt: skip


def compare_level(shipped: dict[str, float], candidate: dict[str, float]) -> dict[str, Any]:
    """Per image and mean: shipped, candidate, delta."""
    images = {n: _triple(shipped[n], candidate[n]) for n in candidate}
    mean = _triple(_mean(shipped[n] for n in candidate), _mean(candidate.values()))
    return {"images": images, "mean": mean}


def load_baseline(cache_dir: Path | None, name: str) -> dict[str, Any] | None:
    """``name``'s entry in the cache folder's baselines.json, if any."""
    path = None if cache_dir is None else cache_dir / BASELINES
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text()).get(name)


def compare_baseline(base: tuple[dict[str, float], str], candidate: dict[str, float]) -> dict:
    scores, precision = base
    deltas = {n: round(candidate[n] - scores[n], 4) for n in candidate if n in scores}
    return {"precision": precision, "images": deltas}


def verdict(doc: dict[str, Any], max_loss: float, min_gain: float) -> list[str]:
    """One line per offending image (against the shipped model, or the
    baseline) and per set whose mean falls; [] passes."""
    lines = []
    base = (doc.get("baseline") or {}).get("sha256", "")[:12]
    for set_name, s in doc["sets"].items():
        for label, lvl in s["levels"].items():
            for image, t in lvl["images"].items():
                if t["delta"] < -max_loss:
                    lines.append(f"{set_name} {label} {image}: {t['delta']:+.2f} dB")
            for image, d in lvl.get("baseline", {}).get("images", {}).items():
                if d < -max_loss:
                    lines.append(
                        f"{set_name} {label} {image}: {d:+.2f} dB against the baseline {base}"
                    )
        if _bar_levels(s) and s["mean"]["delta"] < min_gain:  # light levels alone: no mean rule
            lines.append(
                f"{set_name} mean: {s['mean']['delta']:+.4f} dB (must be >= {min_gain:+.2f})"
            )
    return lines


# -- the record ------------------------------------------------------------------


def markdown(doc: dict[str, Any]) -> str:
    """Means per set and level, then the worst five images per set and level."""
    cand, ship = doc["candidate"], doc["shipped"]
    lines = [
        f"Ship guard: {cand['path']} (sha256 {cand['sha256'][:12]}) against {ship['name']} "
        f"(sha256 {ship['sha256'][:12]}): **{doc['verdict']}**" + _forced(doc),
        "",
        f"`{doc['command']}`; commit {doc['commit']}, {doc['date']}; precision "
        f"{doc['precision']}, device {doc['device']}; each set's mean must gain at least "
        f"{doc['min_gain']:+.2f} dB and no image may lose more than {doc['max_loss']:.2f} dB"
        + (" (light levels: no image, and out of the mean)." if _has_light(doc) else "."),
        "",
    ]
    lines += [f"- {line}" for line in doc["offenders"]] + ([""] if doc["offenders"] else [])
    lines += ["| set | level | images | shipped | candidate | Δ mean | worst Δ |", "|" + "---|" * 7]
    for set_name, s in doc["sets"].items():
        for label, lvl in s["levels"].items():
            m, worst = lvl["mean"], min(t["delta"] for t in lvl["images"].values())
            label = f"{label} (light)" if lvl.get("light") else label
            lines.append(f"| {set_name} | {label} | {len(lvl['images'])} | {m['shipped']:.3f} | "
                         f"{m['candidate']:.3f} | {m['delta']:+.3f} | {worst:+.3f} |")  # fmt: skip
        m = s["mean"]
        lines.append(f"| **{set_name}** | all | | {m['shipped']:.3f} | {m['candidate']:.3f} "
                     f"| **{m['delta']:+.3f}** | |")  # fmt: skip
    lines += baseline_lines(doc)
    lines += ["", f"Worst {WORST} images per set and level (Δ = candidate - shipped, dB):", ""]
    lines += ["| set | level | image | shipped | candidate | Δ |", "|" + "---|" * 6]
    for set_name, s in doc["sets"].items():
        for label, lvl in s["levels"].items():
            worst = sorted(lvl["images"].items(), key=lambda kv: (kv[1]["delta"], kv[0]))
            for image, t in worst[:WORST]:
                lines.append(f"| {set_name} | {label} | {image} | {t['shipped']:.3f} | "
                             f"{t['candidate']:.3f} | {t['delta']:+.3f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def baseline_lines(doc: dict[str, Any]) -> list[str]:
    """The worst image per set and level against the baseline, if there is one."""
    if not doc.get("baseline"):
        return []
    sha = doc["baseline"]["sha256"][:12]
    lines = ["", f"Against the baseline (sha256 {sha}, the weights shipped before the "
             "fine-tunes on natural photos; Δ = candidate - baseline, dB):", ""]  # fmt: skip
    for set_name, s in doc["sets"].items():
        for label, lvl in s["levels"].items():
            b = lvl.get("baseline")
            if not b or not b["images"]:
                lines.append(f"- {set_name} {label}: no baseline scores cached")
                continue
            image, d = min(b["images"].items(), key=lambda kv: (kv[1], kv[0]))
            lines.append(f"- {set_name} {label}: worst {image} {d:+.3f} ({b['precision']})")
    return lines


def _bar_levels(set_doc: dict[str, Any]) -> list[dict[str, Any]]:
    """A scored set's levels that count towards its mean: all but the light ones."""
    return [lvl for lvl in set_doc["levels"].values() if not lvl.get("light")]


def _has_light(doc: dict[str, Any]) -> bool:
    return any(lvl.get("light") for s in doc["sets"].values() for lvl in s["levels"].values())


def _forced(doc: dict[str, Any]) -> str:
    return f" (shipped anyway with --force: {doc['forced']})" if doc.get("forced") else ""


def record_paths(prefix: Path) -> tuple[Path, Path]:
    """PREFIX.json and PREFIX.md (a .json / .md suffix given is dropped)."""
    if prefix.suffix in (".json", ".md"):
        prefix = prefix.with_suffix("")
    return prefix.with_name(prefix.name + ".json"), prefix.with_name(prefix.name + ".md")


def write_record(doc: dict[str, Any], prefix: Path) -> tuple[Path, Path]:
    js, md = record_paths(prefix)
    js.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(js) as tmp:
        tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    with atomic_output(md) as tmp:
        tmp.write_text(markdown(doc))
    return js, md


# -- the guard -------------------------------------------------------------------


def candidate_file(path: Path) -> Path:
    """A checkpoint file, or a run folder's model.safetensors."""
    return path / "model.safetensors" if path.is_dir() else path


def git_commit() -> str:
    out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, check=False)  # fmt: skip
    return out.stdout.strip() or "unknown"


def restorers(task: str, scale: int, name: str, cand: Path, opts: Options) -> tuple[Any, Any]:
    """The shipped model on its default path; the candidate as a file outside
    the registry. A file without scnrestore's metadata (model_config) takes
    the entry's num_scales and image_mean, which its tensors cannot tell."""
    from scnrestore.api import Restorer, load_model
    from scnrestore.checkpoint import read_metadata

    def make(model: Any) -> Restorer:
        return Restorer(task, model, scale=scale, device=opts.device, precision=opts.precision)

    shipped = make(name)
    hp: dict[str, Any] = {}
    if "model_config" not in read_metadata(cand):
        entry_hp = shipped.model.entry.hparams
        hp = {k: entry_hp[k] for k in ("num_scales", "image_mean") if k in entry_hp}
    return shipped, make(load_model(cand, "cpu", **hp))


def set_images(lv: Level, opts: Options, loaded: dict[str, Any]) -> list[tuple[str, np.ndarray]]:
    """The images of ``lv``'s set, as the guard scores them (loaded once into ``loaded``)."""
    if lv.set not in loaded:
        where = folder(lv.set, opts.root, opts.val)
        loaded[lv.set] = load_images(where) if lv.set == "val" else standard.load_set(where)[0]
    return loaded[lv.set]


def run_guard(candidate: Path, name: str, opts: Options) -> dict[str, Any]:
    """Score ``candidate`` against the shipped ``name`` on the bar's sets and
    levels (narrowed by ``opts``); returns the JSON document with its verdict.
    Raises FileNotFoundError with the one line of :func:`missing_data`."""
    task, scale, jpeg = model_kind(name)
    levels = plan(task, scale, jpeg, opts.sets, opts.levels)
    missing = missing_data(levels, opts.root, opts.val)
    if missing:
        raise FileNotFoundError(missing)
    cand = candidate_file(candidate)
    shipped_file = resolve(name, offline=True)[0]
    sha = file_sha256(shipped_file)
    cache = ScoreCache(opts.cache_dir, sha)
    cand_dir = None if opts.cache_dir is None else opts.cache_dir / CANDIDATES
    cand_sha = file_sha256(cand)
    cand_cache = ScoreCache(cand_dir, cand_sha)
    same_weights = cand_sha == sha
    baseline = load_baseline(opts.cache_dir, name)
    shipped_r, cand_r = restorers(task, scale, name, cand, opts)
    entry = shipped_r.model.entry
    schedule = opts.schedule or None
    if schedule is True:
        schedule = entry.raw.get(TASK_SCHEDULES.get(task, ""))
    sets: dict[str, Any] = {}
    loaded: dict[str, Any] = {}
    cached: dict[str, list[str]] = {"shipped": [], "candidate": []}
    for lv in levels:
        images = set_images(lv, opts, loaded)
        digest = images_digest(images)
        key = ScoreCache.key(lv, shipped_r.engine.precision, opts.device)
        path, cand_path = prepare(shipped_r, lv, None), prepare(cand_r, lv, schedule)
        measure = partial(score, images=images, lv=lv, on_image=opts.on_image)
        ours = cached_scores(cache, key, digest, path, cached["shipped"],
                             partial(measure, shipped_r, who="shipped"))  # fmt: skip
        if same_weights and cand_path == path:
            theirs = ours  # the shipped file guarded against itself: fills the cache once
        else:
            theirs = cached_scores(cand_cache, key, digest, cand_path, cached["candidate"],
                                   partial(measure, cand_r, who="candidate"))  # fmt: skip
        res = compare_level(ours, theirs)
        got = baseline and ScoreCache(opts.cache_dir, baseline["sha256"]).find(
            lv, shipped_r.engine.precision, digest
        )
        if got:
            res["baseline"] = compare_baseline(got, theirs)
        res.update(metric=lv.metric, shipped_path=path, candidate_path=cand_path)
        if lv.light:
            res["light"] = True
        sets.setdefault(lv.set, {"levels": {}})["levels"][lv.label] = res
    for s in sets.values():
        # the bar's levels; a set scored at light levels alone (--levels) keeps their mean
        ms = [lvl["mean"] for lvl in _bar_levels(s) or s["levels"].values()]
        s["mean"] = _triple(_mean(m["shipped"] for m in ms), _mean(m["candidate"] for m in ms))
    doc = {
        "name": name,
        "task": task,
        "scale": scale,
        "jpeg_aware": jpeg,
        "shipped": {"name": name, "file": str(shipped_file), "sha256": sha},
        "candidate": {
            "path": str(cand),
            "sha256": cand_sha,
            "schedule": schedule,
        },  # fmt: skip
        "precision": opts.precision,
        "device": opts.device,
        "max_loss": opts.max_loss,
        "min_gain": opts.min_gain,
        "shipped_from_cache": cached["shipped"],
        "candidate_from_cache": cached["candidate"],
        "baseline": baseline,
        "sets": sets,
        **opts.extra,
    }
    doc["offenders"] = verdict(doc, opts.max_loss, opts.min_gain)
    doc["verdict"] = "fail" if doc["offenders"] else "pass"
    return doc


def stamp(doc: dict[str, Any], command: str, t0: float) -> dict[str, Any]:
    """Add the command, commit, date, threads and time to ``doc``."""
    import torch

    doc.update(command=command, commit=git_commit(), torch_threads=torch.get_num_threads(),
               date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               seconds=round(time.time() - t0, 1))  # fmt: skip
    return doc


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("candidate", type=Path, help="a checkpoint file or a run folder")
    ap.add_argument("--name", required=True, help="the registry name it would replace")
    ap.add_argument("--record", type=Path, metavar="PREFIX", help="write PREFIX.json, PREFIX.md")
    ap.add_argument("--sets", default="", help=f"comma list of {', '.join(ALL_SETS)}")
    ap.add_argument("--levels", default="", help="e.g. 15,25 or σ25 or q70 or x2 (default all)")
    ap.add_argument("--precision", default="fp32", choices=("auto", "fp32", "bf16", "fp16"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--max-loss", type=float, default=0.2, help="dB one image may lose")
    ap.add_argument("--min-gain", type=float, default=0.0, help="dB each set's mean must gain")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--root", type=Path, default=DEFAULT_BENCH, help="folder of CSet5/ ... B100/")
    ap.add_argument("--val", type=Path, default=DEFAULT_VAL)
    ap.add_argument("--cache-dir", type=Path, default=CACHE_DIR)
    ap.add_argument("--no-cache", action="store_true", help="score the shipped model again")
    ap.add_argument("--no-schedule", action="store_true",
                    help="the candidate without the entry's keep_input / keep_luma")  # fmt: skip
    ap.add_argument("-q", "--quiet", action="store_true", help="no per-image progress")
    return ap.parse_args(argv)


def options(args: argparse.Namespace) -> Options:
    def split(text: str) -> list[str] | None:
        return [t for t in text.split(",") if t.strip()] or None

    def progress(line: str) -> None:
        print(f"  {line}", file=sys.stderr, flush=True)

    return Options(
        sets=split(args.sets), levels=split(args.levels), precision=args.precision,
        device=args.device, max_loss=args.max_loss, min_gain=args.min_gain, root=args.root,
        val=args.val, cache_dir=None if args.no_cache else args.cache_dir,
        schedule=not args.no_schedule, on_image=None if args.quiet else progress,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    t0 = time.time()
    command = "python " + " ".join(shlex.quote(a) for a in [sys.argv[0], *(argv or sys.argv[1:])])
    try:
        doc = run_guard(args.candidate, args.name, options(args))
    except FileNotFoundError as exc:
        print(str(exc).splitlines()[0], file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stamp(doc, command, t0)
    if args.record:
        js, md = write_record(doc, args.record)
        print(f"record: {md}, {js}", file=sys.stderr)
    report(doc)
    return 0 if doc["verdict"] == "pass" else 1


def where_hint(doc: dict[str, Any]) -> str:
    """For a failing image, the scripts/loss_map.py command that shows where on
    it the candidate loses (the worst image against the shipped model)."""
    worst = min(
        ((t["delta"], s, label, image)
         for s, sd in doc["sets"].items() for label, lvl in sd["levels"].items()
         for image, t in lvl["images"].items()),
        default=None,
    )  # fmt: skip
    if worst is None or worst[0] >= -doc["max_loss"]:
        return ""
    _, set_name, label, image = worst
    cand, level = shlex.quote(doc["candidate"]["path"]), label.split()[-1]
    return (f"where on it: python scripts/loss_map.py {cand} --name {doc['name']} "
            f"--set {set_name} --image {shlex.quote(image)} --level {level}")  # fmt: skip


def report(doc: dict[str, Any]) -> None:
    """Means per set and level, then the verdict and the offenders on stdout."""
    for set_name, s in doc["sets"].items():
        for label, lvl in s["levels"].items():
            m = lvl["mean"]
            worst = min(t["delta"] for t in lvl["images"].values())
            print(f"{set_name} {label}: shipped {m['shipped']:.3f}, candidate {m['candidate']:.3f} "
                  f"({m['delta']:+.3f} dB mean, worst image {worst:+.3f})")  # fmt: skip
    for line in doc["offenders"]:
        print(line)
    hint = where_hint(doc)
    if hint:
        print(hint)
    print(f"guard: {doc['verdict']} ({len(doc['offenders'])} offending line(s), "
          f"{doc['seconds']:.0f} s)")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
