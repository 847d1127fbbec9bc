"""scripts/record_standard.py: standard-set figures go only into the entry they measured."""

from __future__ import annotations

import importlib.util
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):  # noqa: ANN202
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


ship = _script("ship")
record_standard = _script("record_standard")


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Path:
    reg = tmp_path / "weights.toml"
    shutil.copy(ROOT / "scnrestore" / "weights.toml", reg)
    monkeypatch.setattr(ship, "REGISTRY", reg)
    monkeypatch.setattr(ship, "ROOT", tmp_path)  # the lock file beside it
    return reg


def _doc(sha: str, tta: bool = False) -> dict:
    figures = {"Set5": 31.456, "Set14": 28.2049, "B100": 27.3512}
    return {
        "tta": tta,
        "models": {"x4": {"source": "scn-x4", "sha256": sha}},
        "command": "python benchmarks/standard.py --sets Set5,Set14,B100 --tasks x4 "
        "--save benchmarks/results/standard_x4_stageN --quiet",
        "precision_used": ["bf16"],
        "results": [
            {"set": s, "task": "upscale", "metric": "psnr_y", "model": "scn-x4", "ours": v}
            for s, v in figures.items()
        ],
    }


def _entry(reg: Path) -> dict:
    return tomllib.loads(reg.read_text())["models"]["scn-x4"]


def test_figures_of_the_shipped_weights_are_written_once(registry):
    before = _entry(registry)
    doc = _doc(before["sha256"])
    assert record_standard.record(doc) == ["scn-x4"]
    after = _entry(registry)
    assert after["quality"]["set5_psnr_y"] == 31.46 and after["quality"]["set14_psnr_y"] == 28.2
    assert after["quality"]["val_psnr_y"] == before["quality"]["val_psnr_y"]  # the rest kept
    note = after["quality_note"]
    assert note.count("set5/set14:") == 1
    assert note.endswith("(python benchmarks/standard.py --sets Set5,Set14,B100 --tasks x4, "
                         "bf16; B100 27.35)")  # fmt: skip
    assert {k: v for k, v in after.items() if k not in ("quality", "quality_note")} == {
        k: v for k, v in before.items() if k not in ("quality", "quality_note")
    }
    text = registry.read_text()
    record_standard.record(doc)  # again: the clause is replaced, not repeated
    assert registry.read_text() == text
    other = tomllib.loads(text)["models"]["scn-x2"]
    assert (
        other
        == tomllib.loads((ROOT / "scnrestore" / "weights.toml").read_text())["models"]["scn-x2"]
    )


def test_figures_of_other_weights_or_tta_are_refused(registry):
    text = registry.read_text()
    with pytest.raises(SystemExit, match="scn-x4: the document measured weights 000000000000"):
        record_standard.record(_doc("0" * 64))
    with pytest.raises(SystemExit, match="--tta"):
        record_standard.record(_doc(_entry(registry)["sha256"], tta=True))
    assert registry.read_text() == text
