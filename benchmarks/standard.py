"""The field's standard test sets: our figures beside the published ones.

    python benchmarks/standard.py                       # Set5, Set14, B100, CBSD68, every task
    python benchmarks/standard.py --sets Set5 --tasks x2,x3,x4 --baseline-only
    python benchmarks/standard.py --tasks denoise --sigmas 25 --model denoise=runs/dn.safetensors
    python benchmarks/standard.py --json > standard.json
    python benchmarks/standard.py --save benchmarks/results/standard_cpu  # .txt and .json

Protocol, published figures and the runner: ``scnrestore/training/standard.py`` (the
protocol of ../shared/README.md, on the functions behind ``scnrestore eval``).
SR runs on Set5 / Set14 / B100, denoise (σ 15 / 25 / 50) and dejpeg (q 10 / 20 / 30 /
40) on CBSD68. Models: the registry's shipped ones with their default path
(told level, keep_input / keep_luma schedules), or ``--model KEY=NAME_OR_PATH``
for KEY in x2, x3, x4, denoise, dejpeg. Per-image progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

# isort: off
import scnrestore  # noqa: F401  (before torch: it sets up torch's CPU allocator)

# isort: on
from scnrestore.training import standard

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BENCH = ROOT.parent / "shared" / "data" / "bench"


def cpu_kind() -> dict[str, str]:
    """The CPU model name and its bf16 / AMX flags (as lscpu and /proc/cpuinfo say)."""
    name, flags = platform.processor() or platform.machine(), ""
    try:
        text = Path("/proc/cpuinfo").read_text()
        m = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
        name = m.group(1).strip() if m else name
        f = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
        wanted = ("amx_bf16", "amx_tile", "amx_int8", "avx512_bf16", "avx512f", "avx2")
        have = set(f.group(1).split()) if f else set()
        flags = " ".join(w for w in wanted if w in have)
    except OSError:
        pass
    return {"model_name": name, "flags": flags}


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=10, check=False,
        )  # fmt: skip
        head = out.stdout.strip() or "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no",
             "--", "scnrestore", "benchmarks/standard.py"],
            capture_output=True, text=True, timeout=10, check=False,
        ).stdout.split("\n")  # fmt: skip
        changed = sorted(line[3:] for line in dirty if line.strip())
        return head + (f" + uncommitted changes to {', '.join(changed)}" if changed else "")
    except OSError:
        return "unknown"


def parse_models(items: list[str]) -> dict[str, str]:
    models = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in standard.CASE_KEYS or not value:
            raise SystemExit(f"--model wants KEY=NAME_OR_PATH with KEY in {standard.CASE_KEYS}")
        models[key] = value
    return models


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def default_path_notes(doc: dict) -> list[str]:
    """What the level-conditioned models were told and kept, per level."""
    notes = []
    for task, share in (("denoise", "keep_input"), ("dejpeg", "keep_luma")):
        res = [r for r in doc["results"] if r["task"] == task and "ours" in r]
        if not res:
            continue
        told = ", ".join(f"{r['level']:g}→{r['told_level']:.3g}" for r in res if "told_level" in r)
        kept = ", ".join(f"{r['level']:g}: {r[share]:.2f}" for r in res)
        name = doc["models"].get(task, {}).get("source", "?")
        notes.append(
            f"- {task}: {name} on its default path (as `scnrestore "
            f"{task}` and `scnrestore eval` run it): level told to the network {told}; "
            f"{share} share {kept}"
        )
    return notes


def gray_notes(doc: dict) -> list[str]:
    notes = []
    groups: dict[str, list[dict]] = {}
    for r in doc["results"]:
        if "input_gray_as_is" in r:
            groups.setdefault(r["set"], []).append(r)
    for set_name, res in groups.items():
        files = ", ".join(res[0]["gray_files"])
        inp = " / ".join(f"{r['input_gray_as_is']:.2f}" for r in res)
        line = (
            f"- {set_name}: {files} is a single-channel file. The published tables score it on its "
            f"gray values, not on luma ({standard.GRAY_AS_IS_DB:.2f} dB lower on that image); "
            f"under that convention bicubic measures {inp}"
        )
        if all("ours_gray_as_is" in r for r in res):
            line += " and scnrestore " + " / ".join(f"{r['ours_gray_as_is']:.2f}" for r in res)
        notes.append(line + " (" + " / ".join(r["key"] for r in res) + ").")
    return notes


def report(doc: dict) -> str:
    lines = [standard.markdown_table(doc), ""]
    lines += default_path_notes(doc) + gray_notes(doc)
    if any(r["task"] == "dejpeg" for r in doc["results"]):
        lines.append(f"- dejpeg: {standard.PUBLISHED_NOTES['dejpeg']}; not measured on CBSD68.")
    for key, info in doc["models"].items():
        what = f"sha256 {info['sha256'][:12]}" if "sha256" in info else "no file"
        steps = f", {info['steps']} training steps" if "steps" in info else ""
        lines.append(f"- model {key}: {info['source']} ({what}{steps})")
    secs = ", ".join(f"{k} {v:.0f} s" for k, v in doc["set_seconds"].items())
    lines.append(f"- time per set: {secs}")
    return "\n".join(lines) + "\n"


def header(doc: dict, lead: str = "# ") -> str:
    cpu = doc["cpu"]
    return (
        f"{lead}{doc['command']}\n{lead}commit {doc['commit']}, {doc['date']}; CPU "
        f"{cpu['model_name']} (flags: {cpu['flags']}); torch {doc['torch']}, "
        f"{doc['torch_threads']} threads; device {doc['device']}, precision "
        f"{doc['precision']} -> {', '.join(doc['precision_used']) or 'n/a'}; "
        f"{doc['total_seconds'] / 60:.1f} min"
        + (f"; PARTIAL: {doc['partial']} so far" if doc.get("partial") else "")
        + "\n"
    )


def merged(args: argparse.Namespace) -> None:
    """--from-json: the documents' results in one table, their commands in the header."""
    docs = [json.loads(p.read_text()) for p in args.from_json]
    out = {"results": [], "models": {}, "set_seconds": {}, "parts": docs}
    for d in docs:
        out["results"] += d["results"]
        out["models"].update(d["models"])
        for k, v in d["set_seconds"].items():
            out["set_seconds"][k] = out["set_seconds"].get(k, 0.0) + v
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    out["command"] = command
    head = f"# {command}\n# the table of {len(docs)} runs:\n" + "".join(
        header(d, "#   ") for d in docs
    )
    head += (
        "# protocol: scnrestore/training/standard.py (../shared/README.md); "
        "per-set times summed\n\n"
    )
    text = report(out)
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.with_suffix(".txt").write_text(head + text)
        args.save.with_suffix(".json").write_text(json.dumps(out, indent=1) + "\n")
    sys.stdout.write(json.dumps(out, indent=1) + "\n" if args.json else head + text)


# Where the sets come from: the colour versions every SR / denoising paper reports on.
SOURCES = (
    "github.com/majedelhelou/denoising_datasets (CSet5, CSet14, CBSD68) and "
    "github.com/jiny2001/dcscn-super-resolution (data/bsd100, as B100)"
)


def missing_sets(root: Path, sets: list[str]) -> str | None:
    """One line saying where to get the sets that are not under ``root``, or None."""
    folders = [standard.SETS.get(name, name) for name in sets]
    absent = [f for f in folders if not (root / f).is_dir()]
    if not absent:
        return None
    return (
        f"error: no {', '.join(absent)} under {root}: copy the folders of {SOURCES} "
        "there, or give --root FOLDER"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_BENCH,
        help="folder holding CSet5/, CSet14/, B100/, CBSD68/ (default ../shared/data/bench)",
    )
    ap.add_argument("--sets", default="Set5,Set14,B100,CBSD68")
    ap.add_argument(
        "--tasks",
        default=",".join(standard.CASE_KEYS),
        help="x2,x3,x4,denoise,dejpeg (SR on Set5/Set14, the rest on CBSD68)",
    )
    ap.add_argument("--sigmas", default="15,25,50")
    ap.add_argument("--qualities", default="10,20,30,40")
    ap.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="KEY=NAME_OR_PATH",
        help="a model for KEY (x2, x3, x4, denoise, dejpeg); default the registry's",
    )
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"))
    ap.add_argument("--device", default="auto")
    ap.add_argument(
        "--tta", action="store_true",
        help="x8 self-ensemble, as the published '+' figures (EDSR+); 8x the time",
    )  # fmt: skip
    ap.add_argument(
        "--baseline-only",
        action="store_true",
        help="score the inputs only (bicubic, noisy, JPEG): the protocol check",
    )
    ap.add_argument("--json", action="store_true", help="print the JSON document instead")
    ap.add_argument(
        "--save",
        type=Path,
        metavar="PREFIX",
        help="also write PREFIX.txt (table, with the command) and PREFIX.json",
    )
    ap.add_argument("--quiet", "-q", action="store_true", help="no per-image progress")
    ap.add_argument(
        "--from-json", nargs="+", type=Path, metavar="FILE",
        help="measure nothing: one table from documents saved by --save / --json "
        "(parts run in parallel, e.g. --tasks x2,x3,x4,denoise and --tasks dejpeg)",
    )  # fmt: skip
    args = ap.parse_args()

    if args.from_json:
        merged(args)
        return

    missing = missing_sets(args.root, [s for s in args.sets.split(",") if s])
    if missing:
        print(missing, file=sys.stderr)
        sys.exit(2)
    case_list = standard.cases(
        [s for s in args.sets.split(",") if s],
        [t for t in args.tasks.split(",") if t],
        floats(args.sigmas),
        floats(args.qualities),
    )
    t_start = time.time()
    commit = git_commit()  # the code as it was loaded: others may commit during a long run

    def on_image(case: standard.Case, row) -> None:  # noqa: ANN001
        if not args.quiet:
            fig = row.psnr_y if case.task == "upscale" else row.psnr
            print(f"  {case.set} {case.key} {row.image}: {fig:.3f} ({row.seconds:.1f} s)",
                  file=sys.stderr, flush=True)  # fmt: skip

    done: list[dict] = []

    def on_result(res: dict) -> None:
        done.append(res)
        if args.save and len(done) < len(case_list):  # what is measured so far survives
            secs: dict[str, float] = {}
            for r in done:
                secs[r["set"]] = secs.get(r["set"], 0.0) + r["seconds"]
            models = {r["model_key"]: r["model_info"] for r in done if "model_info" in r}
            part = {"precision": args.precision, "device": args.device, "tta": args.tta,
                    "models": models, "results": list(done), "set_seconds": secs}  # fmt: skip
            finish(part, args, t_start, commit, f"{len(done)} of {len(case_list)} cases", True)
        if args.quiet:
            return
        ours = f", scnrestore {res['ours']:.3f}" if "ours" in res else ""
        print(f"{res['set']} {res['key']}: input {res['input']:.3f}{ours} "
              f"({res['seconds']:.0f} s, {(time.time() - t_start) / 60:.1f} min so far)",
              file=sys.stderr, flush=True)  # fmt: skip

    doc = standard.run(
        args.root, case_list, parse_models(args.model), args.precision, args.device,
        args.baseline_only, on_result, on_image, args.tta,
    )  # fmt: skip
    finish(doc, args, t_start, commit)


def finish(
    doc: dict,
    args: argparse.Namespace,
    t_start: float,
    commit: str,
    partial: str = "",
    quiet: bool = False,
) -> None:
    """Add what ran where to ``doc``; write --save's files; print unless ``quiet``.
    ``partial``: how much of the run this is (files rewritten after each case)."""
    import torch

    results = doc["results"]
    precisions = sorted({r["precision"] for r in results if "precision" in r})
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    doc.update(
        command=command,
        commit=commit,
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        cpu=cpu_kind(),
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        precision_used=precisions,
        total_seconds=time.time() - t_start,
    )
    if partial:
        doc["partial"] = partial
    text = report(doc)
    cpu = doc["cpu"]
    header = (
        f"# {command}\n# commit {doc['commit']}, {doc['date']}; CPU {cpu['model_name']} "
        f"(flags: {cpu['flags']}); torch {doc['torch']}, {doc['torch_threads']} threads; "
        f"device {args.device}, precision {args.precision} -> {', '.join(precisions) or 'n/a'}\n"
        f"# protocol: scnrestore/training/standard.py (../shared/README.md); total "
        f"{doc['total_seconds'] / 60:.1f} min"
        + (f"; PARTIAL: {partial} so far" if partial else "")
        + "\n\n"
    )
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.with_suffix(".txt").write_text(header + text)
        args.save.with_suffix(".json").write_text(json.dumps(doc, indent=1) + "\n")
    if quiet:
        return
    if args.json:
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
    else:
        sys.stdout.write(header + text)


if __name__ == "__main__":
    main()
