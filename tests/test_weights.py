"""The registry (scnrestore.weights) and ``scnrestore models``, against a real
HTTP server on 127.0.0.1 (see fileserver.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fileserver import (
    ROOT,
    cache,
    entry,
    payload,
    write_registry,
)

from scnrestore import weights
from scnrestore.weights import RegistryError
from scnrestore.weights.download import DownloadError, retrieve

pytestmark = pytest.mark.usefixtures("isolated")


# -- the registry -----------------------------------------------------------------


def test_shipped_registry_copies_are_identical():
    assert (ROOT / "weights.toml").read_bytes() == (
        ROOT / "scnrestore" / "weights.toml"
    ).read_bytes()


def test_shipped_registry_parses_and_its_entries_are_complete():
    full = {
        "licence",
        "provenance",
        "quality",
        "num_blocks",
        "num_residual_units",
        "width_multiplier",
        "num_scales",
        "image_mean",
        "num_cond_channels",
    }
    for e in weights.load_registry(weights.SHIPPED_REGISTRY).values():
        assert full <= set(e.raw), f"{e.name} lacks {full - set(e.raw)}"
        assert e.embedded or e.urls or e.base_url, e.name


def test_shipped_schedules_are_named_in_the_quality_note_and_ship_carries_them():
    """A schedule the figures were measured with is said in quality_note; ship.py
    (which re-writes the entry for each new stage) keeps the keep_* clause and
    leaves the told_level one, since it drops told_level itself."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("ship", ROOT / "scripts" / "ship.py")
    assert spec and spec.loader
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    seen = 0
    for e in weights.load_registry(weights.SHIPPED_REGISTRY).values():
        note = e.raw.get("quality_note", "")
        for key in ("keep_input", "keep_luma", "told_level"):
            if key in e.raw:
                seen += 1
                clause = ship.schedule_clause(note, key)
                assert clause.startswith(f"{key} applied (") and clause.endswith(")"), e.name
                others = {"keep_input", "keep_luma", "told_level"} - {key}
                assert not any(o in clause for o in others), clause
    assert seen >= 3  # denoise keep_input; dejpeg keep_luma and told_level
    assert ship.schedule_clause("PSNR RGB vs input", "keep_luma") == ""
    # A JPEG-aware upscaler's routing survives a new stage (without joint_range
    # the chain would never run the model; scn-x4-jpeg stage 4 once lost it).
    for e in weights.load_registry(weights.SHIPPED_REGISTRY).values():
        kept = ship.kept_routing(e.raw)
        assert kept == {k: e.raw[k] for k in ("joint_range", "plain_from") if k in e.raw}
        assert ("joint_range" in kept) == (e.raw.get("task") == "upscale" and "jpeg" in e.name)
    assert ship.kept_routing(None) == {}


def test_resolve_downloads_with_base_url_and_env_override(server, tmp_path, monkeypatch):
    data, _ = payload()
    server.add("/a/m.bin", data)
    server.add("/b/m.bin", data)
    write_registry(
        Path(os.environ["SCNRESTORE_REGISTRY"]), {"m": entry(data)}, base_url=server.url + "/a/"
    )
    path, hp, e = weights.resolve("m")
    assert path.read_bytes() == data and e is not None and e.name == "m" and hp == {}
    assert server.log == [("/a/m.bin", None, 200)]

    monkeypatch.setenv("SCNRESTORE_CACHE_DIR", str(tmp_path / "cache2"))
    monkeypatch.setenv("SCNRESTORE_WEIGHTS_URL", server.url + "/b")
    assert weights.download_urls(e) == [server.url + "/b/m.bin"]
    assert weights.resolve("m")[0].read_bytes() == data
    assert server.log[-1] == ("/b/m.bin", None, 200)

    mirror = tmp_path / "airgap"  # a file:// mirror
    mirror.mkdir()
    (mirror / "m.bin").write_bytes(data)
    monkeypatch.setenv("SCNRESTORE_CACHE_DIR", str(tmp_path / "cache3"))
    monkeypatch.setenv("SCNRESTORE_WEIGHTS_URL", mirror.as_uri())
    assert weights.resolve("m")[0].read_bytes() == data and len(server.log) == 2


def test_env_mirror_goes_first_then_the_entry_urls(server, tmp_path, monkeypatch):
    data, _ = payload()
    server.add("/m.bin", data)
    reg = write_registry(tmp_path / "r.toml", {"m": entry(data, urls=[server.url + "/m.bin"])})
    e = weights.load_registry(reg)["m"]
    assert weights.download_urls(e) == [server.url + "/m.bin"]
    monkeypatch.setenv("SCNRESTORE_WEIGHTS_URL", server.url + "/mirror/")
    assert weights.download_urls(e) == [server.url + "/mirror/m.bin", server.url + "/m.bin"]
    assert weights.fetch(e).read_bytes() == data
    assert [s for _, _, s in server.log] == [404, 200]


def test_user_registry_is_merged_over_the_shipped_one(tmp_path):
    data, _ = payload(10)
    write_registry(Path(os.environ["SCNRESTORE_REGISTRY"]), {"mine": entry(data)})
    reg = weights.load_registry()
    assert "mine" in reg and reg["mine"].source == Path(os.environ["SCNRESTORE_REGISTRY"])


def test_unknown_registry_path_from_env_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("SCNRESTORE_REGISTRY", str(tmp_path / "nope.toml"))
    with pytest.raises(RegistryError, match="nope.toml"):
        weights.load_registry()


def test_malformed_registry_names_the_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[models.x\ntask = 1\n")
    with pytest.raises(RegistryError, match="bad.toml: not valid TOML"):
        weights.load_registry(bad)


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"sha256": None}, "lacks required field(s) sha256"),
        ({"size": None, "file": None}, "lacks required field(s) file, size"),
        ({"task": "colorize"}, "unknown task"),
        ({"sha256": "abc"}, "sha256 must be 64 hex digits"),
        ({"size": "big"}, "size must be a positive"),
        ({"task": "upscale"}, "needs scale"),
        ({"task": "upscale", "scale": 8}, "scale must be 2, 3 or 4"),
        ({"urls": "http://x/m.bin"}, "urls must be a list"),
        ({"num_blocks": 0}, "num_blocks must be an integer"),
        ({"sigma_range": [75, 1]}, "sigma_range must be [low, high]"),
        ({"plain_from": 101}, "plain_from must be a JPEG quality, 5-100"),
        ({"plain_from": "98"}, "plain_from must be a JPEG quality, 5-100"),
        ({"licence": 3}, "licence must be a string"),
        ({"sah256": "x"}, "unknown field(s) sah256"),
        ({"name": "other"}, "differs from the table name"),
    ],
)
def test_bad_entries_name_file_and_entry(tmp_path, fields, complaint):
    data, _ = payload(10)
    raw = {k: v for k, v in (entry(data) | fields).items() if v is not None}
    reg = write_registry(tmp_path / "reg.toml", {"my-model": raw})
    with pytest.raises(RegistryError) as exc:
        weights.load_registry(reg)
    msg = str(exc.value)
    assert msg.startswith(f"{reg}: models.my-model: ") and complaint in msg, msg


def test_bad_top_level_is_reported(tmp_path):
    reg = tmp_path / "reg.toml"
    reg.write_text("format = 2\n[models]\n")
    with pytest.raises(RegistryError, match="reg.toml: format 2"):
        weights.load_registry(reg)
    reg.write_text("models = 3\n")
    with pytest.raises(RegistryError, match=r"reg.toml: \[models\] must be a table"):
        weights.load_registry(reg)


@pytest.mark.parametrize(
    ("name", "file"),
    [
        ("../evil", "m.bin"),
        ("a/b", "m.bin"),
        ("ok", "../m.bin"),
        ("ok", "/etc/passwd"),
        ("ok", "sub/m.bin"),
        ("ok", "sub\\m.bin"),
        ("ok", ".."),
        ("ok", ".hidden"),
        ("ok", "m.bin.part"),
    ],
)
def test_names_cannot_escape_the_cache(tmp_path, name, file):
    data, _ = payload(10)
    reg = write_registry(tmp_path / "reg.toml", {name: entry(data, file=file)})
    with pytest.raises(RegistryError, match="plain"):
        weights.load_registry(reg)


def test_downloader_refuses_unsafe_file_names(tmp_path):
    for bad in ("../m.bin", "/tmp/m.bin", "a/b", "", "m.lock"):
        with pytest.raises(DownloadError, match="plain file name"):
            retrieve(bad, sha256="0" * 64, size=1, urls=["http://x/"], cache=tmp_path)
    assert os.listdir(tmp_path) == ["user-weights.toml"]


@pytest.mark.parametrize("url", ["ftp://host/m.bin", "gopher://h/m", "c:\\models\\m.bin", "//h/m"])
def test_only_http_https_file_urls(tmp_path, monkeypatch, url):
    data, _ = payload(10)
    reg = write_registry(tmp_path / "reg.toml", {"m": entry(data, urls=[url])})
    with pytest.raises(RegistryError, match=r"models\.m: urls"):
        weights.load_registry(reg)
    reg = write_registry(tmp_path / "reg.toml", {"m": entry(data)}, base_url=url)
    with pytest.raises(RegistryError, match="base_url"):
        weights.load_registry(reg)
    with pytest.raises(DownloadError):
        retrieve("m.bin", sha256="0" * 64, size=1, urls=[url], cache=tmp_path / "c")
    reg = write_registry(tmp_path / "reg.toml", {"m": entry(data)}, base_url="http://h/")
    monkeypatch.setenv("SCNRESTORE_WEIGHTS_URL", url)
    with pytest.raises(RegistryError, match="SCNRESTORE_WEIGHTS_URL"):
        weights.download_urls(weights.load_registry(reg)["m"])


def test_entry_without_any_url_says_so(tmp_path):
    data, _ = payload(10)
    reg = write_registry(tmp_path / "reg.toml", {"m": entry(data)})
    with pytest.raises(RegistryError, match="no base_url"):
        weights.fetch(weights.load_registry(reg)["m"])


# -- the command line ---------------------------------------------------------------


def cli(*args: Any, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "scnrestore", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


@pytest.fixture()
def real_model(server, tmp_path) -> tuple[bytes, Path]:
    """A real tiny x2 SCN served at /scn-test-x2.safetensors, in the user registry."""
    from conftest import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "src.safetensors", scale=2)
    data = ckpt.read_bytes()
    server.add("/w/scn-test-x2.safetensors", data)
    fields = entry(
        data,
        file="scn-test-x2.safetensors",
        task="upscale",
        scale=2,
        num_blocks=2,
        num_residual_units=8,
        width_multiplier=2,
        num_scales=3,
        image_mean=0.5,
        num_cond_channels=0,
        licence="MIT",
        provenance="tests/conftest.py make_checkpoint",
        quality={"set5_psnr_y": 30.5},
        urls=["scn-test-x2.safetensors"],
    )
    reg = write_registry(
        Path(os.environ["SCNRESTORE_REGISTRY"]), {"scn-test-x2": fields}, base_url=server.url + "/w"
    )
    return data, reg


def test_cli_models_list_info_path_verify(real_model, server, tmp_path):
    data, _ = real_model
    r = cli("models", "list", "--json")
    assert r.returncode == 0, r.stderr
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert rows["scn-x2"]["where"] == "embedded"  # the shipped model is listed too
    row = rows["scn-test-x2"]
    assert row["where"] == "remote" and row["size"] == len(data)
    assert row["urls"] == [server.url + "/w/scn-test-x2.safetensors"] and server.log == []

    r = cli("models", "info", "scn-test-x2")
    assert r.returncode == 0, r.stderr
    for text in (
        "task: upscale",
        "scale: 2",
        f"size: {len(data)}",
        "licence: MIT",
        "provenance: tests/conftest.py",
        "quality: set5_psnr_y 30.5",
        "where: remote",
        hashlib.sha256(data).hexdigest(),
        "num_blocks: 2",
    ):
        assert text in r.stdout, (text, r.stdout)

    r = cli("models", "verify")
    assert r.returncode == 0 and "missing" in r.stdout and "0 bad" in r.stdout

    r = cli("models", "path", "scn-test-x2")
    assert r.returncode == 0, r.stderr
    path = Path(r.stdout.strip())
    assert path == cache(tmp_path) / "scn-test-x2.safetensors" and path.read_bytes() == data
    assert cli("models", "path", "scn-test-x2").stdout.strip() == str(path)
    assert len(server.log) == 1  # cached: no second download

    r = cli("models", "list")
    assert r.returncode == 0 and "scn-test-x2" in r.stdout and "cached" in r.stdout
    assert "x2" in r.stdout and "set5_psnr_y 30.5" in r.stdout  # unknown keys: as they are
    # the shipped models' headline figures, in words
    flat = " ".join(r.stdout.split())
    x2, den = rows["scn-x2"]["quality"], rows["scn-denoise"]["quality"]
    assert f"PSNR-Y {x2['val_psnr_y']:.2f}, {x2['gain']:+.2f} vs bicubic" in flat
    sigmas = " / ".join(f"{den[f'val_psnr_{lvl}']:.2f}" for lvl in (15, 25, 50))
    assert f"{sigmas} dB at σ 15 / 25 / 50" in flat
    assert "q 5–100" in flat and "qy_" not in flat and "val_psnr" not in flat

    r = cli("models", "verify")
    assert r.returncode == 0 and "good    scn-test-x2" in r.stdout
    shipped = sum(row["where"] == "embedded" for row in rows.values())
    assert shipped >= 1 and f"{shipped + 1} good, 0 bad" in r.stdout  # and the embedded ones

    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, one bit flipped
    r = cli("models", "verify")
    assert r.returncode == 1 and "bad" in r.stdout and "sha256" in r.stdout
    assert not path.exists()  # deleted: the next use downloads it again


def test_cli_models_path_errors(real_model, server, tmp_path):
    r = cli("models", "path", "no-such-model")
    assert r.returncode == 2 and "unknown model 'no-such-model'" in r.stderr
    r = cli("models", "path", "scn-test-x2", "--offline")
    assert r.returncode == 1 and "scn-test-x2.safetensors is not in the cache" in r.stderr
    assert str(cache(tmp_path)) in r.stderr and server.log == []
    server.files.clear()
    r = cli("models", "path", "scn-test-x2")
    assert r.returncode == 1 and "HTTP 404" in r.stderr and len(r.stderr.splitlines()) == 1


def test_cli_models_download(real_model, server, tmp_path):
    r = cli("models", "download", "--all")
    assert r.returncode == 0, r.stderr
    assert "scn-test-x2: " in r.stdout and len(server.log) == 1
    r = cli("models", "download", "scn-test-x2", "nope")
    assert r.returncode == 2 and "unknown model 'nope'" in r.stderr


def test_registry_model_loads_and_runs(real_model, server, tmp_path, photo):
    from PIL import Image

    from scnrestore import load_model

    model = load_model("scn-test-x2")  # downloaded, verified, registry hparams applied
    assert model.scale == 2 and model.num_scales == 3
    Image.fromarray(photo[:32, :40]).save(tmp_path / "p.png")
    r = cli("upscale", tmp_path / "p.png", "-s", "2", "--model", "scn-test-x2", "--offline")
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "p_x2.png") as im:
        assert im.size == (80, 64)
    assert len(server.log) == 1

    r = cli(
        "upscale",
        tmp_path / "p.png",
        "-s",
        "2",
        "--model",
        "scn-test-x2",
        "--offline",
        "--overwrite",
        env={"SCNRESTORE_CACHE_DIR": str(tmp_path / "empty")},
    )
    assert r.returncode == 2
    assert "scn-test-x2.safetensors is not in the cache" in r.stderr and "empty" in r.stderr


def test_measured_loss_reads_negative_gains_for_lighter_levels(tmp_path: Path) -> None:
    data, _ = payload(10)
    gains = {"gain_2": -2.5, "gain_5": -0.3, "gain_15": 6.0, "val_psnr_2": 39.4}
    write_registry(Path(os.environ["SCNRESTORE_REGISTRY"]), {
        "dn": entry(data, quality=gains),
        "dj": entry(data, task="dejpeg",
                    quality={"gain_40": 0.6, "gain_80": -0.1, "gain_95": -0.4}),
        "plain": entry(data, quality="PSNR 30"),
    })  # fmt: skip
    reg = weights.load_registry()
    dn, dj = reg["dn"], reg["dj"]
    # denoise: a loss at σ L stands for every σ <= L; the nearest measured one is named
    assert dn.measured_loss(1.0) == (2.0, -2.5)
    assert dn.measured_loss(3.0) == (5.0, -0.3)
    assert dn.measured_loss(5.0) == (5.0, -0.3)
    assert dn.measured_loss(5.5) is None and dn.measured_loss(15) is None
    # dejpeg: lighter means higher quality
    assert dj.measured_loss(85) == (80.0, -0.1) and dj.measured_loss(95) == (95.0, -0.4)
    assert dj.measured_loss(60) is None
    assert reg["plain"].measured_loss(1.0) is None
