"""Training data from several folders, each with a share of the patches.

``TrainConfig.data`` is either one folder as a plain string (how every run
before several folders recorded it; its patches are drawn exactly as then)
or a list of sources, one dict per folder::

    {"path": "../shared/data/train291", "share": 0.7,
     "images": 291, "fingerprint": "3f0c9a..."}

``share`` is the fraction of patches cut from that folder (images within it
uniformly, then ``image_scales`` as for one folder); the shares sum to 1.
``images`` and ``fingerprint`` are filled in when a run starts and checked on
``--resume``: the fingerprint hashes each image's name without its extension
and its pixel size (headers only, cheap), so a folder that lost, gained,
renamed or resized an image refuses to resume, while a lossless re-encoding
(``scripts/train_gpu.sh prep`` packs PNGs as WebP) still matches.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "SHARE_TOLERANCE",
    "check_sources",
    "draw_cdf",
    "image_paths",
    "load_sources",
    "normalise_data",
    "parse_sources",
    "record_sources",
    "sources",
]

# Shares written by hand (0.33, 0.33, 0.34 or 0.33 three times) sum to 1
# within this; they are then scaled to sum to exactly 1.
SHARE_TOLERANCE = 0.011


def _split(text: str) -> tuple[str, float | None]:
    """'DIR:0.7' -> ('DIR', 0.7); 'DIR' -> ('DIR', None). A tail after the
    last colon that is not a number belongs to the path."""
    path, sep, tail = text.rpartition(":")
    if not sep or not path:
        return text, None
    try:
        return path, float(tail)
    except ValueError:
        return text, None


def parse_sources(texts: list[str]) -> list[dict[str, Any]]:
    """``--data`` values ('DIR' or 'DIR:SHARE') as sources with their shares.

    Folders named without a share split what the others leave evenly; a
    ValueError (one line) says what is wrong otherwise.
    """
    if not texts:
        raise ValueError("--data needs at least one folder")
    pairs = [_split(t) for t in texts]
    given = [s for _, s in pairs if s is not None]
    rest = [p for p, s in pairs if s is None]
    left = 1.0 - sum(given)
    if rest and left <= SHARE_TOLERANCE:
        raise ValueError(
            f"--data shares {' + '.join(f'{s:g}' for s in given)} leave nothing for "
            + ", ".join(rest)
        )
    each = left / len(rest) if rest else 0.0
    return normalise_data([{"path": p, "share": each if s is None else s} for p, s in pairs])


def normalise_data(data: Any) -> str | list[dict[str, Any]]:
    """A checked ``TrainConfig.data``: a plain string stays one folder as
    recorded runs have it; a list of sources (dicts, or 'DIR:SHARE' strings)
    gets its shares checked and scaled to sum to exactly 1."""
    if isinstance(data, str | os.PathLike):
        return str(data)
    if data and all(isinstance(d, str) for d in data):
        return parse_sources(list(data))
    items = [dict(d) for d in data]
    if not items:
        raise ValueError("data needs at least one folder")
    if len(items) == 1 and items[0].get("share") is None:
        items[0]["share"] = 1.0
    paths = [str(d["path"]) for d in items]
    twice = sorted({p for p in paths if paths.count(p) > 1})
    if twice:
        raise ValueError(f"--data names a folder twice: {', '.join(twice)}")
    for d in items:
        share = d.get("share")
        if share is None or not 0 < float(share) <= 1:
            raise ValueError(f"--data share of {d['path']} must lie in (0, 1], not {share}")
    total = sum(float(d["share"]) for d in items)
    if abs(total - 1.0) > SHARE_TOLERANCE:
        listed = " + ".join(f"{float(d['share']):g}" for d in items)
        listed += f" = {total:g}" if len(items) > 1 else ""
        raise ValueError(f"--data shares must sum to 1, not {listed}")
    for d in items:
        d["path"], d["share"] = str(d["path"]), float(d["share"]) / total
    return items


def sources(data: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sources of ``TrainConfig.data`` (one folder: share 1)."""
    return [{"path": data, "share": 1.0}] if isinstance(data, str) else data


def image_paths(folder: str) -> list[Path]:
    """The files ``evaluate.load_images`` reads, in its order."""
    from ..imageio.formats import IMAGE_EXTS

    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTS)


def scan_folder(folder: str) -> dict[str, Any]:
    """A folder's image count and fingerprint (names without extension and
    pixel sizes, hashed; only the headers are read)."""
    from PIL import Image

    lines = []
    for p in image_paths(folder):
        with Image.open(p) as im:
            lines.append(f"{p.stem}\t{im.size[0]}x{im.size[1]}\n")
    digest = hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()[:16]
    return {"images": len(lines), "fingerprint": digest}


def record_sources(data: str | list[dict[str, Any]]) -> None:
    """Fill in each source's image count and fingerprint where not recorded."""
    if isinstance(data, str):
        return  # one folder as before: recorded as it always was
    for d in data:
        if "fingerprint" not in d:
            d.update(scan_folder(d["path"]))


def check_sources(data: str | list[dict[str, Any]]) -> None:
    """Refuse (ValueError, one line) to resume when a recorded folder is
    missing or its images changed since the run began."""
    if isinstance(data, str):
        return  # recorded before folders were fingerprinted
    for d in data:
        if "fingerprint" not in d:
            continue
        if not Path(d["path"]).is_dir():
            raise ValueError(f"cannot resume: data folder {d['path']} is missing")
        now = scan_folder(d["path"])
        if now["fingerprint"] != d["fingerprint"]:
            was, is_ = d.get("images", "?"), now["images"]
            what = f"{was} images recorded, {is_} now"
            if was == is_:
                what = f"{is_} images, but names or pixel sizes differ"
            raise ValueError(
                f"cannot resume: the images in data folder {d['path']} changed ({what})"
            )


def load_sources(data: str | list[dict[str, Any]]) -> tuple[list[np.ndarray], list[int]]:
    """Every source's images, in order, and the source index of each."""
    from .evaluate import load_images

    images: list[np.ndarray] = []
    groups: list[int] = []
    for g, d in enumerate(sources(data)):
        loaded = [im for _, im in load_images(d["path"])]
        images += loaded
        groups += [g] * len(loaded)
    return images, groups


def draw_cdf(
    data: str | list[dict[str, Any]], groups: list[int], min_side: int
) -> np.ndarray | None:
    """Cumulative draw weights of the kept (image, factor) pairs whose
    sources are ``groups``: each source gets its share, spread evenly over its
    pairs. None for one source: pairs drawn uniformly, exactly as recorded
    single-folder runs drew them."""
    srcs = sources(data)
    if len(srcs) == 1:
        return None
    counts = np.bincount(np.asarray(groups, np.int64), minlength=len(srcs))
    for d, n in zip(srcs, counts, strict=True):
        if n == 0:
            raise ValueError(
                f"{d['path']}: no training image is at least {min_side}px on each side"
            )
    shares = np.array([d["share"] for d in srcs], np.float64)
    g = np.asarray(groups, np.int64)
    cdf = np.cumsum(shares[g] / counts[g])
    return cdf / cdf[-1]
