"""The level a conditioned network is told: a registry entry's ``told_level``
calibration (true level -> level given to the network), on by default and
switched off by ``--no-level-calibration`` / ``Restorer(told_level=False)``."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image as PILImage
from test_cli import run
from test_keep_input import _registry
from test_keep_input import entry as keep_input_entry

from scnrestore import Restorer, weights


def entry(points, task="dejpeg") -> weights.ModelEntry:
    return keep_input_entry(points, task, key="told_level")


def test_schedule_is_linear_between_points_and_keeps_the_end_ratios_beyond():
    e = entry([[10, 12], [40, 44], [80, 80]])
    assert [e.told_level(q) for q in (5, 10, 25, 40, 60, 80, 95)] == pytest.approx(
        [6, 12, 28, 44, 62, 80, 95]
    )
    assert weights.told_level([], 33) == 33
    assert entry([[25, 20]], task="denoise").told_level(50) == pytest.approx(40)


@pytest.mark.parametrize(
    "points",
    [[[40, 44], [10, 12]], [[10, 0]], [[0, 3]], [[10]], [], "high", [[10, True]]],
    ids=["falling", "zero_told", "zero_level", "short", "empty", "string", "bool"],
)
def test_bad_schedules_are_refused_with_the_entry_named(points):
    with pytest.raises(weights.RegistryError, match="models.m: told_level must be"):
        entry(points)


def test_only_conditioned_models_take_one():
    with pytest.raises(weights.RegistryError, match="denoise and dejpeg models only"):
        entry([[10, 12]], task="upscale")


@pytest.fixture(scope="module")
def q10(photo) -> bytes:
    buf = io.BytesIO()
    PILImage.fromarray(photo).save(buf, "JPEG", quality=10)
    return buf.getvalue()


def test_restorer_tells_the_network_the_calibrated_level(tmp_path, ckpt_dir, q10, monkeypatch):
    for k, v in _registry(tmp_path, ckpt_dir, None, told_level=[[10, 20], [80, 80]]).items():
        monkeypatch.setenv(k, v)
    jpeg = np.asarray(PILImage.open(io.BytesIO(q10)).convert("RGB"))
    cal = Restorer("dejpeg", "tiny", device="cpu", precision="fp32")
    raw = Restorer("dejpeg", "tiny", device="cpu", precision="fp32", told_level=False)
    assert (cal.told(10), cal.told(45), cal.told(99), raw.told(10)) == (20, 50, 95, 10)
    np.testing.assert_array_equal(cal.restore_array(jpeg, 10), raw.restore_array(jpeg, 20))
    assert not np.array_equal(cal.restore_array(jpeg, 10), raw.restore_array(jpeg, 10))
    # A file outside the registry has no calibration.
    assert Restorer("dejpeg", ckpt_dir / "dejpeg.safetensors").told(10) == 10
    assert Restorer("upscale", ckpt_dir / "x2.safetensors", scale=2).told() is None


def test_cli_reports_the_told_level_and_the_flag_turns_it_off(tmp_path, ckpt_dir, q10):
    env = _registry(tmp_path, ckpt_dir, None, told_level=[[10, 20], [80, 80]])
    (tmp_path / "in.jpg").write_bytes(q10)
    outs = {}
    for flag in ("--level-calibration", "--no-level-calibration"):
        r = run("dejpeg", tmp_path / "in.jpg", "--model", "tiny", "-o", tmp_path / flag,
                "--json", flag, env=env)  # fmt: skip
        assert r.returncode == 0, r.stderr
        f = json.loads(r.stdout)["files"][0]
        outs[flag] = (f["level"], f["told_level"])
    assert outs == {"--level-calibration": (10, 20), "--no-level-calibration": (10, 10)}
    with (
        PILImage.open(tmp_path / "--level-calibration" / "in.png") as a,
        PILImage.open(tmp_path / "--no-level-calibration" / "in.png") as b,
    ):
        assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_eval_applies_and_reports_it(tmp_path, ckpt_dir, photo):
    env = _registry(tmp_path, ckpt_dir, None, task="denoise", told_level=[[5, 5], [25, 30]])
    (tmp_path / "val").mkdir()
    PILImage.fromarray(photo).save(tmp_path / "val" / "a.png")
    docs = {}
    for flag in ("--level-calibration", "--no-level-calibration"):
        r = run("eval", tmp_path / "val", "--task", "denoise", "--levels", "2,15,50",
                "--model", "tiny", "--json", flag, env=env)  # fmt: skip
        assert r.returncode == 0, r.stderr
        docs[flag] = json.loads(r.stdout)["results"]
    assert [x["told_level"] for x in docs["--level-calibration"]] == [2, 17.5, 60]
    assert [x["told_level"] for x in docs["--no-level-calibration"]] == [2, 15, 50]
    on, off = docs["--level-calibration"][1]["mean"], docs["--no-level-calibration"][1]["mean"]
    assert on["base_psnr"] == off["base_psnr"] and on["psnr"] != off["psnr"]
