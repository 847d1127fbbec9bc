"""scnrestore.files.atomic_output: a file appears whole or not at all."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys

import hostile as H
import numpy as np
import pytest


def test_atomic_output_leaves_nothing_when_killed_mid_write(tmp_path):
    """kill -9 while the encoder is writing: not even a .part file remains."""
    code = (
        "import os, signal, sys\n"
        "from scnrestore.files import atomic_output\n"
        "with atomic_output(sys.argv[1]) as tmp:\n"
        "    with open(tmp, 'wb') as f:\n"
        "        f.write(b'half an image')\n"
        "        f.flush()\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path / "x.png")])
    assert r.returncode == -signal.SIGKILL
    assert list(tmp_path.iterdir()) == []


def test_atomic_output_replaces_and_keeps_mode(tmp_path):
    from scnrestore.files import atomic_output

    target = tmp_path / "x.bin"
    target.write_bytes(b"old")
    with atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # not in place before the end
    assert target.read_bytes() == b"new"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"broken")
        raise RuntimeError("encoder failed")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["x.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("fallback", ["named .part file", "copy after link refused"])
def test_atomic_output_fallbacks(tmp_path, monkeypatch, fallback):
    """Without O_TMPFILE (other systems) or hard links: still all or nothing."""
    from scnrestore import files, imageio

    if fallback == "named .part file":
        monkeypatch.setattr(files, "_anonymous_file", lambda d: None)
    else:

        def refuse(*a, **kw):
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(files.os, "link", refuse)
    img = imageio.Image(H.pattern(8, 8))
    long = tmp_path / ("L" * 250 + ".png")  # the temporary name must fit too
    imageio.write_image(long, img)
    imageio.write_image(long, img.with_pixels(255 - img.pixels))  # replace
    np.testing.assert_array_equal(imageio.read_image(long).pixels, 255 - img.pixels)
    with pytest.raises(KeyError):  # 5 channels: the encoder fails half way
        imageio.write_image(tmp_path / "bad.png", imageio.Image(np.zeros((4, 4, 5), np.uint8)))
    assert [p.name for p in tmp_path.iterdir()] == [long.name]
