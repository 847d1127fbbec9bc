"""RestorerSpec (scnrestore.spec): the one description of a run's model that the
command line and the Ray workers build from, with real (tiny) checkpoints."""

from __future__ import annotations

import dataclasses
import inspect
import pickle

import numpy as np
import pytest
import typer

from scnrestore import engine
from scnrestore.api import Restorer
from scnrestore.chain import Chain
from scnrestore.cli.options import EXIT_USAGE, make_restorer
from scnrestore.errors import RegistryError
from scnrestore.spec import DEFAULT_OVERLAP, DEFAULT_STEPS, RestorerSpec


def test_denoise_builds_a_restorer_with_every_option_applied(ckpt_dir, photo):
    ckpt = str(ckpt_dir / "denoise.safetensors")
    spec = RestorerSpec(
        "denoise", 1, ckpt, device="cpu", precision="fp32", tile=40, tile_overlap=8,
        tta=True, keep=0.25, calibration=False,
    )  # fmt: skip
    r = spec.build()
    assert type(r) is Restorer and r.task == "denoise"
    e = r.engine
    assert (str(e.device), e.precision, e.tile, e.overlap, e.tta) == ("cpu", "fp32", 40, 8, True)
    assert (r.keep_input, r.keep_luma, r.told_level) == (0.25, None, False)
    # the same pixels as the Restorer written out by hand
    by_hand = Restorer("denoise", ckpt, scale=1, device="cpu", precision="fp32", tile=40,
                       tile_overlap=8, tta=True, keep_input=0.25, told_level=False)  # fmt: skip
    crop = photo[:48, :56]
    assert np.array_equal(r.restore_array(crop, 25), by_hand.restore_array(crop, 25))


def test_keep_goes_to_the_tasks_own_share(ckpt_dir):
    r = RestorerSpec("dejpeg", 1, str(ckpt_dir / "dejpeg.safetensors"), keep=0.5).build()
    assert (r.keep_luma, r.keep_input, r.told_level) == (0.5, None, True)
    r = RestorerSpec("upscale", 2, str(ckpt_dir / "x2.safetensors"), keep=0.5, steps=None).build()
    assert (r.keep_luma, r.keep_input) == (None, None)  # upscale blends nothing back


def test_upscale_builds_the_chain_and_steps_none_the_network_alone(ckpt_dir):
    ckpt = str(ckpt_dir / "x2.safetensors")
    chain = RestorerSpec("upscale", 2, ckpt, precision="fp32", tile=48, steps=("70", "auto"))
    c = chain.build()
    assert isinstance(c, Chain) and chain.chained
    assert (c.scale, c.jpeg, c.denoise, c.model) == (2, 70.0, "auto", ckpt)
    assert (c.engine.precision, c.engine.tile, c.engine.overlap) == ("fp32", 48, DEFAULT_OVERLAP)
    assert RestorerSpec("upscale", 2, ckpt).build().jpeg == "auto"  # DEFAULT_STEPS
    alone = dataclasses.replace(chain, steps=None)
    r = alone.build()
    assert type(r) is Restorer and not alone.chained and r.scale == 2 and r.engine.tile == 48
    # steps are upscale's: another task builds its Restorer whatever they say
    denoise = RestorerSpec("denoise", model=str(ckpt_dir / "denoise.safetensors"))
    assert type(denoise.build()) is Restorer


def test_it_pickles_and_is_a_value():
    spec = RestorerSpec("upscale", 3, "scn-x3", tile=0, steps=["off", "25"])  # type: ignore[arg-type]
    assert spec.steps == ("off", "25")  # a list (JSON, say) kept as the tuple it stands for
    back = pickle.loads(pickle.dumps(spec))
    assert back == spec and hash(back) == hash(spec)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.tile = 64  # type: ignore[misc]
    assert len(pickle.dumps(spec)) < 1000  # a few names and numbers, no model


def test_defaults_are_the_restorers_and_the_commands():
    """What is not said runs as Restorer / Chain would run it by default."""
    params = inspect.signature(Restorer).parameters
    spec = RestorerSpec("upscale")
    for field, param in [("scale", "scale"), ("model", "model"), ("num_scales", "num_scales"),
                         ("device", "device"), ("precision", "precision"), ("tile", "tile"),
                         ("tile_overlap", "tile_overlap"), ("tta", "tta"),
                         ("calibration", "told_level")]:  # fmt: skip
        assert getattr(spec, field) == params[param].default, field
    assert DEFAULT_OVERLAP == engine.DEFAULT_OVERLAP
    assert spec.steps == DEFAULT_STEPS == ("auto", "off")  # upscale's --jpeg, --denoise


def test_unknown_task_and_models_that_cannot_be_had(ckpt_dir, tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown task 'sharpen'"):
        RestorerSpec("sharpen")
    missing = RestorerSpec("denoise", model=str(tmp_path / "none.safetensors"))
    with pytest.raises((RegistryError, OSError)):
        missing.build()
    misfit = RestorerSpec("denoise", model=str(ckpt_dir / "x2.safetensors"))
    with pytest.raises(ValueError, match="x2 network, but denoise needs x1"):
        misfit.build()
    # the command line's wrapper: one line, exit 2
    with pytest.raises(typer.Exit) as exit_:
        make_restorer(missing)
    assert exit_.value.exit_code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    with pytest.raises(typer.Exit):
        make_restorer(misfit)
    assert "x2 network, but denoise needs x1" in capsys.readouterr().err
