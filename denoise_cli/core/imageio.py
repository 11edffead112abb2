"""Reading and writing image files without losing information.

The rest of the package sees an image as a float32 tensor of shape (1, C, H, W) with C = 1 (gray) or 3 (RGB) and
values in [0, 1] (the file's sample range mapped onto [0, 1]). Everything else the file carries and the denoisers must
not touch travels beside it in :class:`Image`: the alpha channel (raw samples), the sample type (uint8, uint16,
float32), the format, the ICC profile and the EXIF block. Writing puts all of it back, so a round trip is bit-exact.

Readers: Pillow for 8-bit files of every format and 16-bit gray; pypng for 16-bit PNG (Pillow truncates 16-bit RGB and
RGBA PNG to 8 bits); tifffile for TIFF (16-bit RGB and float32 TIFF). EXIF orientation is applied on read. Writes go
to a temporary file in the target folder and are renamed into place, so a crash never leaves a partial file.
"""
from __future__ import annotations

import io
import os
import struct
import sys
import tempfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator, Optional, Union

import numpy as np
import png
import tifffile
import torch
from PIL import Image as PILImage
from PIL import UnidentifiedImageError

from .errors import DenoiseError

PathLike = Union[str, Path]
STDIO = "-"
#: Largest image accepted, in pixels (a guard against decompression bombs): 2^28, about 268 megapixels.
MAX_PIXELS = 1 << 28
#: File name suffixes we read and write, and the format each stands for.
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
           ".webp": "WEBP"}
_EXIF_ORIENTATION = 0x0112
_TIFF_ORIENTATION = 274
_TIFF_ICC = 34675
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


@dataclass(frozen=True)
class Image:
    """A decoded image: pixels for the denoisers plus everything needed to write it back unchanged.

    pixels: (1, C, H, W) float32 in [0, 1], C = 1 or 3 (colour channels only).
    alpha: (H, W) raw alpha samples in ``dtype``, or None; passed through untouched.
    dtype: the file's sample type: uint8, uint16 or float32.
    """

    pixels: torch.Tensor
    alpha: Optional[np.ndarray]
    dtype: np.dtype
    format: str
    icc_profile: Optional[bytes] = None
    exif: Optional[bytes] = None

    @property
    def data_range(self) -> float:
        """The sample range of the file's type: 255, 65535, or 1.0 for float."""
        return sample_range(self.dtype)

    @property
    def bit_depth(self) -> int:
        return np.dtype(self.dtype).itemsize * 8

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[1])

    def with_pixels(self, pixels: torch.Tensor) -> "Image":
        """The same image (alpha, metadata) with new colour pixels of the same shape."""
        if tuple(pixels.shape) != tuple(self.pixels.shape):
            raise ValueError(f"pixel shape {tuple(pixels.shape)} differs from {tuple(self.pixels.shape)}")
        return replace(self, pixels=pixels)


def sample_range(dtype: np.dtype) -> float:
    """255 for uint8, 65535 for uint16, 1.0 for floating point samples."""
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0


# ----------------------------------------------------------------------------------------------------------- reading

def read_image(path: PathLike, max_pixels: int = MAX_PIXELS) -> Image:
    """Read an image file (or stdin for ``-``). Raises DenoiseError naming the file and the cause."""
    name = str(path)
    if name == STDIO:
        data = sys.stdin.buffer.read()
        name = "<stdin>"
    else:
        p = Path(path)
        if p.is_dir():
            raise DenoiseError(f"{name}: is a folder, not an image file")
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise DenoiseError(f"{name}: no such file") from None
        except OSError as exc:
            raise DenoiseError(f"{name}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, name, max_pixels)


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> Image:
    """Decode the bytes of an image file; ``name`` is used in error messages."""
    if not data:
        raise DenoiseError(f"{name}: empty file (0 bytes)")
    try:
        if data[:4] in _TIFF_SIGNATURES:
            samples, fmt, icc, exif, orientation = _decode_tiff(data, name, max_pixels)
        elif data[:8] == _PNG_SIGNATURE and len(data) > 24 and data[24] == 16:  # IHDR bit depth byte
            samples, fmt, icc, exif, orientation = _decode_png16(data, name, max_pixels)
        else:
            samples, fmt, icc, exif, orientation = _decode_pillow(data, name, max_pixels)
    except DenoiseError:
        raise
    except UnidentifiedImageError:
        raise DenoiseError(f"{name}: not a readable image (unrecognised format or corrupt header)") from None
    except png.FormatError as exc:
        raise DenoiseError(f"{name}: not a readable image ({_first_line(exc)})") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, zlib.error,
            tifffile.TiffFileError) as exc:
        raise DenoiseError(f"{name}: corrupt or truncated image ({_first_line(exc)})") from None
    samples = _apply_orientation(samples, orientation)
    return _image_from_samples(samples, fmt, icc, exif)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _check_size(name: str, width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise DenoiseError(f"{name}: {width}x{height} pixels exceeds the limit of {max_pixels} pixels "
                           "(possible decompression bomb)")


def _decode_pillow(data: bytes, name: str, max_pixels: int):
    """8-bit images of every format, 16-bit gray, float32 ('F'), via Pillow."""
    with PILImage.open(io.BytesIO(data)) as img:
        _check_size(name, img.width, img.height, max_pixels)
        img.load()
        fmt = img.format or "PNG"
        exif = img.getexif()
        orientation = int(exif.get(_EXIF_ORIENTATION, 1) or 1)
        icc = img.info.get("icc_profile") or None
        samples = _pillow_samples(img, name)
    if _EXIF_ORIENTATION in exif:
        exif[_EXIF_ORIENTATION] = 1  # the pixels are upright from here on
    return samples, fmt, icc, (exif.tobytes() if len(exif) else None), orientation


def _pillow_samples(img: PILImage.Image, name: str) -> np.ndarray:
    """(H, W, C) samples in the image's own type; palettes expanded, bilevel to 8-bit gray."""
    mode = img.mode
    if mode == "1":
        img, mode = img.convert("L"), "L"
    elif mode == "P":
        mode = "RGBA" if "transparency" in img.info else "RGB"
        img = img.convert(mode)
    elif mode == "PA":
        img, mode = img.convert("RGBA"), "RGBA"
    elif mode == "YCbCr":
        img, mode = img.convert("RGB"), "RGB"
    if mode in ("L", "LA", "RGB", "RGBA"):
        arr = np.asarray(img, dtype=np.uint8)
    elif mode.startswith("I;16"):
        arr = np.asarray(img).astype(np.uint16)
    elif mode == "I":
        arr = np.asarray(img)
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise DenoiseError(f"{name}: 32-bit integer samples outside 0..65535 are not supported")
        arr = arr.astype(np.uint16)
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float32)
    else:
        raise DenoiseError(f"{name}: unsupported image mode {mode!r} (convert it to gray or RGB first)")
    return arr[:, :, None] if arr.ndim == 2 else arr


def _decode_png16(data: bytes, name: str, max_pixels: int):
    """16-bit PNG of any colour type, exactly, via pypng."""
    width, height = struct.unpack(">II", data[16:24])
    _check_size(name, width, height, max_pixels)
    reader = png.Reader(bytes=data)
    width, height, rows, info = reader.read()
    if info.get("transparent") is not None:
        raise DenoiseError(f"{name}: 16-bit PNG with a tRNS colour key is not supported")
    planes = int(info["planes"])
    samples = np.array([np.frombuffer(row, dtype=np.uint16) if isinstance(row, bytes) else row for row in rows],
                       dtype=np.uint16).reshape(height, width, planes)
    icc, exif_bytes = None, None
    for kind, body in _png_chunks(data):
        if kind == b"iCCP":
            _, _, compressed = body.partition(b"\x00")
            icc = zlib.decompress(compressed[1:])  # first byte: compression method 0
        elif kind == b"eXIf":
            exif_bytes = body
    orientation = 1
    if exif_bytes:
        exif = PILImage.Exif()
        exif.load(exif_bytes)
        orientation = int(exif.get(_EXIF_ORIENTATION, 1) or 1)
        exif[_EXIF_ORIENTATION] = 1
        exif_bytes = exif.tobytes()
    return samples, "PNG", icc, exif_bytes, orientation


def _png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(type, body) of each chunk of a PNG file."""
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        yield kind, data[pos + 8:pos + 8 + length]
        pos += 12 + length


def _decode_tiff(data: bytes, name: str, max_pixels: int):
    """TIFF: 8/16-bit integer and 16/32/64-bit float samples, gray or RGB, optional alpha, via tifffile."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        if len(tif.pages) > 1:
            raise DenoiseError(f"{name}: multi-page TIFF ({len(tif.pages)} pages) is not supported")
        page = tif.pages[0]
        photometric = tifffile.PHOTOMETRIC(page.photometric)
        if photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
            raise DenoiseError(f"{name}: TIFF photometric {photometric.name} is not supported (use gray or RGB)")
        _check_size(name, page.imagewidth, page.imagelength, max_pixels)
        arr = page.asarray()
        if page.axes.startswith("S"):  # planar configuration 'separate': (S, H, W)
            arr = np.moveaxis(arr, 0, -1)
        icc_tag = page.tags.get(_TIFF_ICC)
        orientation_tag = page.tags.get(_TIFF_ORIENTATION)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] > 4:
        raise DenoiseError(f"{name}: TIFF with shape {arr.shape} is not supported (expected gray or RGB, "
                           "optionally with alpha)")
    if arr.dtype.kind == "f":
        arr = arr.astype(np.float32)
    elif arr.dtype not in (np.uint8, np.uint16):
        raise DenoiseError(f"{name}: TIFF sample type {arr.dtype} is not supported (use uint8, uint16 or float32)")
    icc = bytes(icc_tag.value) if icc_tag is not None else None
    orientation = int(orientation_tag.value) if orientation_tag is not None else 1
    return arr, "TIFF", icc, None, orientation


def _apply_orientation(samples: np.ndarray, orientation: int) -> np.ndarray:
    """Turn (H, W, C) samples upright according to the EXIF/TIFF orientation code 1..8."""
    transforms = {
        1: lambda a: a,
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.swapaxes(0, 1),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
        8: lambda a: np.rot90(a, 1),
    }
    return np.ascontiguousarray(transforms.get(orientation, transforms[1])(samples))


def _image_from_samples(samples: np.ndarray, fmt: str, icc: Optional[bytes], exif: Optional[bytes]) -> Image:
    """Split (H, W, C) samples into colour pixels in [0, 1] and untouched alpha."""
    channels = samples.shape[2]
    alpha = samples[:, :, -1].copy() if channels in (2, 4) else None
    colour = samples[:, :, :-1] if alpha is not None else samples
    return Image(pixels=samples_to_tensor(colour), alpha=alpha, dtype=samples.dtype, format=fmt,
                 icc_profile=icc, exif=exif)


def samples_to_tensor(samples: np.ndarray) -> torch.Tensor:
    """(H, W, C) samples of an integer or float type -> (1, C, H, W) float32 in [0, 1]."""
    pixels = torch.empty(samples.shape[2], samples.shape[0], samples.shape[1], dtype=torch.float32)
    # one pass, straight into the tensor's memory (decoders hand out read-only arrays, which torch will not wrap)
    np.divide(samples.transpose(2, 0, 1), np.float32(sample_range(samples.dtype)), out=pixels.numpy(),
              dtype=np.float32)
    return pixels[None]


def tensor_to_samples(pixels: torch.Tensor, dtype: np.dtype) -> np.ndarray:
    """(1, C, H, W) or (C, H, W) values in [0, 1] -> (H, W, C) samples of ``dtype`` (integers: rounded, clipped)."""
    if pixels.dim() == 4:
        if pixels.shape[0] != 1:
            raise ValueError("write one image at a time")
        pixels = pixels[0]
    arr = pixels.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy()
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return arr.astype(dtype)
    return np.rint(np.clip(arr, 0.0, 1.0) * np.float32(sample_range(dtype))).astype(dtype)


def as_stored(pixels: torch.Tensor, dtype: np.dtype) -> torch.Tensor:
    """The pixels exactly as a file of sample type ``dtype`` would hold them (quantised), back in [0, 1]."""
    return samples_to_tensor(tensor_to_samples(pixels, dtype)).to(pixels.device)


# ----------------------------------------------------------------------------------------------------------- writing

def format_for_path(path: PathLike, fallback: Optional[str] = None) -> str:
    """The format a path's extension asks for; ``-`` (stdout) takes ``fallback``."""
    if str(path) == STDIO:
        if fallback is None:
            raise DenoiseError("writing to stdout needs a known format")
        return fallback
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(sorted(FORMATS))
        raise DenoiseError(f"{path}: unsupported output extension {suffix or '(none)'!r} (use one of {known})")
    return FORMATS[suffix]


def write_image(path: PathLike, image: Image) -> None:
    """Write ``image`` in the format its path's extension names (stdout for ``-``), atomically."""
    fmt = format_for_path(path, fallback=image.format)
    data = encode_image(image, fmt, name=str(path))
    write_bytes_atomic(path, data)


def encode_image(image: Image, fmt: str, name: str = "<output>") -> bytes:
    """The bytes of ``image`` encoded as ``fmt`` with its sample type, alpha, ICC profile and EXIF."""
    samples = tensor_to_samples(image.pixels, image.dtype)
    if image.alpha is not None:
        samples = np.concatenate([samples, image.alpha[:, :, None].astype(image.dtype)], axis=2)
    dtype = np.dtype(image.dtype)
    if fmt == "TIFF":
        return _encode_tiff(samples, image.icc_profile)
    if dtype.kind == "f":
        raise DenoiseError(f"{name}: float samples can only be written as TIFF (.tif)")
    if dtype == np.uint16:
        if fmt != "PNG":
            raise DenoiseError(f"{name}: {fmt} cannot hold 16-bit samples; write .png or .tif")
        return _encode_png16(samples, image.icc_profile)
    if fmt in ("JPEG", "BMP") and samples.shape[2] == 2 or fmt == "JPEG" and samples.shape[2] == 4:
        raise DenoiseError(f"{name}: {fmt} cannot hold an alpha channel; write .png, .tif or .webp")
    return _encode_pillow(samples, fmt, image.icc_profile, image.exif)


def _encode_pillow(samples: np.ndarray, fmt: str, icc: Optional[bytes], exif: Optional[bytes]) -> bytes:
    pil = PILImage.fromarray(samples[:, :, 0] if samples.shape[2] == 1 else samples)
    options: dict = {}
    if icc:
        options["icc_profile"] = icc
    if exif and fmt in ("JPEG", "PNG", "WEBP"):
        options["exif"] = exif
    if fmt == "JPEG":
        options.update(quality=95, subsampling=0)
    elif fmt == "WEBP":
        options.update(lossless=True, quality=100)
    buffer = io.BytesIO()
    pil.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _encode_png16(samples: np.ndarray, icc: Optional[bytes]) -> bytes:
    """A 16-bit PNG written directly (filter type 0 on every row), with an iCCP chunk when there is a profile."""
    height, width, channels = samples.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    rows = samples.astype(">u2").reshape(height, width * channels).view(np.uint8)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows.reshape(height, -1)], axis=1)
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))]
    if icc:
        chunks.append((b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc)))
    chunks += [(b"IDAT", zlib.compress(raw.tobytes(), 6)), (b"IEND", b"")]
    body = b"".join(struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
                    for kind, data in chunks)
    return _PNG_SIGNATURE + body


def _encode_tiff(samples: np.ndarray, icc: Optional[bytes]) -> bytes:
    channels = samples.shape[2]
    buffer = io.BytesIO()
    tifffile.imwrite(
        buffer,
        samples[:, :, 0] if channels == 1 else samples,
        photometric="rgb" if channels >= 3 else "minisblack",
        planarconfig="contig" if channels > 1 else None,
        extrasamples=("unassalpha",) if channels in (2, 4) else None,
        iccprofile=icc,
        metadata=None,
    )
    return buffer.getvalue()


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder (``-``: stdout)."""
    if str(path) == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
