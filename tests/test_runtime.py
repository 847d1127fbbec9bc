"""Device and precision selection: the CPU bf16 probe and its cache."""

from __future__ import annotations

import json

import pytest

from scnrestore import runtime


def test_measure_cpu_bf16_times_both_precisions():
    m = runtime.measure_cpu_bf16(repeat=1, size=32)
    assert m["fp32_s"] > 0 and m["bf16_s"] > 0
    assert m["speedup"] == pytest.approx(m["fp32_s"] / m["bf16_s"])


needs_probe = pytest.mark.skipif(
    not runtime.cpu_has_bf16() or runtime.cpu_has_amx(),
    reason="the probe runs only on CPUs with AVX512-BF16 and no AMX",
)


@needs_probe
def test_probe_is_measured_once_and_kept_per_cpu_and_torch(tmp_path):
    first = runtime.cpu_bf16_pays(tmp_path)
    data = json.loads((tmp_path / runtime.PROBE_FILE).read_text())
    (key,) = data
    assert "torch" in key
    assert first == (data[key]["speedup"] >= runtime.BF16_MIN_SPEEDUP)
    # The kept result decides from then on: rewrite it both ways.
    for speedup, expected in ((3.0, True), (0.5, False)):
        data[key]["speedup"] = speedup
        (tmp_path / runtime.PROBE_FILE).write_text(json.dumps(data))
        assert runtime.cpu_bf16_pays(tmp_path) is expected
    # Other machines' entries are kept beside this one's.
    data["Other CPU | torch 0"] = {"speedup": 9.0}
    data.pop(key)
    (tmp_path / runtime.PROBE_FILE).write_text(json.dumps(data))
    runtime.cpu_bf16_pays(tmp_path)
    assert set(json.loads((tmp_path / runtime.PROBE_FILE).read_text())) == {
        key,
        "Other CPU | torch 0",
    }


@needs_probe
@pytest.mark.parametrize("content", ["{not json", "[1, 2]", '{"KEY": {"speedup": "fast"}}'])
def test_a_damaged_probe_file_is_replaced(tmp_path, content):
    path = tmp_path / runtime.PROBE_FILE
    path.write_text(content.replace("KEY", runtime._cpu_key()))
    assert isinstance(runtime.cpu_bf16_pays(tmp_path), bool)
    entry = json.loads(path.read_text())[runtime._cpu_key()]
    assert isinstance(entry["speedup"], float)


@needs_probe
def test_a_cache_that_cannot_be_written_still_answers(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache dir should be")
    assert isinstance(runtime.cpu_bf16_pays(blocker / "cache"), bool)
    assert blocker.read_text().startswith("a file")
    assert list(tmp_path.iterdir()) == [blocker]  # no temporary file left behind


@needs_probe
def test_without_a_cache_the_probe_runs_once_per_process(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    # What this process measured decides, where no file can keep it.
    for speedup, expected in ((3.0, True), (0.5, False)):
        monkeypatch.setitem(runtime._MEASURED, runtime._cpu_key(), {"speedup": speedup})
        assert runtime.cpu_bf16_pays(blocker / "cache") is expected


def test_auto_on_the_cpu_follows_the_probe(tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("SCNRESTORE_CACHE_DIR", str(tmp_path))
    auto = runtime.resolve_precision("auto", torch.device("cpu"))
    assert auto == ("bf16" if runtime.cpu_bf16_pays() else "fp32")
    assert runtime.resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert runtime.resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ValueError, match="fp16 is not supported on the CPU"):
        runtime.resolve_precision("fp16", torch.device("cpu"))
