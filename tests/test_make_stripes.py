"""scripts/make_stripes.py: the stripe training folder is reproducible and sane."""

from __future__ import annotations

import numpy as np
from PIL import Image
from test_guard import _script

stripes = _script("make_stripes", "make_stripes")


def _read(folder) -> list[np.ndarray]:
    return [np.asarray(Image.open(p)) for p in sorted(folder.glob("*.png"))]


def test_same_seed_same_files_and_the_stripes_are_there(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert stripes.main([str(a), "--count", "3", "--size", "96", "--seed", "5"]) == 0
    assert stripes.main([str(b), "--count", "3", "--size", "96", "--seed", "5"]) == 0
    assert stripes.main([str(c), "--count", "3", "--size", "96", "--seed", "6"]) == 0
    ia, ib, ic = _read(a), _read(b), _read(c)
    assert len(ia) == 3 and all(im.shape == (96, 96, 3) and im.dtype == np.uint8 for im in ia)
    assert all(np.array_equal(x, y) for x, y in zip(ia, ib))
    assert not any(np.array_equal(x, y) for x, y in zip(ia, ic))
    for im in ia:
        luma = im.astype(np.float64).mean(axis=2)
        power = np.abs(np.fft.fft2(luma - luma.mean())) ** 2
        f = np.hypot(np.fft.fftfreq(96)[:, None], np.fft.fftfreq(96)[None, :])
        # fine stripes: most of the detail at periods under 10 px
        assert power[f > 1 / 10].sum() > 0.5 * power.sum()


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert stripes.main([str(tmp_path / "x"), "--count", "0"]) == 2
    assert "error:" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
