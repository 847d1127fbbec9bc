"""The registry file (``weights.toml``) read into :class:`ModelEntry` objects.

See :mod:`scnrestore.weights` for the format. Never imports torch.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RegistryError
from ..tasks import LEVEL_NOUN, LEVEL_TASKS, SCHEDULES, TASKS, TOLD_LEVEL
from .download import is_safe_name, url_problem
from .schedules import schedule_weight, told_level

__all__ = [
    "ModelEntry",
    "RegistryError",
    "load_registry",
    "user_registry_path",
    "default_model_name",
    "default_model",
    "real_noise_model_name",
    "auto_denoise_model",
    "PACKAGE_DIR",
    "SHIPPED_REGISTRY",
    "EMBEDDED_DIR",
    "ARCH_KEYS",
]

PACKAGE_DIR = Path(__file__).resolve().parent.parent
SHIPPED_REGISTRY = PACKAGE_DIR / "weights.toml"
EMBEDDED_DIR = PACKAGE_DIR / "models"
REQUIRED = ("task", "file", "sha256", "size")
# Architecture hyperparameters; passed to the model builder, which checks them
# against the tensor shapes (num_scales and image_mean the tensors cannot tell).
ARCH_KEYS = (
    "num_blocks",
    "num_residual_units",
    "width_multiplier",
    "num_scales",
    "image_mean",
    "num_cond_channels",
)
# A JPEG-aware upscaler's routing: the qualities it serves (joint_range) and
# the one from which the plain upscaler serves instead (plain_from).
ROUTING_KEYS = ("joint_range", "plain_from")
# Every key an entry may have (the blend-back schedules among them).
ENTRY_KEYS = frozenset(
    (*REQUIRED, *ARCH_KEYS, *ROUTING_KEYS, "name", "scale", "sigma_range", "quality_range",
     "urls", "embedded", "licence", "provenance", "quality", "quality_note",
     "steps", "data", "status", "noise", *SCHEDULES, TOLD_LEVEL)
)  # fmt: skip
TOP_KEYS = frozenset(("format", "base_url", "models"))
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


@dataclass(frozen=True)
class ModelEntry:
    """One model of the registry, with the metadata it carries.

    ``raw`` is the table as written (licence, provenance, quality, ranges);
    ``hparams`` the architecture keys, handed to the model builder; ``urls``
    the mirrors as written (see :func:`download_urls`); ``base_url`` the one of
    the registry file it came from (else the shipped one); ``source`` that file.
    """

    name: str
    task: str
    file: str
    scale: int = 1
    embedded: bool = False
    sha256: str = ""
    size: int = 0
    hparams: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    urls: tuple[str, ...] = ()
    base_url: str | None = None
    source: Path | None = None

    @property
    def level_range(self) -> tuple[float, float] | None:
        rng = self.raw.get("sigma_range") or self.raw.get("quality_range")
        return (float(rng[0]), float(rng[1])) if rng else None

    @property
    def joint_range(self) -> tuple[float, float] | None:
        """A JPEG-aware upscaler: the JPEG qualities for which ``upscale`` runs it
        in one pass (measured better there than dejpeg then upscale); its
        ``quality_range`` where the entry gives none."""
        rng = self.raw.get("joint_range")
        return (float(rng[0]), float(rng[1])) if rng else self.level_range

    @property
    def plain_from(self) -> float | None:
        """A JPEG-aware upscaler: the JPEG quality from which ``upscale`` runs
        the plain upscaler alone (near-lossless JPEGs, where dejpeg then
        upscale was measured to gain nothing over it); None: no such rule."""
        q = self.raw.get("plain_from")
        return None if q is None else float(q)

    def measured_loss(self, level: float) -> tuple[float, float] | None:
        """Whether validation says this model makes images worse at ``level``.

        A level-conditioned entry records ``gain_<L>`` (dB over the degraded
        input) for each level L it was evaluated at. A lighter degradation is
        harder to improve on (σ 2 asks for an exact identity), so a loss at L
        stands for every level at least as light: σ <= L for denoise, quality
        >= L for dejpeg. Returns (L, gain) for the nearest such L, else None.
        """
        q = self.raw.get("quality")
        if not isinstance(q, dict) or self.task not in LEVEL_TASKS:
            return None
        losses = []
        for key, gain in q.items():
            tag = key.removeprefix("gain_")
            if tag == key or not _is_number(gain) or gain >= 0:
                continue
            try:
                at = float(tag)
            except ValueError:
                continue
            if (level <= at) if self.task == "denoise" else (level >= at):
                losses.append((abs(at - level), at, float(gain)))
        return min(losses)[1:] if losses else None

    def share(self, key: str, level: float) -> float:
        """The ``keep_luma`` / ``keep_input`` schedule at ``level`` (0 if none)."""
        if key not in SCHEDULES:
            raise ValueError(f"unknown schedule {key!r}")
        points = self.raw.get(key) if self.task == SCHEDULES[key] else None
        return schedule_weight(points or [], level)

    def luma_weight(self, quality: float) -> float:
        """How much of the JPEG's own luma to keep at ``quality`` (0: none).

        At high quality the JPEG's luma is nearly exact while its chroma is
        still blurred by 4:2:0 subsampling; a dejpeg model can improve the
        chroma yet disturb the luma. ``keep_luma`` (dejpeg entries) gives the
        weight at some qualities; between them it is interpolated linearly,
        beyond them it stays at the nearest end. No ``keep_luma``: 0.
        """
        return self.share("keep_luma", quality)

    def told_level(self, level: float) -> float:
        """The level to tell the network for a true ``level`` (the level itself
        when the entry has no ``told_level`` schedule).

        Trained with L1 over a range of levels, a conditioned network can do
        better told a slightly different level than the true one (measured:
        the shipped dejpeg model gains 0.02-0.04 dB at quality 10 told 11.5).
        The schedule's (level, told) points are linear between them; beyond
        the ends the nearest point's ratio told / level holds.
        """
        points = self.raw.get(TOLD_LEVEL) if self.task in LEVEL_TASKS else None
        return told_level(points or [], level)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _rising_pairs(pts: Any) -> bool:
    """A schedule's shape: a non-empty list of [number, number] points whose
    first numbers rise (keep_luma, keep_input, told_level)."""
    return (
        isinstance(pts, list)
        and bool(pts)
        and all(isinstance(p, list) and len(p) == 2 and all(map(_is_number, p)) for p in pts)
        and all(a[0] < b[0] for a, b in zip(pts, pts[1:], strict=False))
    )


_Check = Callable[[bool, str], None]


def _parse_entry(name: str, raw: Any, base_url: str | None, source: Path) -> ModelEntry:
    """One ``[models.NAME]`` table, validated; errors name the file and the entry."""

    def check(ok: bool, msg: str) -> None:
        if not ok:
            raise RegistryError(f"{source}: models.{name}: {msg}")

    check(is_safe_name(name), "a model name must be a plain name (letters, digits, . _ + -)")
    check(isinstance(raw, dict), "must be a table")
    unknown = sorted(set(raw) - ENTRY_KEYS)
    check(not unknown, f"unknown field(s) {', '.join(unknown)}")
    missing = [k for k in REQUIRED if k not in raw]
    check(not missing, f"lacks required field(s) {', '.join(missing)}")
    check(raw.get("name", name) == name, f"name = {raw.get('name')!r} differs from the table name")
    _check_file(raw, check)
    _check_ranges_and_urls(raw, check)
    _check_fields(raw, check)
    _check_schedules(raw, check)
    hparams = {k: raw[k] for k in ARCH_KEYS if k in raw}
    if "scale" in raw:
        hparams["scale"] = raw["scale"]
    return ModelEntry(
        name=name,
        task=raw["task"],
        file=raw["file"],
        scale=int(raw.get("scale", 1)),
        embedded=bool(raw.get("embedded", False)),
        sha256=raw["sha256"].lower(),
        size=raw["size"],
        hparams=hparams,
        raw=dict(raw),
        urls=tuple(raw.get("urls", [])),
        base_url=base_url,
        source=source,
    )


def _check_file(raw: dict[str, Any], check: _Check) -> None:
    """The task, the file, its sha256 and size, and the scale the task allows."""
    check(raw["task"] in TASKS, f"unknown task {raw['task']!r} (one of {', '.join(TASKS)})")
    file = raw["file"]
    check(
        isinstance(file, str) and is_safe_name(file) and not file.endswith((".part", ".lock")),
        f"file = {file!r} must be a plain file name (no directory, no '..')",
    )
    sha = raw["sha256"]
    check(isinstance(sha, str) and bool(_SHA256.fullmatch(sha)), "sha256 must be 64 hex digits")
    check(_is_int(raw["size"]) and raw["size"] > 0, "size must be a positive number of bytes")
    scale = raw.get("scale", 1)
    if raw["task"] == "upscale":
        check("scale" in raw, "an upscale model needs scale")
        check(_is_int(scale) and 2 <= scale <= 4, "scale must be 2, 3 or 4")
    else:
        check(scale == 1, f"a {raw['task']} model has scale 1")


def _check_ranges_and_urls(raw: dict[str, Any], check: _Check) -> None:
    """The level ranges, ``plain_from``, the mirrors and ``embedded``."""
    for key in ("sigma_range", "quality_range", "joint_range"):
        if key in raw:
            rng = raw[key]
            pair = isinstance(rng, list) and len(rng) == 2 and all(map(_is_number, rng))
            check(pair and rng[0] <= rng[1], f"{key} must be [low, high]")
    if "plain_from" in raw:
        q = raw["plain_from"]
        check(_is_number(q) and 5 <= q <= 100, "plain_from must be a JPEG quality, 5-100")
    urls = raw.get("urls", [])
    strings = isinstance(urls, list) and all(isinstance(u, str) for u in urls)
    check(strings, "urls must be a list of strings")
    for u in urls:
        problem = url_problem(u, relative_ok=True)
        check(problem is None, f"urls: {problem}")
    check(isinstance(raw.get("embedded", False), bool), "embedded must be true or false")


def _check_fields(raw: dict[str, Any], check: _Check) -> None:
    """The architecture numbers, the licence and provenance, the quality table."""
    for key in ("num_blocks", "num_residual_units", "num_scales", "num_cond_channels"):
        least = 0 if key == "num_cond_channels" else 1
        if key in raw:
            check(_is_int(raw[key]) and raw[key] >= least, f"{key} must be an integer >= {least}")
    for key in ("width_multiplier", "image_mean"):
        if key in raw:
            check(_is_number(raw[key]), f"{key} must be a number")
    for key in ("licence", "provenance"):
        if key in raw:
            check(isinstance(raw[key], str), f"{key} must be a string")


def _check_schedules(raw: dict[str, Any], check: _Check) -> None:
    """The blend-back schedules and ``told_level`` (rising points, for their
    tasks only), then the quality figures."""
    for key, owner in SCHEDULES.items():
        if key not in raw:
            continue
        pts = raw[key]
        level = LEVEL_NOUN[owner]
        check(
            _rising_pairs(pts) and raw["task"] == owner and all(0 <= w <= 1 for _, w in pts),
            f"{key} must be [[{level}, weight], ...] with rising {level} values and weights "
            f"in 0..1 ({owner} models only)",
        )
    if TOLD_LEVEL in raw:
        pts = raw[TOLD_LEVEL]
        check(
            _rising_pairs(pts)
            and raw["task"] in LEVEL_TASKS
            and all(a > 0 and t > 0 for a, t in pts),
            f"{TOLD_LEVEL} must be [[level, told level], ...] with rising, positive levels "
            "(denoise and dejpeg models only)",
        )
    if "quality" in raw:
        q = raw["quality"]
        table = isinstance(q, dict) and all(map(_is_number, q.values()))
        check(isinstance(q, str) or table, "quality must be a string or a table of numbers")


def _parse(
    source: Path, data: dict[str, Any], default_base: str | None = None
) -> dict[str, ModelEntry]:
    """The entries of one registry file; ``default_base`` when it has no base_url."""
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise RegistryError(f"{source}: unknown top-level key(s) {', '.join(unknown)}")
    if data.get("format", 1) != 1:
        raise RegistryError(f"{source}: format {data['format']!r} is not supported (only 1)")
    base = data.get("base_url", default_base)
    if base is not None:
        problem = url_problem(base) if isinstance(base, str) else "must be a string"
        if problem:
            raise RegistryError(f"{source}: base_url: {problem}")
    models = data.get("models", {})
    if not isinstance(models, dict):
        raise RegistryError(f"{source}: [models] must be a table")
    return {name: _parse_entry(name, raw, base, source) for name, raw in models.items()}


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise RegistryError(f"{path}: cannot read the registry: {exc.strerror or exc}") from None


def _read_toml(path: Path, text: bytes) -> dict[str, Any]:
    try:
        return tomllib.loads(text.decode())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise RegistryError(f"{path}: not valid TOML: {exc}") from None


def load_registry(path: Path | None = None) -> dict[str, ModelEntry]:
    """The shipped registry (or ``path``), merged with the user's if it exists.

    A user entry replaces the shipped entry of the same name; user entries
    without a base_url of their own use the shipped one. Parsed once per
    process: the files are read (a few KB) but parsed again only when their
    bytes change or another user registry is named; each call gets its own
    dict of the (frozen) entries.
    """
    main = path or SHIPPED_REGISTRY
    user = user_registry_path() if path is None else None
    if user is not None and os.environ.get("SCNRESTORE_REGISTRY") and not user.is_file():
        raise RegistryError(f"SCNRESTORE_REGISTRY={user}: no such file")
    texts = (_read(main), _read(user) if user is not None and user.is_file() else None)
    key = (main, user, *texts)
    if key not in _LOADED:
        _LOADED.clear()  # one registry at a time: a changed file replaces it
        data = _read_toml(main, texts[0])
        entries = _parse(main, data)
        if user is not None and texts[1] is not None:
            entries.update(_parse(user, _read_toml(user, texts[1]), data.get("base_url")))
        _LOADED[key] = entries
    return dict(_LOADED[key])


# The parsed registry, keyed by its files and their bytes.
_LOADED: dict[tuple[Any, ...], dict[str, ModelEntry]] = {}


def user_registry_path() -> Path:
    """``$SCNRESTORE_REGISTRY``, else ``weights.toml`` in the platformdirs config dir."""
    env = os.environ.get("SCNRESTORE_REGISTRY")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_config_dir

    return Path(user_config_dir("scnrestore")) / "weights.toml"


def default_model_name(task: str, scale: int = 1) -> str:
    """The registry name used when no --model is given."""
    return f"scn-x{scale}" if task == "upscale" else f"scn-{task}"


def jpeg_model_name(scale: int) -> str:
    """The registry name of the JPEG-aware upscaler for ``scale`` (it may not ship)."""
    return f"scn-x{scale}-jpeg"


def real_noise_model_name() -> str:
    """The registry name of the blind real-camera-noise denoiser (it may not ship)."""
    return "scn-denoise-real"


def auto_denoise_model() -> str | None:
    """The model ``denoise`` runs when no σ is told and no --model given: the
    blind real-noise model where the registry has it (None: the σ-conditioned
    default with an estimated σ)."""
    name = real_noise_model_name()
    return name if name in load_registry() else None


def default_model(task: str, scale: int = 1) -> str:
    """The registry name used without --model; a clear error if none ships."""
    name = default_model_name(task, scale if task == "upscale" else 1)
    if name not in load_registry():
        what = f"{task} x{scale}" if task == "upscale" else task
        raise RegistryError(
            f"no pretrained model for {what} ships yet ({name}; see README, Models): "
            "pass a checkpoint with --model FILE"
        )
    return name
