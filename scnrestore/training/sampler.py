"""The host sampler: training patches cut and degraded with numpy and Pillow.

``PatchSampler`` draws (input, target, level) batches one patch at a time;
``Prefetcher`` runs it on a background thread. The device sampler
(devicedata.py) makes the same batches with torch ops on the training device.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import numpy as np

from . import degrade
from .config import TrainConfig
from .datasources import draw_cdf

__all__ = ["PatchSampler", "Prefetcher", "patch_detail"]


class PatchSampler:
    """Random (input, target) patch pairs with flips and transposes.

    ``groups`` gives the data source (index into ``cfg.data``'s folders) of
    each image; with several sources each gets its share of the patches.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        images: list[np.ndarray],
        rng: np.random.Generator,
        groups: list[int] | None = None,
    ):
        self.cfg = cfg
        self.rng = rng
        s = cfg.scale
        groups = [g for _ in cfg.image_scales for g in (groups or [0] * len(images))]
        images = [degrade.shrink(im, f) for f in cfg.image_scales for im in images]
        self.hr = [degrade.crop_to_multiple(im, s) for im in images]
        # SR inputs are downscaled once per image, not per patch, so that
        # patches see exactly what a whole downscaled photo looks like.
        self.lr = [degrade.bicubic_downscale(im, s) if s > 1 else im for im in self.hr]
        min_side = cfg.patch * s
        keep = [i for i, im in enumerate(self.hr) if min(im.shape[:2]) >= min_side]
        if not keep:
            raise ValueError(f"no training image is at least {min_side}px on each side")
        self.index = keep
        self.groups = [groups[i] for i in keep]  # the source of each kept image
        self.cdf = draw_cdf(cfg.data, self.groups, min_side)

    def draw_image(self) -> int:
        """The index (into ``hr``/``lr``) of the image the next patch is cut from."""
        rng, n = self.rng, len(self.index)
        if self.cdf is None:  # one source: uniform, as recorded runs drew
            return self.index[int(rng.integers(n))]
        return self.index[min(n - 1, int(np.searchsorted(self.cdf, rng.random(), "right")))]

    def level(self) -> float:
        cfg, rng = self.cfg, self.rng
        if cfg.task == "upscale":
            if cfg.jpeg_range is None or rng.random() < cfg.jpeg_clean:
                return 0.0  # clean: not a JPEG
            return float(rng.integers(cfg.jpeg_range[0], cfg.jpeg_range[1] + 1))
        lo, hi = cfg.level_range
        if cfg.focus is not None and rng.random() < 0.5:
            hi = min(hi, cfg.focus)
        if cfg.task == "denoise":
            return float(rng.uniform(lo, hi))
        return float(rng.integers(lo, int(hi) + 1))  # dejpeg: whole qualities

    def batch(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Inputs (B,h,w,3 uint8), targets (B,h*s,w*s,3 uint8), levels (B,)."""
        cfg, rng = self.cfg, self.rng
        xs, ys, levels = [], [], []
        for _ in range(cfg.batch):
            x, y = self.patch_pair()
            level = self.level()
            if cfg.task == "denoise" and cfg.noise == "real":
                x = _real_noise_patch(cfg, x, level, rng)
            elif cfg.task == "denoise":
                x = degrade.add_gaussian_noise(x, level, rng)
            elif cfg.task == "dejpeg" or level > 0:  # dejpeg, or a JPEG-aware upscale
                x = degrade.jpeg_roundtrip(np.ascontiguousarray(x), int(level))
            k = int(rng.integers(8))
            xs.append(degrade.dihedral(x, k))
            ys.append(degrade.dihedral(y, k))
            levels.append(level)
        return np.stack(xs), np.stack(ys), np.asarray(levels, np.float32)

    def patch_pair(self) -> tuple[np.ndarray, np.ndarray]:
        """One clean (input, target) pair, detail-weighted if the run asks."""
        cfg, rng = self.cfg, self.rng
        p, s = cfg.patch, cfg.scale
        # JPEG patches start on the 16-px MCU grid, as in a whole photo.
        step = 16 if cfg.jpeg_grid else 1
        # At most 64 draws, so a wholly flat data set still trains (on its last draw).
        for _ in range(64):
            i = self.draw_image()
            lr_img, hr_img = self.lr[i], self.hr[i]
            h, w = lr_img.shape[:2]
            top = int(rng.integers(0, (h - p) // step + 1)) * step
            left = int(rng.integers(0, (w - p) // step + 1)) * step
            x = lr_img[top : top + p, left : left + p]
            y = hr_img[top * s : (top + p) * s, left * s : (left + p) * s]
            if cfg.detail_floor <= 0 or rng.random() * cfg.detail_floor < patch_detail(y):
                return x, y
        return x, y


def _real_noise_patch(
    cfg: TrainConfig, x: np.ndarray, sigma: float, rng: np.random.Generator
) -> np.ndarray:
    """A blind real-noise model's input: camera noise, clean, or white noise of
    ``sigma``, by the run's ``noise_mix`` (as the device sampler draws them)."""
    u = rng.random()
    camera, clean = cfg.noise_mix
    if u < camera:
        return degrade.add_camera_noise(np.ascontiguousarray(x), rng, cfg.camera)
    if u < camera + clean:
        return x
    return degrade.add_gaussian_noise(x, sigma, rng)


def patch_detail(patch: np.ndarray) -> float:
    """Mean absolute 4-neighbour Laplacian of a uint8 RGB patch's grey level.

    About 0-2 on smooth gradients and skies, 10-30 on textured photo areas.
    """
    g = patch.astype(np.float32).mean(axis=-1)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(np.abs(lap).mean())


class Prefetcher:
    """Draws batches from a sampler on a background thread.

    Each batch travels with the RNG state *after* it was drawn, so a
    checkpoint records exactly the state that reproduces the next batch the
    loop will use: a resumed run sees the same batches as an unbroken one.
    """

    def __init__(self, sampler: PatchSampler, depth: int = 4):
        self.sampler = sampler
        self.rng_state = sampler.rng.bit_generator.state
        self._q: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="patch-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                item = (*self.sampler.batch(), self.sampler.rng.bit_generator.state)
                while not self._stop.is_set():
                    try:
                        self._q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
        except BaseException as exc:  # surfaced in the training loop
            self._q.put(exc)

    def next(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        item = self._q.get()
        if isinstance(item, BaseException):
            raise item
        xb, yb, lv, self.rng_state = item
        return xb, yb, lv

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
