"""``scnrestore compare``: a labelled side-by-side picture of images (see scnrestore.compare)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .options import EXIT_FAILED, usage

if TYPE_CHECKING:
    import numpy as np

    from ..compare import Panel

__all__ = ["compare"]

Resample = StrEnum("Resample", [(r, r) for r in ("nearest", "bicubic", "lanczos")])
PICTURE = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}


Images = Annotated[
    list[Path],
    typer.Argument(
        metavar="IMAGES...",
        show_default=False,
        help="The images to set side by side, left to right.",
    ),
]
OutputOpt = Annotated[
    Path,
    typer.Option(
        "--output",
        "-o",
        metavar="PATH",
        help="The picture to write: .png, .jpg or .webp (replaced if it exists).",
    ),
]
ReferenceOpt = Annotated[
    Path | None,
    typer.Option(
        metavar="FILE",
        help="The original: panels are scaled to its size and labelled with PSNR (RGB) "
        "and SSIM (luma) against it; it is shown last unless it is one of IMAGES.",
    ),
]
CropOpt = Annotated[
    str | None,
    typer.Option(
        metavar="N|WxH",
        help="Show this window of each (scaled) image: N x N or W x H pixels, centred "
        "unless --at is given. Default: the whole image.",
    ),
]
AtOpt = Annotated[
    str | None,
    typer.Option(metavar="X,Y", help="Top-left corner of the --crop window, in pixels."),
]
LabelOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--label",
        "-l",
        metavar="TEXT",
        help="A panel's label, once per image in order. Default: the file names.",
    ),
]
ZoomOpt = Annotated[
    int,
    typer.Option(min=1, max=8, help="Magnify the crop this many times (nearest-neighbour)."),
]
ResampleOpt = Annotated[
    Resample,
    typer.Option(
        help="How a smaller image is scaled to the panel size: nearest shows its pixels "
        "as they are."
    ),
]


def compare(
    images: Images,
    output: OutputOpt,
    reference: ReferenceOpt = None,
    crop: CropOpt = None,
    at: AtOpt = None,
    label: LabelOpt = None,
    zoom: ZoomOpt = 1,
    resample: ResampleOpt = Resample.nearest,
) -> None:
    """Write a labelled side-by-side picture of images, to judge them by eye.

    Example: [bold]scnrestore compare photo.png out/photo_x4.png --crop 256 -o cmp.png[/bold]
    """
    from ..compare import Panel, parse_crop

    labels = list(label or [])
    if labels and len(labels) != len(images):
        usage(f"give one --label per image ({len(images)}), not {len(labels)}")
    fmt = PICTURE.get(output.suffix.lower())
    if fmt is None:
        usage(f"--output {output}: write a .png, .jpg or .webp picture")
    try:
        window = parse_crop(crop) if crop else None
        corner = _corner(at) if at else None
    except ValueError as exc:
        usage(str(exc))
    paths = list(images) + ([reference] if reference is not None else [])
    pixels = _read_all(paths, output)
    panels = [
        Panel(p, lbl) for p, lbl in zip(pixels, labels or [i.name for i in images], strict=False)
    ]
    ref = pixels[-1] if reference is not None else None
    if reference is not None and not any(_same(i, reference) for i in images):
        panels.append(Panel(ref, reference.name))  # type: ignore[arg-type]
    _write(panels, ref, (window, corner, zoom, resample.value), output, fmt)


def _corner(text: str) -> tuple[int, int]:
    try:
        x, y = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--at is X,Y in pixels, not {text!r}") from None
    return x, y


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _read_all(paths: list[Path], output: Path) -> list[np.ndarray]:
    """Each image as 8-bit RGB; one line per file that cannot be read, then exit 1."""
    from ..compare import load_rgb8
    from ..errors import one_line

    out, bad = [], False
    for path in paths:
        if _same(path, output):
            typer.echo(f"error: {path}: it is the --output picture", err=True)
            bad = True
            continue
        try:
            out.append(load_rgb8(path))
        except Exception as exc:
            typer.echo(one_line(f"error: {path}: {exc}"), err=True)
            bad = True
    if bad:
        raise typer.Exit(EXIT_FAILED)
    return out


def _write(panels: list[Panel], ref: np.ndarray | None, how: tuple, output: Path, fmt: str) -> None:
    """The picture, written whole or not at all; its line on stderr."""
    from ..compare import side_by_side
    from ..errors import one_line
    from ..files import atomic_output

    window, corner, zoom, resample = how
    picture = side_by_side(panels, ref, window, corner, zoom, resample)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(output) as tmp:
            picture.save(tmp, format=fmt)
    except OSError as exc:
        typer.echo(one_line(f"error: {output}: {exc}"), err=True)
        raise typer.Exit(EXIT_FAILED) from None
    typer.echo(f"{output} ({picture.width}x{picture.height}, {len(panels)} panels)", err=True)
