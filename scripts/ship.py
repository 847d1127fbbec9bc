"""Ship a trained run: export its weights into the package and register them.

    python scripts/ship.py runs/upscale_x2 --name scn-x2 [--val ../shared/data/val]

1. Reads RUN/model.safetensors (fp32; --weights model.raw.safetensors for the
   live weights of a run trained with --ema) and RUN/run.json (settings, command).
2. Writes scnrestore/models/NAME.safetensors in fp16 with the architecture,
   task, steps and command in its header.
3. Evaluates fp32 and fp16 weights on --val with `scnrestore eval`'s code
   (fp32 compute, so the difference is the storage precision alone) and the
   default precision (reusing the fp16-weights run where that is fp32), refuses
   fp16 if it costs >= 0.01 dB; --eval-json keeps the per-image scores.
   --extra-levels (denoise/dejpeg) adds levels measured once, with the shipped
   file at the default precision: the light degradations (σ 2, quality 90)
   where a model may make images worse, which the CLI then warns about.
4. Writes the [models.NAME] entry into scnrestore/weights.toml (the registry;
   weights.toml at the top of the repository is a link to it).
   With --stage LABEL (a run started with --init from the shipped file) the
   entry's history is kept: the run is appended to its provenance as
   "LABEL, N steps: COMMAND (code C)", steps add up, and its status stays
   unless --status replaces it; so does a dejpeg entry's keep_luma / a denoise
   entry's keep_input schedule, which every evaluation above applies (the
   figures are what users get), with its clause in quality_note (where and
   for which weights it was chosen). A told_level calibration is not kept: it
   was measured for the old weights (re-measure with benchmarks/told_level.py),
   and neither is its clause. A JPEG-aware upscaler's routing (joint_range,
   plain_from) is kept, and a note says to re-check it.
5. With --guard, before anything is written: scripts/guard.py scores the run's
   weights against the shipped NAME on every set and level of the bar (val,
   Set5, Set14, B100, CBSD68; fp32) and refuses to ship if a set's mean falls
   or any image loses more than 0.2 dB. The guard's record (per-image JSON and
   the worst five images per set and level) goes to --guard-record PREFIX
   (default RUN/guard.json, .md). --force REASON ships past a failing guard;
   the reason goes into the record and into the entry's provenance.

An upscaler's standard-set figures (set5_psnr_y, set14_psnr_y) belong to the
old weights and are not carried over: measure the shipped weights with
benchmarks/standard.py --save and write them in with scripts/record_standard.py.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from scnrestore.files import atomic_output
from scnrestore.weights import TASK_SCHEDULES, TOLD_LEVEL
from scnrestore.weights.registry import ROUTING_KEYS

ROOT = Path(__file__).resolve().parents[1]
#: The one registry file (the top-level weights.toml is a symbolic link to it).
REGISTRY = ROOT / "scnrestore" / "weights.toml"
# A JPEG-aware upscaler: web (70-90) and phone (95) qualities of the input.
JPEG_LEVELS = [70.0, 80.0, 90.0, 95.0]
LEVELS = {"upscale": [None], "denoise": [15.0, 25.0, 50.0], "dejpeg": [10.0, 20.0, 30.0, 40.0]}


def evaluate(
    path: Path,
    task: str,
    scale: int,
    val: Path,
    precision: str,
    levels: list | None = None,
    schedule: list | None = None,
    jpeg: bool = False,
) -> tuple[dict, dict]:
    """(mean scores per level, the `scnrestore eval --json` document).

    ``schedule``: the entry's keep_luma (dejpeg) / keep_input (denoise),
    applied as the CLI applies the registry's, so the figures are what users get.
    ``jpeg``: a JPEG-aware upscaler; each level is the quality the
    low-resolution input is saved at (and the network is told).
    """
    from scnrestore.api import Restorer
    from scnrestore.training.evaluate import eval_document, level_result, load_images
    from scnrestore.training.evaluate import evaluate as run_eval
    from scnrestore.weights import schedule_weight

    images = load_images(val)
    r = Restorer(task, str(path), scale=scale, device="cpu", precision=precision)
    results = []
    key = TASK_SCHEDULES.get(task)
    for lv in levels or (JPEG_LEVELS if jpeg else LEVELS[task]):
        keep = schedule_weight(schedule, lv) if schedule else None
        if key:
            setattr(r, key, keep)
        kept = {key: keep} if key and keep is not None else None
        rows = run_eval(r, images, None, jpeg=lv) if jpeg else run_eval(r, images, lv)
        results.append(level_result(lv, rows, kept))
    return {res["level"]: res["mean"] for res in results}, eval_document(r, results)


def default_precision() -> str:
    import torch

    from scnrestore.runtime import resolve_precision

    return resolve_precision("auto", torch.device("cpu"))


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    return json.dumps(str(v), ensure_ascii=False)


def write_entry(name: str, fields: dict) -> None:
    """Replace (or append) the [models.NAME] block in the registry.

    Two ship.py runs often finish at about the same time (denoise and dejpeg
    are trained side by side); each read-modify-write holds an exclusive lock
    on a lock file beside the registry so neither loses the other's entry, and
    the new text goes through files.atomic_output, so a registry
    is never seen half-written.
    """
    block = f"[models.{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in fields.items())
    pattern = re.compile(rf"^\[models\.{re.escape(name)}\]\n(?:(?!\[).*\n)*", re.M)
    with open(ROOT / ".weights.toml.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        reg = REGISTRY  # the file itself: replacing the top-level link would split them
        text = reg.read_text()
        if pattern.search(text):
            text = pattern.sub(lambda _m: block + "\n", text)  # no escapes in block
        else:
            text = text.rstrip("\n") + "\n\n" + block
        with atomic_output(reg) as tmp:
            tmp.write_text(text.rstrip("\n") + "\n")


def kept_routing(old: dict | None) -> dict:
    """The routing keys of the old entry that a later stage keeps (joint_range:
    the qualities the joint model takes; plain_from: where the plain upscaler
    takes over)."""
    return {key: old[key] for key in ROUTING_KEYS if old and key in old}


def schedule_clause(note: str, key: str) -> str:
    """The "KEY applied (...)" clause of an old quality_note, or "".

    e.g. 'keep_luma applied (q 90-99; chosen for ...)' out of a dejpeg note
    that also has a told_level clause, which is left behind.
    """
    m = re.search(rf"{re.escape(key)} applied \([^()]*\)", note)
    return m.group(0) if m else ""


def previous_entry(name: str) -> dict:
    """The entry as written in the project's weights.toml (no user registry)."""
    from scnrestore.weights import load_registry

    entry = load_registry(REGISTRY).get(name)
    if entry is None:
        raise SystemExit(f"--stage: weights.toml has no [models.{name}] entry to continue")
    return entry.raw


def add_guard_options(ap: argparse.ArgumentParser) -> None:
    ap.add_argument(
        "--guard", action="store_true",
        help="ship only if scripts/guard.py passes (no image of the bar's sets loses > 0.2 dB)",
    )  # fmt: skip
    ap.add_argument("--force", default="", metavar="REASON", help="ship past a failing guard")
    ap.add_argument("--guard-record", type=Path, metavar="PREFIX", help="default RUN/guard")
    ap.add_argument("--guard-sets", default="", help="e.g. val,CBSD68 (default: the bar's)")
    ap.add_argument("--guard-root", type=Path, default=ROOT.parent / "shared" / "data" / "bench")
    ap.add_argument("--guard-cache", type=Path, default=ROOT / "benchmarks/results/guard_cache")


def ship_guard(args: argparse.Namespace, src: Path, keep: list | None) -> str:
    """Run scripts/guard.py on ``src`` against the shipped ``args.name`` (the
    candidate with the schedule ``keep`` it would ship with). Returns "" on a
    pass, the provenance clause of a --force; exits on a failure otherwise."""
    import time

    import guard

    opts = guard.Options(
        sets=[s for s in args.guard_sets.split(",") if s] or None, root=args.guard_root,
        val=args.val, cache_dir=args.guard_cache, schedule=keep or False,
        on_image=lambda line: print(f"  guard: {line}", flush=True),
    )  # fmt: skip
    t0 = time.time()
    try:
        doc = guard.run_guard(src, args.name, opts)
    except FileNotFoundError as exc:
        raise SystemExit(str(exc)) from None
    failed = doc["verdict"] == "fail"
    if failed and args.force:
        doc["forced"] = args.force
    guard.stamp(doc, "python scripts/ship.py " + " ".join(sys.argv[1:]), t0)
    _, md = guard.write_record(doc, args.guard_record or args.run / "guard")
    guard.report(doc)
    if not failed:
        return ""
    if not args.force:
        raise SystemExit(
            f"the guard fails ({md}): not shipped, nothing written\n" + "\n".join(doc["offenders"])
        )
    n = len(doc["offenders"])
    return f" (shipped past a failing guard, {n} offending line(s): {args.force})"


# What each training folder is, for an entry's data and licence lines.
DATA_NOTES = {
    "train": ("shared/data/train (38 wallpapers, see its manifest.json)",
              "GPL-2+/CC-BY-SA/CC-BY/CC0 wallpapers"),
    "train291": ("shared/data/train291 (the field's 291 images: BSDS300 train + T91)",
                 "the BSDS300 and T91 research data sets"),
    "stripes": ("fine stripes rendered by scripts/make_stripes.py",
                "stripes it renders itself (scripts/make_stripes.py)"),
}  # fmt: skip


def _folders(cfg: dict) -> list[tuple[str, float]]:
    """(folder name, share) of a run's --data: a plain path, or the list of
    {path, share, ...} a several-folder run records."""
    data = cfg["data"]
    if isinstance(data, str):
        return [(Path(data).name, 1.0)]
    return [(Path(d["path"]).name, float(d.get("share", 1.0))) for d in data]


def data_text(cfg: dict, old: dict | None) -> str:
    """The entry's data line: this run's folders (with shares), after an
    earlier stage's where they differ."""
    parts = []
    for name, share in _folders(cfg):
        text = DATA_NOTES.get(name, (name, ""))[0]
        parts.append(text if share == 1.0 else f"{text} {share:.0%}")
    text = " + ".join(parts)
    earlier = (old or {}).get("data", "")
    if not earlier or earlier.split("; then ")[-1] == text:  # the same data as the last stage
        return earlier or text
    return f"{earlier}; then {text}"


def licence_text(cfg: dict, old: dict | None) -> str:
    """MIT weights, naming every data set trained on (this run's and before)."""
    sources = [DATA_NOTES.get(n, (n, n))[1] for n, _ in _folders(cfg)]
    before = (old or {}).get("licence", "")
    for known in (v[1] for v in DATA_NOTES.values()):
        if known in before and known not in sources:
            sources.append(known)
    return "MIT (weights trained by scnrestore on " + " and ".join(sources) + ")"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--val", type=Path, default=ROOT.parent / "shared" / "data" / "val")
    ap.add_argument("--status", default="", help="a note for the entry, e.g. 'in training'")
    ap.add_argument("--eval-json", type=Path, help="also write the scores as eval --json does")
    ap.add_argument("--extra-levels", default="", help="e.g. 1,2,5: measured once, recorded too")
    ap.add_argument("--weights", default="model.safetensors", help="the file in RUN to ship")
    ap.add_argument(
        "--stage", default="", help="e.g. 'stage 7, CPU fp32 (AVX2, 1 thread)': append to the entry"
    )
    add_guard_options(ap)
    args = ap.parse_args()

    old = previous_entry(args.name) if args.stage else None
    run = json.loads((args.run / "run.json").read_text())
    cfg, mcfg = run["config"], run["model"]
    src = args.run / args.weights
    from safetensors import safe_open

    with safe_open(str(src), "pt") as f:
        meta = dict(f.metadata() or {})
    steps = int(meta.get("steps", 0))
    task, scale = cfg["task"], int(mcfg["scale"])
    # The entry's blend-back schedule is kept, and applied to the figures.
    keep = (old or {}).get(TASK_SCHEDULES.get(task, ""))
    forced = ship_guard(args, src, keep) if args.guard else ""

    dest = ROOT / "scnrestore" / "models" / f"{args.name}.safetensors"
    dest.parent.mkdir(exist_ok=True)
    sd = load_file(str(src))
    meta["model_config"] = json.dumps(mcfg)
    save_file({k: v.to(torch.float16).contiguous() for k, v in sd.items()}, str(dest), meta)

    key = "psnr_y" if task == "upscale" else "psnr"
    jpeg = bool(cfg.get("jpeg_range"))
    q32, _ = evaluate(src, task, scale, args.val, "fp32", schedule=keep, jpeg=jpeg)
    q16, doc16 = evaluate(dest, task, scale, args.val, "fp32", schedule=keep, jpeg=jpeg)
    # The shipped figures are at the default precision; where that is fp32
    # (CPUs where bf16 is not faster) the fp16-weights run above is that run.
    if default_precision() == "fp32":
        qdef, doc = q16, doc16
    else:
        qdef, doc = evaluate(dest, task, scale, args.val, "auto", schedule=keep, jpeg=jpeg)
    extra = [float(int(v)) for v in args.extra_levels.split(",") if v.strip()]
    if extra:
        if task == "upscale":
            raise SystemExit("--extra-levels is for denoise and dejpeg")
        qx, docx = evaluate(dest, task, scale, args.val, "auto", extra, keep)
        qdef = dict(sorted({**qdef, **qx}.items()))
        doc["results"] = sorted(doc["results"] + docx["results"], key=lambda r: r["level"])
    if args.eval_json:
        args.eval_json.write_text(json.dumps(doc, indent=1) + "\n")
    for lv in q32:
        delta = q16[lv][key] - q32[lv][key]
        print(f"level {lv}: fp32 weights {q32[lv][key]:.3f}, fp16 weights {q16[lv][key]:.3f} "
              f"({delta:+.4f} dB); default precision {qdef[lv][key]:.3f}")  # fmt: skip
        if abs(delta) >= 0.01:
            dest.unlink()
            raise SystemExit(f"fp16 storage costs {delta:+.4f} dB at level {lv}: not shipped")

    quality: dict[str, float] = {}
    for lv, m in qdef.items():
        tag = "" if lv is None else f"_{int(lv)}"
        quality[f"val_{key}{tag}"] = round(m[key], 2)
        quality[f"baseline_{key}{tag}"] = round(m["base_" + key], 2)
        quality[f"gain{tag}"] = round(m[key] - m["base_" + key], 2)
    data = dest.read_bytes()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    provenance = " ".join(cfg.get("command") or []) + f" (code {commit})" + forced
    status = args.status
    if old is not None:
        provenance = f"{old['provenance']}; {args.stage}, {steps} steps: {provenance}"
        steps += int(old.get("steps", 0))
        status = status or old.get("status", "")
    fields: dict[str, object] = {"task": task, "scale": scale}
    if task == "denoise" and cfg.get("noise") == "real":
        fields["noise"] = "real"  # blind: takes no level (denoise without --sigma)
    elif task == "denoise":
        fields["sigma_range"] = list(cfg["sigma_range"])
    if task == "dejpeg":
        fields["quality_range"] = list(cfg["quality_range"])
    if jpeg:  # the JPEG qualities a JPEG-aware upscaler was trained on
        fields["quality_range"] = list(cfg["jpeg_range"])
    # A later stage keeps the entry's routing (the qualities the joint model
    # takes, and where the plain upscaler takes over): without joint_range the
    # chain would never use the model. Re-check it with benchmarks/jpeg_upscale.py.
    for key, value in kept_routing(old).items():
        fields[key] = value
        print(f"note: {key} = {value} kept; re-check it for these weights")
    fields.update(
        file=dest.name,
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        embedded=True,
        num_blocks=mcfg["num_blocks"],
        num_residual_units=mcfg["num_residual_units"],
        width_multiplier=mcfg["width_multiplier"],
        num_scales=mcfg["num_scales"],
        image_mean=mcfg["image_mean"],
        num_cond_channels=mcfg["num_cond_channels"],
        licence=licence_text(cfg, old),
        provenance=provenance,
        steps=steps,
        data=data_text(cfg, old),
        quality=quality,
        quality_note="scnrestore eval on shared/data/val (5 photos), default precision, "
        + ("PSNR-Y shave = scale vs bicubic" if task == "upscale" else "PSNR RGB vs input")
        + (
            " of the low-resolution input saved as a JPEG at each quality (eval --jpeg Q)"
            if jpeg
            else ""
        ),
    )
    if keep:
        fields[TASK_SCHEDULES[task]] = keep
        clause = schedule_clause(old.get("quality_note", ""), TASK_SCHEDULES[task])
        fields["quality_note"] += ", " + (clause or f"{TASK_SCHEDULES[task]} applied")
    if old and TOLD_LEVEL in old:
        print("note: the old entry's told_level is dropped; measure one for these weights")
    if status:
        fields["status"] = status
    write_entry(args.name, fields)
    print(f"shipped {dest} ({len(data)} bytes), entry [models.{args.name}] written")


if __name__ == "__main__":
    main()
