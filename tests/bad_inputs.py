"""A corpus of bad and unusual inputs, made on the spot: each case is a command line, the files it needs, and what
the installed command must do with it (exit status, and a word its one line on stderr must hold)."""
from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import png
import tifffile
from PIL import Image

#: Options that keep every TV run short: the failures under test happen before or after the solver.
FAST = ("--weight", "0.1", "--max-iter", "5")


@dataclass
class Case:
    """``make(folder)`` writes the files and returns the arguments after ``denoise``; ``code`` is the exit status;
    ``says`` must appear in the single stderr line; ``names`` (a file name) must too, when the case is about a file."""

    name: str
    make: Callable[[Path], list]
    code: int
    says: str
    names: Optional[str] = None
    env: dict = field(default_factory=dict)


def _rgb(size=(24, 24), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)


def _png_bytes(array: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _png16_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    h, w, c = array.shape
    png.Writer(w, h, greyscale=c == 1, alpha=c in (2, 4), bitdepth=16).write(buffer, array.reshape(h, -1).tolist())
    return buffer.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float64))
    return buffer.getvalue()


def _png_claiming(width: int, height: int, depth: int = 8) -> bytes:
    """A PNG whose header claims width x height pixels, with a few bytes of image data."""
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b"")


def _bad_crc(data: bytes, kind: bytes = b"IDAT") -> bytes:
    at = data.index(kind)
    length = struct.unpack(">I", data[at - 4:at])[0]
    crc_at = at + 4 + length
    return data[:crc_at] + bytes(b ^ 0xFF for b in data[crc_at:crc_at + 4]) + data[crc_at + 4:]


def _jpeg_bytes(array: np.ndarray, mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).convert(mode).save(buffer, format="JPEG")
    return buffer.getvalue()


def _jpeg_claiming(width: int, height: int) -> bytes:
    data = bytearray(_jpeg_bytes(_rgb()))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _tiff_bytes(array: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


def _animation(fmt: str) -> bytes:
    frames = [Image.fromarray(_rgb(seed=i)) for i in range(3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format=fmt, save_all=True, append_images=frames[1:], **(
        {"lossless": True} if fmt == "WEBP" else {}))
    return buffer.getvalue()


def _float_with(value: float) -> bytes:
    array = np.random.default_rng(0).random((16, 16), dtype=np.float32)
    array[3, 4] = value
    return _tiff_bytes(array)


def _file(name: str, data) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(data() if callable(data) else data)
        return path
    return make


def _tv_on(name: str, data, *extra, output="out.png") -> Callable[[Path], list]:
    """``denoise tv FILE -o OUT -q`` on one file made from ``data``."""
    make_file = _file(name, data)
    return lambda folder: ["tv", make_file(folder), "-o", folder / output, "-q", *FAST, *extra]


def _good(folder: Path, name: str = "good.png") -> Path:
    return _file(name, lambda: _png_bytes(_rgb()))(folder)


def _with_good(*args, before=()) -> Callable[[Path], list]:
    """A command on a good image with extra arguments; ``before`` files are made first (name, data)."""
    def make(folder: Path) -> list:
        for name, data in before:
            _file(name, data)(folder)
        return [_resolve(a, folder) for a in args]
    return make


def _resolve(arg, folder: Path):
    """``@good*.png``: a good image made in ``folder``; ``@NAME``: the path ``folder``/NAME; anything else as is."""
    if not (isinstance(arg, str) and arg.startswith("@")):
        return arg
    path = folder / arg[1:]
    if arg.startswith("@good") and not path.exists():
        _good(folder, arg[1:])
    return path


def _truncated(data: Callable[[], bytes], keep: float = 0.5) -> Callable[[], bytes]:
    return lambda: (lambda d: d[: int(len(d) * keep)])(data())


CASES = [
    # unreadable files: exit 1, one line naming the file
    Case("empty file", _tv_on("empty.png", b""), 1, "empty file", "empty.png"),
    Case("text with an image name", _tv_on("notes.png", b"just some text\n"), 1, "not a readable image",
         "notes.png"),
    Case("truncated PNG", _tv_on("cut.png", _truncated(lambda: _png_bytes(_rgb((64, 64)))),), 1, "corrupt",
         "cut.png"),
    Case("PNG signature only", _tv_on("sig.png", b"\x89PNG\r\n\x1a\n"), 1, "sig.png", "sig.png"),
    Case("8-bit PNG with a bad image-data CRC", _tv_on("crc8.png", lambda: _bad_crc(_png_bytes(_rgb()))), 1,
         "checksum", "crc8.png"),
    Case("16-bit PNG with a bad image-data CRC",
         _tv_on("crc16.png", lambda: _bad_crc(_png16_bytes(_rgb().astype(np.uint16) * 257))), 1, "checksum",
         "crc16.png"),
    Case("PNG with a bad header CRC", _tv_on("ihdr.png", lambda: _bad_crc(_png_bytes(_rgb()), b"IHDR")), 1,
         "checksum", "ihdr.png"),
    Case("PNG claiming 100000x100000", _tv_on("bomb1.png", lambda: _png_claiming(100000, 100000)), 1,
         "exceeds the limit", "bomb1.png"),
    Case("PNG claiming 65000x65000", _tv_on("bomb2.png", lambda: _png_claiming(65000, 65000)), 1,
         "exceeds the limit", "bomb2.png"),
    Case("16-bit PNG claiming 100000x100000", _tv_on("bomb3.png", lambda: _png_claiming(100000, 100000, 16)), 1,
         "exceeds the limit", "bomb3.png"),
    Case("PNG claiming 150 Mpx (under the limit) with no data", _tv_on("big.png",
                                                                      lambda: _png_claiming(10000, 15000)), 1,
         "corrupt", "big.png"),
    Case("JPEG claiming 65000x65000", _tv_on("bomb.jpg", lambda: _jpeg_claiming(65000, 65000)), 1,
         "exceeds the limit", "bomb.jpg"),
    Case("truncated JPEG", _tv_on("cut.jpg", _truncated(lambda: _jpeg_bytes(_rgb((64, 64))), 0.3)), 1, "cut.jpg",
         "cut.jpg"),
    Case("JPEG start marker and noise", _tv_on("noise.jpg", b"\xff\xd8\xff" + bytes(range(256)) * 4), 1,
         "noise.jpg", "noise.jpg"),
    Case("CMYK JPEG", _tv_on("cmyk.jpg", lambda: _jpeg_bytes(_rgb(), "CMYK")), 1, "CMYK", "cmyk.jpg"),
    Case("animated GIF", _tv_on("anim.gif", lambda: _animation("GIF")), 1, "3 frames", "anim.gif"),
    Case("animated WebP", _tv_on("anim.webp", lambda: _animation("WEBP")), 1, "3 frames", "anim.webp"),
    Case("animated PNG", _tv_on("anim.png", lambda: _animation("PNG")), 1, "3 frames", "anim.png"),
    Case("multi-page TIFF", _tv_on("pages.tif", lambda: _tiff_bytes(np.zeros((2, 8, 8), np.uint8))), 1,
         "2 frames", "pages.tif"),
    Case("float TIFF with a NaN", _tv_on("nan.tif", lambda: _float_with(np.nan), output="out.tif"), 1, "NaN",
         "nan.tif"),
    Case("float TIFF with an infinity", _tv_on("inf.tif", lambda: _float_with(np.inf), output="out.tif"), 1,
         "infinite", "inf.tif"),
    Case("CMYK TIFF", _tv_on("cmyk.tif", lambda: _tiff_bytes(np.zeros((8, 8, 4), np.uint8), photometric="separated")),
         1, "SEPARATED", "cmyk.tif"),
    Case("32-bit integer TIFF", _tv_on("int32.tif", lambda: _tiff_bytes(np.zeros((8, 8), np.int32))), 1,
         "int32", "int32.tif"),
    Case("TIFF with five samples", _tv_on("five.tif", lambda: _tiff_bytes(np.zeros((8, 8, 5), np.uint8),
                                                                         photometric="rgb", extrasamples=(0, 0))),
         1, "five.tif", "five.tif"),
    Case("truncated TIFF", _tv_on("cut.tif", _truncated(lambda: _tiff_bytes(_rgb((64, 64))), 0.2)), 1, "cut.tif",
         "cut.tif"),
    Case("TIFF signature and noise", _tv_on("noise.tif", b"II*\x00" + bytes(range(256)) * 2), 1, "noise.tif",
         "noise.tif"),
    Case("truncated BMP", _tv_on("cut.bmp", _truncated(lambda: _encode(_rgb((32, 32)), "BMP"))), 1, "cut.bmp",
         "cut.bmp"),
    Case("truncated WebP", _tv_on("cut.webp", _truncated(lambda: _encode(_rgb((32, 32)), "WEBP"))), 1,
         "cut.webp", "cut.webp"),
    Case("missing file", lambda f: ["tv", f / "missing.png", "-q", *FAST], 1, "no such file", "missing.png"),
    Case("a 1x1 image with the automatic weight", lambda f: [
        "tv", _file("dot.png", lambda: _png_bytes(_rgb((1, 1))))(f), "-o", f / "o.png", "-q"], 1, "too small",
         "dot.png"),
    Case("a 6x5 image with the automatic weight", lambda f: [
        "tv", _file("tiny.png", lambda: _png_bytes(_rgb((5, 6))))(f), "-o", f / "o.png", "-q"], 1, "too small",
         "tiny.png"),
    Case("PNG with corrupt compressed data", _tv_on("zlib.png", lambda: _corrupt_idat()), 1, "zlib.png", "zlib.png"),
    Case("empty stdin", lambda f: ["tv", "-", "-o", f / "o.png", "-q", *FAST], 1, "<stdin>", "<stdin>"),
    # outputs that cannot hold the input: found right after reading, exit 1
    Case("16-bit PNG to JPEG", lambda f: ["tv", _file("deep.png", lambda: _png16_bytes(
        _rgb().astype(np.uint16) * 257))(f), "-o", f / "o.jpg", "-q", *FAST], 1, "16-bit", "o.jpg"),
    Case("RGBA PNG to JPEG", lambda f: ["tv", _file("rgba.png", lambda: _png_bytes(
        np.dstack([_rgb(), np.full((24, 24), 9, np.uint8)])))(f), "-o", f / "o.jpg", "-q", *FAST], 1, "alpha",
         "o.jpg"),
    Case("float TIFF to PNG", lambda f: ["tv", _file("float.tif", lambda: _float_with(0.5))(f), "-o", f / "o.png",
                                         "-q", *FAST], 1, "TIFF", "o.png"),
    Case("unknown output extension", _with_good("tv", "@good.png", "-o", "@out.xyz", "-q", *FAST), 1,
         "unsupported output extension", "out.xyz"),
    Case("output is the input", _with_good("tv", "@good.png", "-o", "@good.png", "--overwrite", "-q", *FAST), 1,
         "would overwrite the input", "good.png"),
    Case("output exists", _with_good("tv", "@good.png", "-o", "@taken.png", "-q", *FAST,
                                     before=[("taken.png", b"keep me")]), 1, "exists", "taken.png"),
    Case("output under a file", _with_good("tv", "@good.png", "-o", "@plain.txt/o.png", "-q", *FAST,
                                           before=[("plain.txt", b"a file")]), 1, "not a folder", "good.png"),
    Case("noisy copy exists", _with_good("tv", "@good.png", "-o", "@o.png", "--add-noise", "gaussian:10",
                                         "--save-noisy", "-q", *FAST, before=[("o.noisy.png", b"keep me")]), 1,
         "exists", "o.noisy.png"),
    Case("output is a folder", lambda f: ["tv", _good(f), "-o", _folder(f, "dir.png"), "--overwrite", "-q", *FAST],
         1, "is a folder", "dir.png"),
    Case("SSIM of images of different sizes", lambda f: [
        "ssim", _good(f), _file("small.png", lambda: _png_bytes(_rgb((20, 24))))(f)], 1, "differ", "small.png"),
    Case("SSIM of a missing file", lambda f: ["ssim", _good(f), f / "gone.png"], 1, "no such file", "gone.png"),
    # files the tool must not write: usage errors, nothing run
    Case("SSIM map onto an input", _with_good("ssim", "@good.png", "@other.png", "--map", "@good.png",
                                              before=[("other.png", lambda: _png_bytes(_rgb(seed=1)))]), 2,
         "would overwrite the input", "good.png"),
    Case("SSIM map onto an existing file", _with_good("ssim", "@good.png", "@good.png", "--map", "@map.png",
                                                      before=[("map.png", b"keep me")]), 2, "exists", "map.png"),
    Case("report exists", _with_good("tv", "@good.png", "-o", "@o.png", "--report", "@r.json", "-q", *FAST,
                                     before=[("r.json", b"{}")]), 2, "exists", "r.json"),
    Case("report under a file", _with_good("tv", "@good.png", "-o", "@o.png", "--report", "@plain.txt/r.json", "-q",
                                           *FAST, before=[("plain.txt", b"a file")]), 2, "not a folder", "r.json"),
    Case("report with an unknown extension", _with_good("tv", "@good.png", "-o", "@o.png", "--report", "@r.txt",
                                                        *FAST), 2, ".json or .csv", "r.txt"),
    Case("report is an input", _with_good("tv", "@good.png", "-o", "@o.png", "--report", "@good.png", *FAST), 2,
         "report", "good.png"),
    # options and environment: usage errors, nothing run
    Case("weight nan", _with_good("tv", "@good.png", "--weight", "nan"), 2, "finite", "--weight"),
    Case("weight inf", _with_good("tv", "@good.png", "--weight", "inf"), 2, "finite", "--weight"),
    Case("negative weight", _with_good("tv", "@good.png", "--weight", "-1"), 2, "at least", "--weight"),
    Case("tolerance nan", _with_good("tv", "@good.png", "--tol", "nan"), 2, "finite", "--tol"),
    Case("gaussian noise nan", _with_good("tv", "@good.png", "--add-noise", "gaussian:nan"), 2, "finite",
         "--add-noise"),
    Case("gaussian noise inf", _with_good("noise", "@good.png", "--add", "gaussian:inf"), 2, "finite", "--add"),
    Case("poisson peak 0", _with_good("noise", "@good.png", "--add", "poisson:0"), 2, "positive", "--add"),
    Case("unknown noise", _with_good("noise", "@good.png", "--add", "salt:3"), 2, "gaussian:SIGMA", "--add"),
    Case("learning rate nan", _with_good("zsn2n", "@good.png", "--learning-rate", "nan"), 2, "finite",
         "--learning-rate"),
    Case("seed too large", _with_good("tv", "@good.png", "--seed", "99999999999999999999999"), 2, "range",
         "--seed"),
    Case("negative seed", _with_good("tv", "@good.png", "--seed", "-1"), 2, "range", "--seed"),
    Case("unknown device", _with_good("tv", "@good.png", "--device", "tpu"), 2, "unknown device", "tpu"),
    Case("--overwrite with --skip-existing", _with_good("tv", "@good.png", "--overwrite", "--skip-existing"), 2,
         "not both", "--skip-existing"),
    Case("-o with --output-dir", _with_good("tv", "@good.png", "-o", "@o.png", "--output-dir", "@out"), 2,
         "not both", "--output-dir"),
    Case("-o with two inputs", _with_good("tv", "@good.png", "@good2.png", "-o", "@o.png"), 2, "one output", "-o"),
    Case("bad weight in the environment", _with_good("tv", "@good.png"), 2, "DENOISE_TV_WEIGHT",
         "DENOISE_TV_WEIGHT", env={"DENOISE_TV_WEIGHT": "abc"}),
    Case("bad seed in the environment", _with_good("tv", "@good.png"), 2, "DENOISE_SEED", "DENOISE_SEED",
         env={"DENOISE_SEED": "x"}),
    Case("missing config file", _with_good("--config", "@none.json", "tv", "@good.png"), 2, "cannot read",
         "none.json"),
    Case("config file that is not JSON", _with_good("--config", "@c.json", "tv", "@good.png",
                                                    before=[("c.json", b"{weight: 1")]), 2, "not valid JSON",
         "c.json"),
    Case("config with an unknown key", _with_good("--config", "@c.json", "tv", "@good.png",
                                                  before=[("c.json", b'{"tv": {"wieght": 1}}')]), 2, "unknown key",
         "tv.wieght"),
    Case("config with a key twice", _with_good("--config", "@c.json", "tv", "@good.png",
                                               before=[("c.json", b'{"tv": {"weight": 0.1, "weight": 0.2}}')]), 2,
         "appears twice", "c.json"),
    Case("config with a NaN weight", _with_good("--config", "@c.json", "tv", "@good.png",
                                                before=[("c.json", b'{"tv": {"weight": NaN}}')]), 2, "finite",
         "tv.weight"),
    Case("missing reference folder", _with_good("tv", "@good.png", "@good2.png", "--output-dir", "@out",
                                                "--reference", "@nowhere/"), 2, "no such file or folder",
         "nowhere"),
    Case("unknown norm", _with_good("tv", "@good.png", "--norm", "euclid"), 2, "euclid", "--norm"),
    Case("no inputs in a folder", lambda f: ["tv", _folder(f, "empty")], 2, "no input images", None),
    Case("SSIM with --json and --csv", _with_good("ssim", "@good.png", "@good.png", "--json", "--csv"), 2,
         "not both", None),
    Case("unknown command", lambda f: ["sharpen", "x.png"], 2, "No such command", "sharpen"),
    # deblur: PSFs are read and checked before any work
    Case("PSF file missing", _with_good("deblur", "@good.png", "--psf", "@none.npy"), 2, "no such file", "none.npy"),
    Case("PSF with negative values", _with_good("deblur", "@good.png", "--psf", "@k.npy",
                                                before=[("k.npy", _npy([[1.0, -1.0, 1.0]]))]), 2, "negative", "k.npy"),
    Case("PSF with NaN", _with_good("deblur", "@good.png", "--psf", "@k.npy",
                                    before=[("k.npy", _npy([[1.0, float("nan")]]))]), 2, "NaN", "k.npy"),
    Case("PSF all zero", _with_good("deblur", "@good.png", "--psf", "@k.npy", before=[("k.npy", _npy([[0.0] * 3]))]),
         2, "all zero", "k.npy"),
    Case("empty PSF", _with_good("deblur", "@good.png", "--psf", "@k.npy", before=[("k.npy", _npy(np.zeros((0, 3))))]),
         2, "empty", "k.npy"),
    Case("PSF image that is text", _with_good("deblur", "@good.png", "--psf", "@k.png",
                                              before=[("k.png", b"not an image")]), 2, "not a readable image", "k.png"),
    Case("unknown PSF size", _with_good("deblur", "@good.png", "--psf", "gaussian:abc"), 2, "gaussian:SIGMA", "--psf"),
    Case("PSF larger than the image", _with_good("deblur", "@good.png", "--psf", "gaussian:20", "-q"), 1,
         "larger than the image", "good.png"),
    Case("deblur without a PSF", _with_good("deblur", "@good.png"), 2, "needs --psf", "auto"),
    Case("blind on an image under twice the PSF size", _with_good("deblur", "@good.png", "--psf", "auto", "-q"), 1,
         "too small", "good.png"),
    Case("--save-psf with two inputs", _with_good("deblur", "@good.png", "@good2.png", "--psf", "box:3",
                                                  "--save-psf", "@k.npy"), 2, "exactly one", "--save-psf"),
    Case("--save-psf onto the input", _with_good("deblur", "@good.png", "--psf", "box:3", "--save-psf",
                                                 "@good.png"), 2, "would overwrite the input", "good.png"),
    Case("chan-wong with a given PSF", _with_good("deblur", "@good.png", "--method", "chan-wong", "--psf", "box:3"),
         2, "psf auto", "--method chan-wong"),
]



def _encode(array: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def _corrupt_idat() -> bytes:
    """A PNG whose image data is not a zlib stream, with correct checksums."""
    data = _png_bytes(_rgb())
    at = data.index(b"IDAT")
    length = struct.unpack(">I", data[at - 4:at])[0]
    return data[:at - 4] + _chunk(b"IDAT", b"\x00garbage" * (length // 8 + 1)) + data[at + 8 + length:]


def _folder(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir()
    return path
