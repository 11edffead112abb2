"""Format-specific decoders and encoders behind :mod:`.imageio`: Pillow for 8-bit files of every format and 16-bit
gray; pypng for 16-bit PNG (Pillow truncates 16-bit RGB and RGBA PNG to 8 bits); tifffile for TIFF (16-bit RGB and
float32 TIFF). PNG files are written by :mod:`.png_writer`.

A decoder takes the file's bytes and returns (samples (H, W, C) in the file's own type, format, ICC profile, EXIF
bytes, orientation code); an encoder takes (H, W, C) samples and returns the file's bytes.
"""
from __future__ import annotations

import io
import logging
import struct
import zlib
from typing import Iterator, Optional

import numpy as np
import png
import tifffile
from PIL import Image as PILImage

from .errors import DenoiseError

EXIF_ORIENTATION = 0x0112
_TIFF_ORIENTATION = 274
_TIFF_ICC = 34675
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")

# Our own limit (the caller's max_pixels, checked from the header before any pixel is decoded, for every format)
# replaces Pillow's, which warns at 89 Mpx with Python warning text and raises past 179 Mpx, below our limit.
PILImage.MAX_IMAGE_PIXELS = None
# tifffile logs what it finds wrong in a file as warnings, which Python would print on stderr beside our one-line
# error; a handler of its own keeps them off the terminal (an application that configures logging still gets them).
logging.getLogger("tifffile").addHandler(logging.NullHandler())


def check_size(name: str, width: int, height: int, max_pixels: int) -> None:
    """Refuse an image whose header claims more than ``max_pixels`` pixels, before it is decoded."""
    if width * height > max_pixels:
        raise DenoiseError(f"{name}: {width}x{height} pixels exceeds the limit of {max_pixels} pixels "
                           "(a guard against decompression bombs)")


def check_single_frame(name: str, frames: int) -> None:
    """Refuse animations and multi-page files: only one frame would be denoised and written back."""
    if frames > 1:
        raise DenoiseError(f"{name}: has {frames} frames (an animation or multi-page file); only single images are "
                           "supported")


def check_png_checksums(data: bytes, name: str) -> None:
    """Refuse a PNG any of whose chunks fails its CRC: Pillow does not check the image data's, pypng does."""
    for kind, body, crc in png_chunks(data):
        if crc is not None and zlib.crc32(kind + body) != crc:
            label = kind.decode("latin-1") if kind.isalpha() else "a"
            raise DenoiseError(f"{name}: corrupt PNG (checksum error in the {label} chunk)")


def key_to_alpha(samples: np.ndarray, key) -> np.ndarray:
    """(H, W, C) samples with a colour key (a tRNS gray value or RGB triple) -> (H, W, C + 1) with an alpha channel
    that is 0 where a pixel equals the key and the type's maximum elsewhere."""
    key = np.atleast_1d(np.asarray(key, dtype=samples.dtype))
    opaque = np.iinfo(samples.dtype).max
    alpha = np.where((samples == key).all(axis=2), 0, opaque).astype(samples.dtype)
    return np.concatenate([samples, alpha[:, :, None]], axis=2)


def decode_pillow(data: bytes, name: str, max_pixels: int):
    """8-bit images of every format, 16-bit gray, float32 ('F'), via Pillow."""
    with PILImage.open(io.BytesIO(data)) as img:
        check_size(name, img.width, img.height, max_pixels)
        check_single_frame(name, getattr(img, "n_frames", 1))
        img.load()
        fmt = img.format or "PNG"
        exif = img.getexif()
        orientation = int(exif.get(EXIF_ORIENTATION, 1) or 1)
        icc = img.info.get("icc_profile") or None
        samples = _pillow_samples(img, name)
    if EXIF_ORIENTATION in exif:
        exif[EXIF_ORIENTATION] = 1  # the pixels are upright from here on
    return samples, fmt, icc, (exif.tobytes() if len(exif) else None), orientation


def _pillow_samples(img: PILImage.Image, name: str) -> np.ndarray:
    """(H, W, C) samples in the image's own type; palettes expanded, bilevel to 8-bit gray, a colour key (tRNS) made an
    alpha channel."""
    mode = img.mode
    key = img.info.get("transparency") if mode in ("L", "RGB") else None
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
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return key_to_alpha(arr, key) if key is not None else arr


def decode_png16(data: bytes, name: str, max_pixels: int):
    """16-bit PNG of any colour type, exactly, via pypng."""
    width, height = struct.unpack(">II", data[16:24])
    check_size(name, width, height, max_pixels)
    reader = png.Reader(bytes=data)
    width, height, rows, info = reader.read()
    planes = int(info["planes"])
    samples = np.array([np.frombuffer(row, dtype=np.uint16) if isinstance(row, bytes) else row for row in rows],
                       dtype=np.uint16).reshape(height, width, planes)
    if info.get("transparent") is not None:
        samples = key_to_alpha(samples, info["transparent"])
    icc, exif_bytes = None, None
    for kind, body, _ in png_chunks(data):
        if kind == b"acTL" and len(body) >= 4:
            check_single_frame(name, struct.unpack(">I", body[:4])[0])
        elif kind == b"iCCP":
            _, _, compressed = body.partition(b"\x00")
            icc = zlib.decompress(compressed[1:])  # first byte: compression method 0
        elif kind == b"eXIf":
            exif_bytes = body
    orientation = 1
    if exif_bytes:
        exif = PILImage.Exif()
        exif.load(exif_bytes)
        orientation = int(exif.get(EXIF_ORIENTATION, 1) or 1)
        exif[EXIF_ORIENTATION] = 1
        exif_bytes = exif.tobytes()
    return samples, "PNG", icc, exif_bytes, orientation


def png_chunks(data: bytes) -> Iterator[tuple[bytes, bytes, Optional[int]]]:
    """(type, body, stored CRC or None where the file ends first) of each chunk of a PNG file."""
    pos = len(PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        end = pos + 8 + length
        crc = struct.unpack(">I", data[end:end + 4])[0] if end + 4 <= len(data) else None
        yield kind, data[pos + 8:end], crc
        pos = end + 4


def decode_tiff(data: bytes, name: str, max_pixels: int):
    """TIFF: 8/16-bit integer and 16/32/64-bit float samples, gray or RGB, optional alpha, via tifffile."""
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        check_single_frame(name, len(tif.pages))
        page = tif.pages[0]
        photometric = tifffile.PHOTOMETRIC(page.photometric)
        if photometric not in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.RGB):
            raise DenoiseError(f"{name}: TIFF photometric {photometric.name} is not supported (use gray or RGB)")
        check_size(name, page.imagewidth, page.imagelength, max_pixels)
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


def encode_pillow(samples: np.ndarray, fmt: str, icc: Optional[bytes], exif: Optional[bytes]) -> bytes:
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


def encode_tiff(samples: np.ndarray, icc: Optional[bytes]) -> bytes:
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
