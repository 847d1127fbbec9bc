"""scripts/gallery.py builds README's gallery; here on tiny images, fast."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from PIL import Image as PILImage

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gallery.py"


def test_gallery_builds_labelled_pictures_from_tiny_examples(tmp_path, photo):
    spec = importlib.util.spec_from_file_location("gallery", SCRIPT)
    gallery = importlib.util.module_from_spec(spec)
    sys.modules["gallery"] = gallery  # its dataclass looks its module up
    spec.loader.exec_module(gallery)
    examples = tmp_path / "examples"
    examples.mkdir()
    for name in ("chelsea.png", "coffee.png"):
        PILImage.fromarray(photo[:32, :40]).save(examples / name)
    paths = gallery.build(examples, tmp_path / "out", 16, 2, {"precision": "fp32"})
    assert [p.name for p in paths] == [f"{c.name}.png" for c in gallery.CASES]
    for p in paths:
        with PILImage.open(p) as im:
            assert im.width == 3 * 32 + 4 * 4 and im.height > 32  # three panels and labels
