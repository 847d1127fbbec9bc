"""Training patches cut and degraded with torch ops on the training device.

The host sampler (``sampler.PatchSampler``) cuts each patch with numpy and
saves each JPEG patch with Pillow, one at a time, on a background thread: on
a GPU the card waits on it. ``DeviceSampler`` does the Pillow work once, at
start-up, and keeps what it made on the device as uint8 tensors:

* every training image (and its shrunk copies, ``image_scales``), cropped to
  a multiple of the scale: the targets;
* the bicubic low-resolution version of each whole image (``degrade``'s
  Pillow resize, exactly as the host sampler makes it): the SR inputs;
* for JPEG inputs (dejpeg, and upscale with ``jpeg_range``) a *bank*: each
  input image saved as a JPEG and decoded, once per quality level of
  :func:`bank_qualities` (every ``jpeg_bank_step``-th quality of the range,
  and its top), made by parallel processes;
* with ``detail_floor``, a summed-area table of each target image's
  |Laplacian| (see ``sampler.patch_detail``), so a patch's detail is four reads.

Per step everything is torch on the device, drawn from one
``torch.Generator`` there (its state goes into the checkpoint): patch
positions (on the 16-px MCU grid for JPEG inputs), the detail-weighted
redraws (64 candidates per patch scored at once, the first kept; the last if
none is), the eight flips/transposes (folded into the gather indices), the
level of each patch, and Gaussian noise (clipped and rounded to 8 bits, as
``degrade.add_gaussian_noise``).

Deviations from the host sampler, by design:

* JPEG quality is quantised to the bank's levels (run.json records them);
  levels are drawn uniformly over the bank levels of the range (below the
  focus for half of each batch, as before).
* A JPEG patch is a window of a whole-image JPEG, not a patch saved alone:
  the blocks inside are the same, but the decoder's chroma upsampling at the
  patch border sees the neighbouring blocks, as in a crop of a real photo.
* The random stream differs, so a run replays only with the pipeline it
  started with (``data_pipeline`` "auto" keeps the one a checkpoint holds).
"""

from __future__ import annotations

import mmap
import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from . import degrade
from .config import TrainConfig
from .datasources import draw_cdf

if TYPE_CHECKING:
    import torch

__all__ = ["DeviceSampler", "bank_qualities", "choose_pipeline", "condition_values"]

MAX_DRAWS = 64  # candidates per patch with a detail floor (the host sampler's redraw cap)


def bank_qualities(cfg: TrainConfig) -> list[int]:
    """The JPEG qualities a run's bank holds (empty: the run has no JPEG inputs).

    Every ``jpeg_bank_step``-th quality from the bottom of the range, and the
    top: quality_range 5-95 gives 5, 10, ..., 95 (19 levels); jpeg_range
    30-100 gives 30, 35, ..., 100 (15 levels).
    """
    if cfg.task == "dejpeg":
        lo, hi = (int(q) for q in cfg.quality_range)
    elif cfg.jpeg_range is not None:
        lo, hi = cfg.jpeg_range
    else:
        return []
    qs = list(range(lo, hi + 1, cfg.jpeg_bank_step))
    if qs[-1] != hi:
        qs.append(hi)
    return qs


def choose_pipeline(cfg: TrainConfig, device: Any, state: dict[str, Any] | None = None) -> str:
    """The pipeline, "host" or "device", for ``cfg.data_pipeline`` on ``device``.

    "auto": a resumed run keeps the pipeline its checkpoint was made with (so
    it replays); a new run uses the device pipeline everywhere: on a GPU the
    host sampler starves the card, and on the CPU the device pipeline is also
    the cheaper one per patch (benchmarks/pipeline.py), leaving the cores to
    the model.
    """
    if cfg.data_pipeline != "auto":
        return cfg.data_pipeline
    if state is not None:
        return "device" if "device_rng" in state else "host"
    return "device"


def condition_values(task: str, levels: torch.Tensor) -> torch.Tensor:
    """``tasks.condition_value`` of each level, as a float32 tensor (no host sync)."""
    import torch

    from ..tasks import LEVEL_ENCODING

    origin, span = LEVEL_ENCODING[task]
    lv = levels.double()
    cv = (lv - origin) / span
    if task == "upscale":  # a clean input (level 0) is told 0
        cv = torch.where(lv > 0, cv, torch.zeros_like(lv))
    return cv.float()


def _dihedral_grids(p: int) -> np.ndarray:
    """(8, 2, p, p): the source row and column of each output pixel under
    ``degrade.dihedral``'s op k (so gathering with them *is* the op)."""
    ind = np.stack(np.indices((p, p)), -1)
    return np.stack([degrade.dihedral(ind, k).transpose(2, 0, 1) for k in range(8)])


# -- the JPEG bank, made by worker processes ------------------------------------
# Forked workers inherit the source images and write each decoded JPEG
# straight into a shared anonymous mapping: nothing large is pickled.
_SRC: list[np.ndarray] = []
_OFFSETS: list[int] = []
_BANK: np.ndarray | None = None


def _encode(job: tuple[int, int, int]) -> None:
    i, j, q = job
    img = _SRC[i]
    n = img.shape[0] * img.shape[1]
    assert _BANK is not None
    _BANK[j, _OFFSETS[i] : _OFFSETS[i] + n] = degrade.jpeg_roundtrip(img, q).reshape(n, 3)


def make_bank(
    images: list[np.ndarray], qualities: list[int], workers: int | None = None, lead: int = 0
) -> np.ndarray:
    """(lead + len(qualities), total pixels, 3) uint8: each image JPEG-saved
    and decoded at each quality, images concatenated row-major in order,
    after ``lead`` entries left zero for the caller.

    Made by ``workers`` processes (default: every CPU this process may use);
    0 or 1, or a platform without ``fork``: in this process.
    """
    global _SRC, _OFFSETS, _BANK
    sizes = [im.shape[0] * im.shape[1] for im in images]
    offsets = [int(v) for v in np.cumsum([0, *sizes[:-1]])]
    total = int(sum(sizes))
    shape = (lead + len(qualities), total, 3)
    nbytes = max(1, int(np.prod(shape)))
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    jobs = [(i, lead + j, q) for j, q in enumerate(qualities) for i in range(len(images))]
    workers = min(workers, len(jobs))
    forking = workers > 1 and "fork" in mp.get_all_start_methods()
    buf = mmap.mmap(-1, nbytes) if forking else bytearray(nbytes)
    bank = np.frombuffer(buf, np.uint8, int(np.prod(shape))).reshape(shape)
    _SRC, _OFFSETS, _BANK = [np.ascontiguousarray(im) for im in images], offsets, bank
    try:
        if forking:
            with ProcessPoolExecutor(workers, mp_context=mp.get_context("fork")) as pool:
                for _ in pool.map(_encode, jobs, chunksize=max(1, len(jobs) // (8 * workers))):
                    pass
        else:
            for job in jobs:
                _encode(job)
    finally:
        _SRC, _OFFSETS, _BANK = [], [], None
    return bank


def _targets(
    cfg: TrainConfig, images: list[np.ndarray], groups: list[int] | None
) -> tuple[list[np.ndarray], list[int]]:
    """Exactly the host sampler's target images (shrunk copies, cropped to
    the scale, those large enough for a patch) and each one's data source."""
    s, side = cfg.scale, cfg.patch * cfg.scale
    hr_all = [degrade.shrink(im, f) for f in cfg.image_scales for im in images]
    hr_all = [degrade.crop_to_multiple(im, s) for im in hr_all]
    groups = [g for _ in cfg.image_scales for g in (groups or [0] * len(images))]
    kept = [i for i, im in enumerate(hr_all) if min(im.shape[:2]) >= side]
    if not kept:
        raise ValueError(f"no training image is at least {side}px on each side")
    return [hr_all[i] for i in kept], [groups[i] for i in kept]


class DeviceSampler:
    """Batches of (input, target, level) made on ``device`` from tensors kept there.

    Same interface as ``sampler.Prefetcher``: ``next()`` gives inputs
    (B,p,p,3 uint8), targets (B,p*s,p*s,3 uint8) and levels (B, float32), all
    tensors on the device; ``rng_state`` is the (unused, kept) numpy
    generator's state; ``generator`` draws everything.
    """

    def __init__(
        self,
        cfg: TrainConfig,
        images: list[np.ndarray],
        device: Any,
        rng: np.random.Generator | None = None,
        workers: int | None = None,
        groups: list[int] | None = None,
    ):
        import torch

        self.cfg = cfg
        self.camera = cfg.camera  # drawn from per camera patch, made once
        self.device = device = torch.device(device)
        self.rng = rng if rng is not None else np.random.default_rng(cfg.seed)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(cfg.seed)
        s, p = cfg.scale, cfg.patch
        keep, self.groups = _targets(cfg, images, groups)
        self.hr_images = keep
        self.lr_images = [degrade.bicubic_downscale(im, s) if s > 1 else im for im in keep]
        self.qualities = bank_qualities(cfg)
        self.step = 16 if cfg.jpeg_grid else 1

        def flat(ims: list[np.ndarray]) -> np.ndarray:
            return np.concatenate([im.reshape(-1, 3) for im in ims])

        def t(a: Any, dtype: Any = torch.int64) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a), dtype=dtype).to(device)

        cdf = draw_cdf(cfg.data, self.groups, p * s)  # None: one data source, uniform
        self.cdf = None if cdf is None else t(cdf, torch.float64)
        lr_hw = np.array([im.shape[:2] for im in self.lr_images], np.int64)
        hr_hw = np.array([im.shape[:2] for im in keep], np.int64)
        lr_sizes = lr_hw[:, 0] * lr_hw[:, 1]
        hr_sizes = hr_hw[:, 0] * hr_hw[:, 1]
        self.n_lr = int(lr_sizes.sum())
        self.lr_off = t(np.cumsum(lr_sizes) - lr_sizes)
        self.hr_off = t(np.cumsum(hr_sizes) - hr_sizes)
        self.lr_w = t(lr_hw[:, 1])
        self.hr_w = t(hr_hw[:, 1])
        self.ntop = t((lr_hw[:, 0] - p) // self.step + 1)
        self.nleft = t((lr_hw[:, 1] - p) // self.step + 1)
        # Inputs: entry 0 the clean LR (the target itself when s = 1), then
        # one entry per bank quality; all in one flat (entries * pixels, 3).
        if self.qualities:
            bank = make_bank(self.lr_images, self.qualities, workers, lead=1)
            bank[0] = flat(self.lr_images)
            self.src = torch.from_numpy(bank.reshape(-1, 3)).to(device)
            del bank
        else:
            self.src = torch.from_numpy(flat(self.lr_images)).to(device)
        self.hr = self.src if s == 1 else torch.from_numpy(flat(keep)).to(device)
        self.bank_q = t(self.qualities or [0], torch.float32)
        grids = _dihedral_grids(p)
        self.gy, self.gx = t(grids[:, 0]), t(grids[:, 1])
        grids = _dihedral_grids(p * s) if s > 1 else grids
        self.hy, self.hx = t(grids[:, 0]), t(grids[:, 1])
        if cfg.detail_floor > 0:
            self._make_detail_tables(keep)

    # -- detail: sum of |3 * Laplacian of (r + g + b)| over a window, exact ints
    def _make_detail_tables(self, images: list[np.ndarray]) -> None:
        import torch

        tables, offs, widths = [], [], []
        n = 0
        for im in images:
            g = torch.from_numpy(im.astype(np.int64).sum(-1)).to(self.device)
            lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
            lap = lap.abs()
            sat = torch.nn.functional.pad(lap.cumsum(0).cumsum(1), (1, 0, 1, 0))
            tables.append(sat.reshape(-1))
            offs.append(n)
            widths.append(sat.shape[1])
            n += sat.numel()
        self.sat = torch.cat(tables)
        self.sat_off = torch.tensor(offs, device=self.device)
        self.sat_w = torch.tensor(widths, device=self.device)

    def detail(self, img: torch.Tensor, y0: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """``sampler.patch_detail`` of the target windows at (y0, x0) of images ``img``."""
        side = self.cfg.patch * self.cfg.scale
        off, w = self.sat_off[img], self.sat_w[img]
        a, b = y0 + side - 2, x0 + side - 2

        def at(r: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
            return self.sat[off + r * w + c]

        total = at(a, b) - at(y0, b) - at(a, x0) + at(y0, x0)
        return total.double() / (3.0 * (side - 2) ** 2)

    # -- one batch ------------------------------------------------------------
    def positions(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Image (index into ``hr_images``), top and left (LR pixels) of each patch."""
        import torch

        cfg, g = self.cfg, self.generator
        b = cfg.batch
        k = MAX_DRAWS if cfg.detail_floor > 0 else 1
        u = torch.rand((b, k, 4), generator=g, device=self.device, dtype=torch.float64)
        n = len(self.hr_images)
        if self.cdf is None:  # one source: uniform, as recorded runs drew
            img = (u[..., 0] * n).long().clamp_(max=n - 1)
        else:  # each source its share: the same uniform through the weights' cdf
            img = torch.searchsorted(self.cdf, u[..., 0].contiguous(), right=True).clamp_(max=n - 1)
        ntop, nleft = self.ntop[img], self.nleft[img]
        top = torch.minimum((u[..., 1] * ntop).long(), ntop - 1) * self.step
        left = torch.minimum((u[..., 2] * nleft).long(), nleft - 1) * self.step
        if k > 1:
            s = cfg.scale
            ok = u[..., 3] * cfg.detail_floor < self.detail(img, top * s, left * s)
            first = ok.to(torch.int32).argmax(1)  # the first accepted draw
            pick = torch.where(ok.any(1), first, torch.full_like(first, k - 1)).unsqueeze(1)
            return img.gather(1, pick)[:, 0], top.gather(1, pick)[:, 0], left.gather(1, pick)[:, 0]
        return img[:, 0], top[:, 0], left[:, 0]

    def levels(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Each patch's level (σ, quality, or 0 = clean) and its input entry (0 = clean)."""
        import torch

        cfg, g, dev = self.cfg, self.generator, self.device
        b = cfg.batch
        u = torch.rand((b, 2), generator=g, device=dev, dtype=torch.float64)
        zero = torch.zeros(b, dtype=torch.int64, device=dev)
        if cfg.task == "upscale":
            if cfg.jpeg_range is None:
                return torch.zeros(b, device=dev), zero
            nq = len(self.qualities)
            j = (u[:, 1] * nq).long().clamp_(max=nq - 1)
            clean = u[:, 0] < cfg.jpeg_clean
            entry = torch.where(clean, zero, j + 1)
            return torch.where(clean, torch.zeros_like(self.bank_q[j]), self.bank_q[j]), entry
        lo, hi = (float(v) for v in cfg.level_range)
        top = torch.full((b,), hi, dtype=torch.float64, device=dev)
        if cfg.focus is not None:
            top = torch.where(u[:, 0] < 0.5, torch.clamp(top, max=min(hi, cfg.focus)), top)
        if cfg.task == "denoise":
            return (lo + u[:, 1] * (top - lo)).float(), zero
        # dejpeg: uniform over the bank levels at or below the top
        count = (self.bank_q.double()[None, :] <= top[:, None]).sum(1)
        j = torch.minimum((u[:, 1] * count).long(), count - 1)
        return self.bank_q[j], j + 1

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        import torch

        cfg, g = self.cfg, self.generator
        s = cfg.scale
        img, top, left = self.positions()
        level, entry = self.levels()
        k = torch.randint(0, 8, (cfg.batch,), generator=g, device=self.device)

        def col(v: torch.Tensor) -> torch.Tensor:
            return v.view(-1, 1, 1)

        # flat pixel index of each output pixel: entry and image offset, then
        # (row, column) of the window under dihedral op k
        xi = col(entry * self.n_lr + self.lr_off[img]) + col(left) + self.gx[k]
        xi = xi + (col(top) + self.gy[k]) * col(self.lr_w[img])
        yi = col(self.hr_off[img]) + col(left * s) + self.hx[k]
        yi = yi + (col(top * s) + self.hy[k]) * col(self.hr_w[img])
        # index_select copies whole 3-byte rows: 2.5x faster than x[idx] on a CPU
        x = torch.index_select(self.src, 0, xi.reshape(-1)).view(*xi.shape, 3)
        y = torch.index_select(self.hr, 0, yi.reshape(-1)).view(*yi.shape, 3)
        if cfg.task == "denoise":
            noise = torch.randn(x.shape, generator=g, device=self.device)
            if cfg.noise == "real":  # blind: some clean, some camera noise, the rest white
                u = torch.rand(cfg.batch, generator=g, device=self.device, dtype=torch.float64)
                camera, clean = cfg.noise_mix
                level = torch.where(u < camera + clean, torch.zeros_like(level), level)
            noisy = x.float() + noise * level.view(-1, 1, 1, 1)
            x = noisy.round_().clamp_(0, 255).to(torch.uint8)
            if cfg.noise == "real":
                x = self._camera(x, u < camera)
        return x, y, level

    def _camera(self, x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """``x`` with the patches ``which`` marks given camera noise (Pillow's
        JPEG runs on the host; the numpy generator draws its parameters)."""
        import torch

        for i in which.nonzero()[:, 0].tolist():
            noisy = degrade.add_camera_noise(x[i].cpu().numpy(), self.rng, self.camera)
            x[i] = torch.from_numpy(np.array(noisy)).to(x.device)
        return x

    # -- the Prefetcher interface ----------------------------------------------
    def next(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.batch()

    @property
    def rng_state(self) -> dict[str, Any]:
        return self.rng.bit_generator.state

    def get_state(self) -> torch.Tensor:
        return self.generator.get_state()

    def set_state(self, state: torch.Tensor) -> None:
        self.generator.set_state(state.cpu())

    def close(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        """What run.json records about the pipeline."""
        doc: dict[str, Any] = {"kind": "device", "images": len(self.hr_images)}
        if self.qualities:
            doc["jpeg_bank_qualities"] = self.qualities
            doc["note"] = "JPEG quality is quantised to the bank's levels"
        return doc
