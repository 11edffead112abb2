"""Writing PNG files, 8 and 16 bits, gray or colour, with or without alpha, with the ICC profile and EXIF.

Each row gets the filter libpng and Pillow choose (of none, sub, up, average and Paeth, the one whose output has the
least sum of absolute values as signed bytes). The image is cut into bands of rows that are filtered and compressed
side by side on threads (numpy and zlib release the interpreter lock) and joined into one zlib stream, as pigz does:
each band ends on a byte boundary (a sync flush) and the stream's Adler-32 is combined from the bands'. The bands
depend on the image alone, so the same image gives the same file on any number of threads.
zlib's level 4 with its strategy for filtered data makes files about the size of Pillow's level 6 in half the time
on one thread (1024^2 RGB denoised mosaic: 1.703 MB in 0.31 s against 1.704 MB in 0.60 s; 0.18 s on two threads; a
smooth 4000x3000 upscale: 11.05 MB in 2.29 s, 1.12 s on two threads, against 10.78 MB in 5.34 s). 16-bit files,
written with no filter before, come out 15-17 % smaller.
"""
from __future__ import annotations

import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

import numpy as np

from .codecs import PNG_SIGNATURE

COMPRESSION_LEVEL = 4
#: The raw bytes of a band, the unit compressed on its own (side by side on threads). Bands are cut by size alone, so
#: a file's bytes do not depend on how many threads wrote it.
BAND_BYTES = 1 << 20
#: The raw bytes filtered at a time: the five candidate filterings of a block stay small.
BLOCK_BYTES = 256 << 10
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # channels -> PNG colour type: gray, gray + alpha, RGB, RGBA
_ADLER_BASE = 65521
#: A zlib stream's header: deflate with a 32 KiB window, the "fast" level flag, and its check bits (0x785e % 31 == 0).
_ZLIB_HEADER = b"\x78\x5e"


def encode_png(samples: np.ndarray, icc: Optional[bytes] = None, exif: Optional[bytes] = None,
               threads: int = 1) -> bytes:
    """The PNG file of ``samples`` (H, W, C), uint8 or uint16, C in 1-4 (gray, gray + alpha, RGB, RGBA), with an
    iCCP chunk for ``icc`` and an eXIf chunk for ``exif`` (with or without the 'Exif' header of JPEG's APP1), on up
    to ``threads`` threads."""
    height, width, channels = samples.shape
    depth = 16 if samples.dtype == np.uint16 else 8
    rows = np.ascontiguousarray(samples, dtype=">u2" if depth == 16 else np.uint8).reshape(height, -1).view(np.uint8)
    bands = _bands(height, rows.shape[1] + 1)
    pixel_bytes = channels * depth // 8

    def compress(band: tuple) -> tuple[bytes, int, int]:
        return _compress_band(rows, pixel_bytes, band, last=band[1] == height)

    workers = min(threads, len(bands))
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            pieces = list(pool.map(compress, bands))
    else:
        pieces = [compress(band) for band in bands]
    checksum = 1
    for _, band_checksum, length in pieces:
        checksum = _adler32_combine(checksum, band_checksum, length)
    stream = b"".join([_ZLIB_HEADER] + [data for data, _, _ in pieces] + [struct.pack(">I", checksum)])
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, _COLOUR_TYPES[channels], 0, 0, 0))]
    if icc:
        chunks.append((b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc)))
    if exif:
        chunks.append((b"eXIf", exif[6:] if exif.startswith(b"Exif\x00\x00") else exif))
    chunks += [(b"IDAT", stream), (b"IEND", b"")]
    return PNG_SIGNATURE + b"".join(struct.pack(">I", len(data)) + kind + data
                                    + struct.pack(">I", zlib.crc32(kind + data)) for kind, data in chunks)


def _bands(height: int, row_bytes: int) -> list:
    """Bands (first row, end row) of nearly equal height and about BAND_BYTES (at least one row, at least one band)."""
    count = max(1, min(height, height * row_bytes // BAND_BYTES))
    edges = [round(index * height / count) for index in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _compress_band(rows: np.ndarray, pixel_bytes: int, band: tuple, last: bool) -> tuple[bytes, int, int]:
    """The raw deflate data of the filtered rows of ``band`` (ending the stream when ``last``, else on a byte
    boundary), their Adler-32 and their length in bytes."""
    start, end = band
    compressor = zlib.compressobj(COMPRESSION_LEVEL, zlib.DEFLATED, -15, 9, zlib.Z_FILTERED)
    block_rows = max(1, BLOCK_BYTES // rows.shape[1])
    pieces, checksum, length = [], 1, 0
    for top in range(start, end, block_rows):
        bottom = min(top + block_rows, end)
        above = rows[top - 1] if top > 0 else np.zeros_like(rows[0])
        filtered = filter_rows(rows[top:bottom], above, pixel_bytes)
        checksum = zlib.adler32(filtered, checksum)
        length += filtered.size
        pieces.append(compressor.compress(filtered))
    pieces.append(compressor.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH))
    return b"".join(pieces), checksum, length


def filter_rows(rows: np.ndarray, above: np.ndarray, pixel_bytes: int) -> np.ndarray:
    """Rows (n, L) of bytes, each filtered with the filter that leaves the least sum of absolute values as signed
    bytes, as PNG's scanlines (n, L + 1): the filter type, then the filtered bytes. ``above``: the row before them
    (zeros for an image's first row); ``pixel_bytes``: bytes per pixel, the distance of 'left'."""
    up = np.concatenate([above[None], rows[:-1]])
    left = np.zeros_like(rows)
    left[:, pixel_bytes:] = rows[:, :-pixel_bytes]
    upper_left = np.zeros_like(rows)
    upper_left[:, pixel_bytes:] = up[:, :-pixel_bytes]
    a, b, c = (x.astype(np.int16) for x in (left, up, upper_left))
    distance_a, distance_b, distance_c = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    paeth = np.where((distance_a <= distance_b) & (distance_a <= distance_c), left,
                     np.where(distance_b <= distance_c, up, upper_left))
    average = ((a + b) >> 1).astype(np.uint8)
    candidates = np.stack([rows, rows - left, rows - up, rows - average, rows - paeth])  # uint8: modulo 256
    scores = np.minimum(candidates, 0 - candidates).sum(axis=2, dtype=np.uint32)  # |byte as signed|
    choice = scores.argmin(axis=0)
    chosen = candidates[choice, np.arange(rows.shape[0])]
    return np.concatenate([choice.astype(np.uint8)[:, None], chosen], axis=1)


def _adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of two byte strings one after the other, from theirs and the second's length (zlib's
    adler32_combine): the second's running sums restart at 1, so its A gains first's A - 1 and its B gains that
    once per byte."""
    a = ((first & 0xFFFF) + (second & 0xFFFF) - 1) % _ADLER_BASE
    b = ((first >> 16) + (second >> 16) + second_length * ((first & 0xFFFF) - 1)) % _ADLER_BASE
    return (b << 16) | a
