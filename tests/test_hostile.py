"""Hostile and unusual input files, through the command line.

Everything goes through the real command line (``python -m scnrestore`` in a
subprocess) with the tiny random checkpoints of ``conftest.ckpt_dir``. The
corpus (``tests/hostile.py``) is generated here, never downloaded. For every
case the behaviour is pinned: restored (and how), or refused with one line
``error: FILE: reason`` while the batch goes on.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import os
import re
import resource
import signal
import stat
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import hostile as H
import numpy as np
import pytest
from PIL import Image as PILImage
from test_cli import run as _run

from scnrestore.errors import one_line

# One thread: the suite shares two busy cores; the tiny model does not need more.
ENV = {"OMP_NUM_THREADS": "1"}
HAVE_IMAGECODECS = importlib.util.find_spec("imagecodecs") is not None


def run(*args, env=None, **kw):
    return _run(*args, env={**ENV, **(env or {})}, **kw)


def shown(p: Path | str) -> str:
    """A path as the CLI prints it (control characters escaped)."""
    return one_line(str(p))


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (not following links): content hash or kind."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = os.lstat(p)
            rel = str(p.relative_to(root))
            if stat.S_ISREG(st.st_mode):
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = "link:" + os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            else:
                out[rel] = "special"
    return out


def pixels(p: Path) -> np.ndarray:
    with PILImage.open(p) as im:
        return np.asarray(im)


def ihdr(p: Path) -> tuple[int, int]:
    """(bit depth, colour type) of a PNG."""
    head = p.read_bytes()[:26]
    return head[24], head[25]


# -- the per-file corpus ------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    make: Callable[[Path], Path]
    error: str | None = None  # the reason must match; None: the file is restored
    check: Callable[[Path, SimpleNamespace], None] | None = None  # (output, corpus)
    note: str | None = None  # a "note: FILE: ..." line must match


def size_mode(size: tuple[int, int], mode: str | None = None, fmt: str = "PNG"):
    def check(out: Path, _c) -> None:
        with PILImage.open(out) as im:
            assert im.size == size and im.format == fmt
            assert mode is None or im.mode == mode, im.mode
            assert getattr(im, "n_frames", 1) == 1

    return check


def no_icc(size: tuple[int, int]):
    def check(out: Path, c) -> None:
        size_mode(size, "RGB")(out, c)
        with PILImage.open(out) as im:
            assert not im.info.get("icc_profile")

    return check


def check_srgb_kept(out: Path, c) -> None:
    with PILImage.open(out) as im, PILImage.open(c.inputs["srgb_icc_png"]) as src:
        assert im.info["icc_profile"] == src.info["icc_profile"]


def check_gray_alpha(out: Path, _c) -> None:
    a = pixels(out)
    assert a.shape == (48, 64, 2)
    assert (a[:, :12, 1] == 0).all()  # the transparent strip stays transparent
    assert (a[:, 20:, 1] == 255).all()


def check_palette(out: Path, _c) -> None:
    a = pixels(out)
    assert a.shape == (48, 64, 4) and a[..., 3].min() < 128 and a[..., 3].max() == 255


def check_gray16(out: Path, _c) -> None:
    assert ihdr(out) == (16, 0)
    size_mode((64, 48), "I;16")(out, _c)


def check_rgb48(out: Path, _c) -> None:
    assert ihdr(out) == (16, 2)
    size_mode((40, 24))(out, _c)


def check_float(out: Path, _c) -> None:
    import tifffile

    a = tifffile.imread(out)
    assert a.dtype == np.float32 and a.shape == (48, 64, 3)
    assert np.isfinite(a).all() and a.min() >= 0 and a.max() <= 1


def check_one_page(out: Path, _c) -> None:
    import tifffile

    with tifffile.TiffFile(out) as tf:
        assert len(tf.pages) == 1 and tf.pages[0].shape == (32, 48, 3)


def check_gif_first_frame(out: Path, c) -> None:
    assert out.suffix == ".png"  # a GIF (256 colours) would undo the restoration
    size_mode((56, 40))(out, c)
    np.testing.assert_array_equal(pixels(out), pixels(c.output["gif_first_frame"]))


def check_webp_first_frame(out: Path, c) -> None:
    size_mode((56, 40), "RGB", fmt="WEBP")(out, c)
    # The restored first frame, encoded as the CLI does (lossy, quality 95).
    with PILImage.open(c.output["webp_first_frame"]) as ref:
        expected = PILImage.open(io.BytesIO(H.encoded(ref, "WEBP", quality=95)))
    np.testing.assert_array_equal(pixels(out), np.asarray(expected))


def check_upright(out: Path, c) -> None:
    with PILImage.open(out) as im:
        assert im.getexif().get(0x0112) in (None, 1)
    np.testing.assert_array_equal(pixels(out), pixels(c.output["upright"]))


def check_long_name(out: Path, _c) -> None:
    assert out.name == "L" * 241 + "_x2.png"


def check_tiff_metadata(out: Path, _c) -> None:
    """Readable, RGB, the camera's Make kept, no stale layout tags (ColorMap)."""
    size_mode((64, 48), "RGB", fmt="TIFF")(out, _c)
    with PILImage.open(out) as im:
        im.load()
        assert im.getexif()[0x010F] == "HostileCam" and 320 not in im.tag_v2


def check_mpo(out: Path, c) -> None:
    """The photo, and no "2 frames" note for an MPO's second image."""
    size_mode((56, 40), "RGB")(out, c)
    src = shown(c.inputs["mpo"])
    assert not [ln for ln in c.r.stderr.splitlines() if ln.startswith(f"note: {src}: ")]


def check_colour_key(channels: int):
    def check(out: Path, _c) -> None:
        a = pixels(out)
        assert a.shape == (48, 64, channels)
        assert (a[:12, :12, -1] == 0).all()  # the 8 x 8 key square stays transparent
        assert (a[20:, 20:, -1] == 255).all()

    return check


def check_dpi_doubled(out: Path, _c) -> None:
    """300 x 150 dpi, upscaled x2: 600 x 300 dpi, the same printed size."""
    with PILImage.open(out) as im:
        assert im.info["dpi"] == pytest.approx((600, 300), abs=0.05)


def check_no_warning(out: Path, c) -> None:
    """Pillow's "Corrupt EXIF data" UserWarning is not printed into the batch's output."""
    size_mode((48, 32), "RGB")(out, c)
    assert "Warning" not in c.r.stderr


def check_deep_tiff(out: Path, _c) -> None:
    import tifffile

    assert tifffile.imread(out).dtype == np.uint16


BOMB = r"^cannot read: refused: .*decompression bomb"
CASES = [
    # refused, one line each
    Case("zero_bytes", H.zero_bytes, r"empty file \(0 bytes\)"),
    Case("truncated_png", H.truncated_png, r"truncated"),
    Case("truncated_jpeg", H.truncated_jpeg, r"truncated"),
    Case("bad_crc_png", H.bad_crc_png, r"corrupt PNG file"),
    Case("zero_width_png", H.zero_width_png, r"corrupt PNG file"),
    Case("text_as_png", H.text_as_png, r"not an image file"),
    Case("html_as_jpg", H.html_as_jpg, r"not an image file"),
    Case("bomb_png", H.bomb_png, BOMB),
    Case("bomb_png16", H.bomb_png16, BOMB),
    Case("bomb_gif", H.bomb_gif, BOMB),
    Case("bomb_tiff", H.bomb_tiff, BOMB),
    Case("newline_name", H.newline_name, r"not an image file"),
    Case("dangling_symlink", H.dangling_symlink, r"no such file"),
    Case("fifo", H.fifo_png, r"not a regular file"),
    # restored
    Case("1x1", H.one_by_one, check=size_mode((2, 2), "RGB")),
    Case("3x2", H.three_by_two, check=size_mode((6, 4), "RGB")),
    Case("wide_2000x3", H.wide_thin, check=size_mode((4000, 6), "RGB")),
    Case("tall_1x700", H.tall_thin, check=size_mode((2, 1400), "RGB")),
    Case("cmyk_jpeg", H.cmyk_jpeg, check=no_icc((64, 48))),
    Case("palette_transparent", H.palette_transparent, check=check_palette),
    Case("gray_alpha", H.gray_alpha, check=check_gray_alpha),
    Case("gray16", H.gray16, check=check_gray16),
    Case("rgb48_png", H.rgb48_png, check=check_rgb48),
    Case("bilevel", H.bilevel, check=size_mode((48, 32), "L")),
    Case("float32_tiff", H.float_tiff, check=check_float),
    Case("float_tiff_nan_inf", H.float_tiff_nan, check=check_float),
    Case(
        "multipage_tiff",
        H.multipage_tiff,
        check=check_one_page,
        note=r"3 frames, only the first is restored",
    ),  # fmt: skip
    Case(
        "animated_gif",
        H.animated_gif,
        check=check_gif_first_frame,
        note=r"3 frames, only the first is restored",
    ),  # fmt: skip
    Case("gif_first_frame", H.gif_first_frame),
    Case(
        "animated_webp",
        H.animated_webp,
        check=check_webp_first_frame,
        note=r"3 frames, only the first is restored",
    ),  # fmt: skip
    Case("webp_first_frame", H.webp_first_frame),
    Case("srgb_icc_png", H.srgb_icc_png, check=check_srgb_kept),
    Case(
        "garbage_icc_png",
        H.garbage_icc_png,
        check=no_icc((48, 32)),
        note=r"its ICC profile is corrupt and was dropped",
    ),  # fmt: skip
    Case(
        "garbage_icc_jpeg",
        H.garbage_icc_jpeg,
        check=no_icc((48, 32)),
        note=r"its ICC profile is corrupt and was dropped",
    ),  # fmt: skip
    Case("broken_zlib_icc_png", H.broken_zlib_icc_png, check=no_icc((48, 32))),
    Case("jpeg_named_png", H.jpeg_named_png, check=size_mode((48, 32), "RGB")),
    Case("unicode_space_name", H.unicode_space_name, check=size_mode((48, 32), "RGB")),
    Case("non_utf8_name", H.non_utf8_name, check=size_mode((48, 32), "RGB")),
    Case("long_name", H.long_name, check=check_long_name),
    Case("rgb", H.plain_rgb, check=size_mode((64, 48), "RGB")),
    Case("rgba", H.rgba, check=size_mode((64, 48), "RGBA")),
    Case("bmp", H.bmp, check=size_mode((48, 32), "RGB", "BMP")),
    Case("ppm_gives_png", H.ppm, check=size_mode((48, 32), "RGB")),
    Case("upright", H.upright_png, check=size_mode((72, 40), "RGB")),
    *[Case(f"exif_orientation_{k}", H.oriented(k), check=check_upright) for k in range(2, 9)],
    # metadata and decoding
    Case("palette_tiff", H.palette_tiff, check=check_tiff_metadata),
    Case("cmyk_tiff", H.cmyk_tiff, check=check_tiff_metadata),
    Case("lzw_tiff", H.lzw_tiff, check=size_mode((64, 48), "RGB", fmt="TIFF")),
    Case("lzw_tiff16", H.lzw_tiff16, check=check_deep_tiff)
    if HAVE_IMAGECODECS  # then tifffile decodes LZW itself
    else Case(
        "lzw_tiff16",
        H.lzw_tiff16,
        r"^cannot read: 16-bit RGB TIFF with LZW compression: "
        r"reading it without losing precision needs the imagecodecs package "
        r"\(pip install imagecodecs\)$",
    ),
    Case("mpo", H.mpo, check=check_mpo),
    Case("rgb_colour_key", H.rgb_colour_key, check=check_colour_key(4)),
    Case("gray_colour_key", H.gray_colour_key, check=check_colour_key(2)),
    Case("dpi", H.dpi_png, check=check_dpi_doubled),
    Case(
        "garbage_exif_png",
        H.garbage_exif_png,
        check=size_mode((48, 32), "RGB"),
        note=r"its EXIF data is corrupt and was dropped",
    ),
    Case("truncated_exif_png", H.truncated_exif_png, check=check_no_warning),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, ckpt_dir):
    """The whole corpus in one batch: ``upscale -s 2 --json FILE...``."""
    root = tmp_path_factory.mktemp("corpus")
    inputs = {}
    for case in CASES:
        d = root / case.id
        d.mkdir()
        inputs[case.id] = case.make(d)
    before = snapshot(root)
    r = run("upscale", "-s", "2", "--model", ckpt_dir / "x2.safetensors", "--json",
            *inputs.values())  # fmt: skip
    after = snapshot(root)
    summary = json.loads(r.stdout)
    by_input = {f["input"]: f for f in summary["files"]}
    entry = {cid: by_input[str(p)] for cid, p in inputs.items()}
    output = {cid: Path(e["output"]) if e["output"] else None for cid, e in entry.items()}
    return SimpleNamespace(root=root, inputs=inputs, r=r, summary=summary, entry=entry,
                           output=output, before=before, after=after)  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_corpus_case(corpus, case):
    src, e = corpus.inputs[case.id], corpus.entry[case.id]
    stderr = corpus.r.stderr.splitlines()
    if case.error:
        assert e["status"] == "failed", e
        assert re.search(case.error, e["error"]), e["error"]
        assert "\n" not in e["error"]
        # exactly one line names the file, with its reason
        lines = [ln for ln in stderr if ln.startswith(f"error: {shown(src)}: ")]
        assert len(lines) == 1, stderr
        out = corpus.output[case.id]
        assert out is None or not os.path.lexists(out)
    else:
        assert e["status"] == "ok", e
        out = corpus.output[case.id]
        assert out.is_file() and out.parent == src.parent
        if case.check:
            case.check(out, corpus)
    if case.note:
        assert any(re.fullmatch(f"note: {re.escape(shown(src))}: {case.note}", ln)
                   for ln in stderr), stderr  # fmt: skip


def test_corpus_batch_goes_on_and_leaves_only_outputs(corpus):
    r, s = corpus.r, corpus.summary
    failed = [c for c in CASES if c.error]
    assert len(CASES) >= 30 + 7
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert (s["ok"], s["failed"], s["not_run"]) == (len(CASES) - len(failed), len(failed), 0)
    assert not s["interrupted"]
    # every stderr line is one of: error, note, done line (a JPEG's names its
    # steps: "(dejpeg q95 → x2, 0.5 s)"), summary
    kinds = re.compile(r"(error|note): .*|.* -> .* \((.+, )?\d+\.\d s\)|\d+ done, \d+ failed, .*")
    for ln in r.stderr.splitlines():
        assert kinds.fullmatch(ln), ln
    assert sum(ln.startswith("error: ") for ln in r.stderr.splitlines()) == len(failed)
    # inputs untouched; nothing new but the outputs (no .part, no partial files)
    for rel, digest in corpus.before.items():
        assert corpus.after.get(rel) == digest, rel
    made = {str(corpus.output[c.id].relative_to(corpus.root)) for c in CASES if not c.error}
    assert set(corpus.after) - set(corpus.before) == made


def test_bombs_are_refused_from_the_header(tmp_path):
    """No pixel memory: refused in milliseconds, with under 5 MB allocated."""
    from scnrestore.imageio import ImageReadError, read_image

    for make in (H.bomb_png, H.bomb_png16, H.bomb_gif, H.bomb_tiff):
        p = make(tmp_path)
        tracemalloc.start()
        t0 = time.perf_counter()
        with pytest.raises(ImageReadError, match="decompression bomb"):
            read_image(p)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert seconds < 2 and peak < 5 * 2**20, (p.name, seconds, peak)


def test_large_but_allowed_size_prints_no_python_warning(tmp_path, ckpt_dir):
    """10000 x 10000 is between Pillow's warning and hard limits: no warning text."""
    (tmp_path / "big.png").write_bytes(H.raw_png(10_000, 10_000))  # and truncated
    r = run("upscale", tmp_path / "big.png", "-s", "2", "--model", ckpt_dir / "x2.safetensors")
    assert r.returncode == 1
    assert "Warning" not in r.stderr and "warnings.warn" not in r.stderr
    assert r.stderr.splitlines()[0] == f"error: {tmp_path / 'big.png'}: cannot read: " + (
        "truncated or corrupt image data (image file is truncated (0 bytes not processed))"
    )


# -- levels estimated from the image, names, formats through the command line -------------


def test_dejpeg_quality_auto_reads_a_phone_mpo(tmp_path, ckpt_dir):
    """A phone's JPEG Pillow opens as MPO was "not a JPEG file (MPO)"."""
    src = H.mpo(tmp_path, quality=30)
    r = run("dejpeg", src, "--quality", "auto", "--model", ckpt_dir / "dejpeg.safetensors",
            "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert f"{src}: estimated JPEG quality 30" in r.stderr.splitlines()
    assert "frames" not in r.stderr
    assert json.loads(r.stdout)["files"][0]["level"] == 30


def test_sigma_auto_counts_nan_as_0_and_asks_for_sigma_when_too_small(tmp_path, ckpt_dir):
    """--sigma auto on a float TIFF with NaN estimated nan ("denoise level nan
    is outside 1..75"); on a 1-pixel-wide image it said only "too small"."""
    from scnrestore.estimate import estimate_sigma
    from scnrestore.imageio import read_image

    nan, one, thin = H.float_tiff_nan(tmp_path), H.one_by_one(tmp_path), H.tall_thin(tmp_path)
    r = run("denoise", nan, one, thin, "--sigma", "auto", "--json",
            "--model", ckpt_dir / "denoise.safetensors")  # fmt: skip
    assert r.returncode == 1, r.stderr
    files = {Path(f["input"]).name: f for f in json.loads(r.stdout)["files"]}
    assert files["float_nan.tif"]["status"] == "ok"
    # As the network reads it: NaN is 0, inf 1, -inf 0, the rest clipped to [0, 1].
    clean = np.clip(np.nan_to_num(read_image(nan).pixels, nan=0.0), 0.0, 1.0)
    assert files["float_nan.tif"]["level"] == min(max(round(estimate_sigma(clean), 1), 1), 75)
    why = "image too small to estimate its noise ({}, at least 2 x 2 needed): pass --sigma N"
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:")] == [
        f"error: {one}: {why.format('1 x 1 pixels')}",
        f"error: {thin}: {why.format('1 x 700 pixels')}",
    ]


def test_overwrite_gray_alpha_as_bmp_under_a_255_byte_name(tmp_path, ckpt_dir):
    """Gray + alpha with -f bmp failed after the work ("cannot write mode LA as
    BMP"); replacing an output named in 4-byte characters failed with "File
    name too long" (its temporary name was cut to 64 characters, 256 bytes)."""
    src = H.long_4byte_name(tmp_path)
    out = tmp_path / (src.stem + "_x2.bmp")
    assert len(os.fsencode(out.name)) == 255
    out.write_bytes(b"an older output")
    r = run("upscale", src, "-s", "2", "-f", "bmp", "--overwrite",
            "--model", ckpt_dir / "x2.safetensors")  # fmt: skip
    assert r.returncode == 0, r.stderr
    with PILImage.open(out) as im:
        assert im.format == "BMP" and im.size == (64, 48)
        assert (np.asarray(im)[:, 20:] > 0).any()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, out.name])


# -- directories ------------------------------------------------------------------------


def test_mixed_directory_with_symlink_loop(tmp_path, ckpt_dir, tmp_path_factory):
    d = tmp_path / "in"
    (d / "sub" / "deeper").mkdir(parents=True)
    H.plain_rgb(d)  # plain.png
    H.cmyk_jpeg(d / "sub")  # sub/cmyk.jpg
    H.animated_gif(d / "sub" / "deeper")
    H.text_as_png(d)  # notes.png: fails, the others go on
    (d / "README").write_text("not an image, no extension: ignored")
    (d / "data.txt").write_text("ignored")
    (d / ".hidden.png").write_bytes((d / "plain.png").read_bytes())  # hidden: ignored
    folder = H.directory_named_png(d)  # a directory called folder.png
    H.one_by_one(folder)
    (d / "sub" / "loop").symlink_to("..")  # sub/loop -> in/: a cycle
    (d / "sub" / "deeper" / "self").symlink_to(".")
    out = tmp_path_factory.mktemp("mirror")
    before = snapshot(d)
    t0 = time.time()
    r = run("upscale", "-r", d, "-o", out, "-s", "2", "--model", ckpt_dir / "x2.safetensors",
            "--json")  # fmt: skip
    assert time.time() - t0 < 120
    assert r.returncode == 1, r.stderr
    s = json.loads(r.stdout)
    assert {Path(f["input"]).relative_to(d).as_posix(): f["status"] for f in s["files"]} == {
        "plain.png": "ok", "notes.png": "failed", "folder.png/1x1.png": "ok",
        "sub/cmyk.jpg": "ok", "sub/deeper/anim.gif": "ok",
    }  # fmt: skip
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "folder.png/1x1.png", "plain.png", "sub/cmyk.png", "sub/deeper/anim.png",
    ]  # fmt: skip
    assert [ln for ln in r.stderr.splitlines() if ln.startswith("error:")] == [
        f"error: {d / 'notes.png'}: cannot read: not an image file Pillow can identify"
    ]
    assert snapshot(d) == before


def test_non_ascii_and_space_paths_everywhere(tmp_path, ckpt_dir):
    src = H.unicode_space_name(tmp_path)  # "dossier été ünï 写真/photo à la plage 1.png"
    out = tmp_path / "sortie à côté" / "résultat final.webp"
    r = run("upscale", src, "-o", out, "-s", "2", "--model", ckpt_dir / "x2.safetensors")
    assert r.returncode == 0, r.stderr
    assert f"{src} -> {out}" in r.stderr
    with PILImage.open(out) as im:
        assert im.format == "WEBP" and im.size == (48, 32)


# -- outputs -----------------------------------------------------------------------------


def test_output_folder_blocked_by_a_file(tmp_path, ckpt_dir):
    """Root ignores permissions, so 'unwritable' is a regular file where a folder must go."""
    a, b = H.plain_rgb(tmp_path), H.bmp(tmp_path)
    (tmp_path / "blocker").write_text("a file, not a folder")
    model = ["--model", ckpt_dir / "x2.safetensors", "-s", "2"]
    r = run("upscale", a, b, "-o", tmp_path / "blocker" / "out", *model, "--json")
    assert r.returncode == 1
    s = json.loads(r.stdout)
    assert s["failed"] == 2 and s["ok"] == 0  # each file tried and reported
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    # found while planning, before a model loads: one line per file, naming the blocker
    blocker = tmp_path / "blocker"
    assert errors == [
        f"error: {p}: cannot write {blocker / 'out' / p.name}: {blocker} is a file, not a folder"
        for p in (a, b)
    ]
    r = run("upscale", a, "-o", tmp_path / "blocker" / "x.png", *model)
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == (
        f"error: {a}: cannot write {blocker / 'x.png'}: {blocker} is a file, not a folder"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blocker", "plain.bmp", "plain.png"]


def _no_bigger_files_than(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then write() fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return preexec


def test_full_disk_leaves_no_partial_file(tmp_path, ckpt_dir):
    """RLIMIT_FSIZE stands in for a full disk: the big output cannot be written."""
    PILImage.fromarray(H.pattern(200, 300, seed=3)).save(tmp_path / "big.png")
    small = H.one_by_one(tmp_path)
    PILImage.fromarray(H.pattern(150, 200, seed=4)).save(tmp_path / "big.tif")
    before = snapshot(tmp_path)
    r = subprocess.run(
        [sys.executable, "-m", "scnrestore", "upscale", "-s", "2", "--json",
         "--model", str(ckpt_dir / "x2.safetensors"),
         str(tmp_path / "big.png"), str(small), str(tmp_path / "big.tif")],
        capture_output=True, text=True, timeout=300, env={**os.environ, **ENV},
        preexec_fn=_no_bigger_files_than(100_000),
    )  # fmt: skip
    assert r.returncode == 1, r.stderr
    status = {Path(f["input"]).name: f["status"] for f in json.loads(r.stdout)["files"]}
    assert status == {"big.png": "failed", "1x1.png": "ok", "big.tif": "failed"}
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 2
    # Python-level writes say EFBIG; libtiff (8-bit TIFF via Pillow) only its own code.
    assert errors[0] == (
        f"error: {tmp_path / 'big.png'}: cannot write {tmp_path / 'big_x2.png'}: File too large"
    )
    assert errors[1].startswith(
        f"error: {tmp_path / 'big.tif'}: cannot write {tmp_path / 'big_x2.tif'}: "
    )
    after = snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) == {"1x1_x2.png"}  # no big_x2.*, no .part


@pytest.mark.parametrize("how", ["same path", "symlink", "hardlink", "mirror into itself"])
def test_output_equal_to_input_is_refused(tmp_path, ckpt_dir, how):
    src = H.plain_rgb(tmp_path)
    data = src.read_bytes()
    out: Path = src
    if how == "symlink":
        out = tmp_path / "link.png"
        out.symlink_to(src)
    elif how == "hardlink":
        out = tmp_path / "hard.png"
        os.link(src, out)
    elif how == "mirror into itself":
        out = tmp_path  # -o DIR: DIR/plain.png is the input
    r = run("denoise", src, "-o", out, "--overwrite", "--sigma", "20",
            "--model", ckpt_dir / "denoise.safetensors")  # fmt: skip
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == f"error: {src}: output would overwrite the input"
    assert src.read_bytes() == data
    assert not list(tmp_path.glob(".*"))
