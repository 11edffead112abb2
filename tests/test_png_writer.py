"""The PNG writer against independent decoders (pypng, Pillow) and a scanline-at-a-time reference of PNG's filters."""
import io
import zlib

import numpy as np
import png
import pytest
from PIL import Image as PILImage

from denoise_cli.core import png_writer
from denoise_cli.core.png_writer import _adler32_combine, encode_png, filter_rows


def _decode_with_pypng(data: bytes) -> tuple[np.ndarray, dict]:
    width, height, rows, info = png.Reader(bytes=data).read()
    return np.vstack([np.asarray(row) for row in rows]).reshape(height, width, -1), info


@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (64, 33), (201, 150)])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_every_layout_decodes_to_the_samples_on_any_number_of_threads(monkeypatch, shape, channels, dtype):
    """Bands and blocks of a few rows here (a few MiB in use), so that small images have several; the file's bytes
    are the same on any number of threads."""
    monkeypatch.setattr(png_writer, "BAND_BYTES", 2000)
    monkeypatch.setattr(png_writer, "BLOCK_BYTES", 700)
    rng = np.random.default_rng(sum(shape) + channels)
    steps = rng.integers(-9, 10, size=shape + (channels,))  # smooth-ish rows, so that every filter gets chosen
    samples = (np.cumsum(steps, axis=1) % (np.iinfo(dtype).max + 1)).astype(dtype)
    files = [encode_png(samples, threads=threads) for threads in (1, 2, 3)]
    assert files[0] == files[1] == files[2]
    decoded, info = _decode_with_pypng(files[0])
    assert info["bitdepth"] == 8 * samples.itemsize and info["planes"] == channels
    assert np.array_equal(decoded, samples)


def _reference_filter(row: np.ndarray, above: np.ndarray, pixel_bytes: int) -> bytes:
    """PNG's five filters and libpng's choice, one byte at a time, as the specification writes them."""
    row, above, outputs = row.tolist(), above.tolist(), []
    for kind in range(5):
        out = []
        for i, x in enumerate(row):
            a = row[i - pixel_bytes] if i >= pixel_bytes else 0
            b = above[i]
            c = above[i - pixel_bytes] if i >= pixel_bytes else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            paeth = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            prediction = [0, a, b, (a + b) // 2, paeth][kind]
            out.append((x - prediction) % 256)
        outputs.append(out)
    scores = [sum(min(v, 256 - v) for v in out) for out in outputs]
    best = scores.index(min(scores))
    return bytes([best] + outputs[best])


@pytest.mark.parametrize("pixel_bytes", [1, 3, 8])
def test_rows_are_filtered_as_the_specification_and_libpng_choose(pixel_bytes):
    rng = np.random.default_rng(pixel_bytes)
    rows = rng.integers(0, 256, size=(6, 8 * pixel_bytes), dtype=np.uint8)
    rows[2] = rows[1]  # 'up' wins
    rows[3] = np.arange(rows.shape[1]) * 3 % 256  # 'sub' wins on a ramp
    above = rng.integers(0, 256, size=rows.shape[1], dtype=np.uint8)
    filtered = filter_rows(rows, above, pixel_bytes)
    for index in range(rows.shape[0]):
        previous = above if index == 0 else rows[index - 1]
        assert filtered[index].tobytes() == _reference_filter(rows[index], previous, pixel_bytes)
    assert filtered[2, 0] == 2 and filtered[3, 0] == 1


def test_adler32_of_joined_bands_equals_zlibs():
    rng = np.random.default_rng(0)
    for first, second in [(b"abc", b"defgh"), (rng.bytes(100_000), rng.bytes(70_001)), (b"", b"x"), (b"x", b"")]:
        assert _adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second)) == zlib.adler32(first + second)


def test_icc_profile_and_exif_are_written_for_pillow_to_read():
    exif = PILImage.Exif()
    exif[0x010F] = "denoise test camera"
    icc = b"\x00\x00\x02\x0cfake profile bytes" * 10
    samples = np.full((4, 5, 3), 200, np.uint16)
    for header in (b"", b"Exif\x00\x00"):  # EXIF as TIFF bytes, or with JPEG's APP1 header
        opened = PILImage.open(io.BytesIO(encode_png(samples, icc, header + exif.tobytes())))
        assert opened.info["icc_profile"] == icc
        assert opened.getexif()[0x010F] == "denoise test camera"


def test_a_photo_compresses_as_well_as_with_pillow(retina):
    """Filters chosen per row and zlib level 4 for filtered data: within 1 % of Pillow's default (level 6)."""
    buffer = io.BytesIO()
    PILImage.fromarray(retina).save(buffer, format="PNG")
    ours = encode_png(retina, threads=2)
    assert np.array_equal(np.asarray(PILImage.open(io.BytesIO(ours))), retina)
    assert len(ours) <= 1.01 * len(buffer.getvalue())
