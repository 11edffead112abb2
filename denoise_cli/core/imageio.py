"""Reading and writing image files without losing information.

The rest of the package sees an image as a float32 tensor of shape (1, C, H, W) with C = 1 (gray) or 3 (RGB) and
values in [0, 1] (the file's sample range mapped onto [0, 1]). Everything else the file carries and the denoisers must
not touch travels beside it in :class:`Image`: the alpha channel (raw samples), the sample type (uint8, uint16,
float32), the format, the ICC profile and the EXIF block. Writing puts all of it back, so a round trip is bit-exact.

The format-specific work is in :mod:`.codecs`. EXIF orientation is applied on read. Writes go
to a temporary file in the target folder and are renamed into place, so a crash never leaves a partial file.
"""
from __future__ import annotations

import errno
import os
import secrets
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Optional, Union

import numpy as np
import png
import torch
from PIL import UnidentifiedImageError

from . import codecs
from .errors import DenoiseError, plain_reason
from .png_writer import encode_png

PathLike = Union[str, Path]
STDIO = "-"
#: Largest image accepted, in pixels (a guard against decompression bombs): 2^28, about 268 megapixels.
MAX_PIXELS = 1 << 28
#: File name suffixes we read and write, and the format each stands for.
FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP",
           ".webp": "WEBP"}


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


def quantisation_step(dtype: np.dtype) -> float:
    """One level of an integer sample type in [0, 1] units (1/255 for uint8), 0.0 for floating point."""
    return 1.0 / sample_range(dtype) if np.dtype(dtype).kind in "ui" else 0.0


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
            raise DenoiseError(f"{name}: cannot read ({plain_reason(exc)})") from None
    return decode_image(data, name, max_pixels)


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> Image:
    """Decode the bytes of an image file; ``name`` is used in error messages."""
    if not data:
        raise DenoiseError(f"{name}: empty file (0 bytes)")
    try:
        if data[:4] in codecs.TIFF_SIGNATURES:
            samples, fmt, icc, exif, orientation = codecs.decode_tiff(data, name, max_pixels)
        elif data[:8] == codecs.PNG_SIGNATURE:
            codecs.check_png_checksums(data, name)
            png16 = len(data) > 24 and data[24] == 16  # IHDR bit depth byte
            decode = codecs.decode_png16 if png16 else codecs.decode_pillow
            samples, fmt, icc, exif, orientation = decode(data, name, max_pixels)
        else:
            samples, fmt, icc, exif, orientation = codecs.decode_pillow(data, name, max_pixels)
    except DenoiseError:
        raise
    except UnidentifiedImageError:
        raise DenoiseError(f"{name}: not a readable image (unrecognised format or corrupt header)") from None
    except png.FormatError as exc:
        raise DenoiseError(f"{name}: not a readable image ({_decoder_reason(exc)})") from None
    except MemoryError:
        raise DenoiseError(f"{name}: not enough memory to decode this image") from None
    except Exception as exc:  # decoders parse untrusted bytes: whatever they raise, the file is at fault
        raise DenoiseError(f"{name}: corrupt or truncated image ({_decoder_reason(exc)})") from None
    if samples.dtype.kind == "f":
        _check_finite(samples, name)
    samples = _apply_orientation(samples, orientation)
    return _image_from_samples(samples, fmt, icc, exif)


def _decoder_reason(exc: Exception) -> str:
    """A decoder's own words (pypng puts its class name in front of them; plain_reason drops Python's)."""
    if isinstance(exc, png.Error) and exc.args:
        return " ".join(str(arg) for arg in exc.args).strip().splitlines()[0]
    return plain_reason(exc)


def _check_finite(samples: np.ndarray, name: str) -> None:
    """Refuse float samples that are NaN or infinite: one such value spreads through every denoiser."""
    bad = int(np.count_nonzero(~np.isfinite(samples)))
    if bad:
        raise DenoiseError(f"{name}: {bad} sample(s) are NaN or infinite; replace them with numbers first")


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
    check_encodable(image, fmt, name)
    samples = tensor_to_samples(image.pixels, image.dtype)
    if image.alpha is not None:
        samples = np.concatenate([samples, image.alpha[:, :, None].astype(image.dtype)], axis=2)
    if fmt == "TIFF":
        return codecs.encode_tiff(samples, image.icc_profile)
    if fmt == "PNG":
        return encode_png(samples, image.icc_profile, image.exif, threads=torch.get_num_threads())
    return codecs.encode_pillow(samples, fmt, image.icc_profile, image.exif)


def check_encodable(image: Image, fmt: str, name: str = "<output>") -> None:
    """Raise DenoiseError if ``fmt`` cannot hold ``image``'s sample type or alpha (never a silent conversion); cheap,
    so callers check right after reading, before any work."""
    dtype = np.dtype(image.dtype)
    if fmt == "TIFF":
        return
    if dtype.kind == "f":
        raise DenoiseError(f"{name}: float samples can only be written as TIFF (.tif)")
    if dtype == np.uint16 and fmt != "PNG":
        raise DenoiseError(f"{name}: {fmt} cannot hold 16-bit samples; write .png or .tif")
    if image.alpha is not None and (fmt == "JPEG" or fmt == "BMP" and image.channels == 1):
        raise DenoiseError(f"{name}: {fmt} cannot hold an alpha channel; write .png, .tif or .webp")

def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder (``-``: stdout).

    The temporary file is created inside the ``try``, under a name known before, so an interrupt at any point (Ctrl-C,
    or the SIGTERM that stops a worker) leaves either no file or the whole one, never a ``.part`` file."""
    if str(path) == STDIO:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a part of the path is a file
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(target.parent)) from None
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(8)}.part")
    try:
        with open(tmp, "xb") as handle:  # mode 0o666 less the umask, as any new file
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except FileExistsError:  # another writer's file by that name (1 in 2**64): not ours to remove
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
