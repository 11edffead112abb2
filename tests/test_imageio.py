"""Image I/O: bit-exact round trips, metadata kept, orientation applied, clear errors."""
import io
import itertools
import struct
import sys
import zlib

import numpy as np
import png
import pytest
import tifffile
from PIL import Image as PILImage
from PIL import ImageCms, ImageOps

from denoise_cli.core import imageio
from denoise_cli.core.errors import DenoiseError


def _samples(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max + 1, shape, dtype=dtype)


def _roundtrip(tmp_path, name, samples):
    """Write ``samples`` with an independent writer, read with ours, write with ours, read back with the writer."""
    path = tmp_path / name
    if name.endswith(".tif"):
        tifffile.imwrite(path, samples, photometric="rgb" if samples.ndim == 3 and samples.shape[2] >= 3
                         else "minisblack", extrasamples=("unassalpha",) if samples.ndim == 3
                         and samples.shape[2] in (2, 4) else None)
    elif samples.dtype == np.uint16:
        h, w = samples.shape[:2]
        planes = 1 if samples.ndim == 2 else samples.shape[2]
        with open(path, "wb") as handle:
            png.Writer(w, h, greyscale=planes <= 2, alpha=planes in (2, 4), bitdepth=16).write(
                handle, samples.reshape(h, -1).tolist())
    else:
        PILImage.fromarray(samples).save(path)
    image = imageio.read_image(path)
    out = tmp_path / ("out_" + name)
    imageio.write_image(out, image)
    if name.endswith(".tif"):
        back = tifffile.imread(out)
    elif samples.dtype == np.uint16:
        w, h, rows, info = png.Reader(filename=str(out)).read()
        back = np.array([np.asarray(r) for r in rows], dtype=np.uint16).reshape(samples.shape)
    else:
        back = np.asarray(PILImage.open(out))
    return image, back


@pytest.mark.parametrize("name,shape,dtype", [
    ("g8.png", (17, 23), np.uint8), ("rgb8.png", (17, 23, 3), np.uint8), ("rgba8.png", (17, 23, 4), np.uint8),
    ("g16.png", (17, 23), np.uint16), ("rgb16.png", (17, 23, 3), np.uint16), ("rgba16.png", (17, 23, 4), np.uint16),
    ("ga16.png", (17, 23, 2), np.uint16),
    ("g16.tif", (17, 23), np.uint16), ("rgb16.tif", (17, 23, 3), np.uint16), ("rgb8.tif", (17, 23, 3), np.uint8),
    ("f32.tif", (17, 23), np.float32), ("rgbf32.tif", (17, 23, 3), np.float32),
    ("rgba16.tif", (17, 23, 4), np.uint16),
])
def test_round_trip_is_bit_exact(tmp_path, name, shape, dtype):
    samples = _samples(shape, dtype)
    image, back = _roundtrip(tmp_path, name, samples)
    assert image.dtype == np.dtype(dtype)
    assert back.dtype == samples.dtype
    np.testing.assert_array_equal(back, samples)


def test_sixteen_bit_rgb_png_is_not_truncated(tmp_path):
    samples = np.full((4, 5, 3), 0x1234, dtype=np.uint16)
    image, _ = _roundtrip(tmp_path, "deep.png", samples)
    assert image.bit_depth == 16
    assert float(image.pixels[0, 0, 0, 0]) == pytest.approx(0x1234 / 65535, abs=1e-7)


@pytest.mark.parametrize("ext", ["bmp", "webp"])
def test_lossless_8bit_formats_round_trip(tmp_path, ext):
    samples = _samples((16, 20, 3), np.uint8)
    path = tmp_path / f"a.{ext}"
    PILImage.fromarray(samples).save(path, **({"lossless": True} if ext == "webp" else {}))
    out = tmp_path / f"b.{ext}"
    imageio.write_image(out, imageio.read_image(path))
    np.testing.assert_array_equal(np.asarray(PILImage.open(out)), samples)


def _icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.mark.parametrize("name,dtype", [("a.png", np.uint8), ("a.jpg", np.uint8), ("a.tif", np.uint16),
                                        ("a.png", np.uint16)])
def test_icc_profile_survives(tmp_path, name, dtype):
    icc = _icc()
    samples = _samples((16, 16, 3), dtype)
    image = imageio.Image(pixels=imageio.samples_to_tensor(samples), alpha=None, dtype=np.dtype(dtype),
                          format="PNG", icc_profile=icc)
    first = tmp_path / name
    imageio.write_image(first, image)
    again = imageio.read_image(first)
    assert again.icc_profile == icc
    second = tmp_path / ("2" + name)
    imageio.write_image(second, again)
    assert imageio.read_image(second).icc_profile == icc


def test_alpha_is_passed_through_untouched(tmp_path):
    samples = _samples((12, 14, 4), np.uint8)
    path = tmp_path / "a.png"
    PILImage.fromarray(samples).save(path)
    image = imageio.read_image(path)
    np.testing.assert_array_equal(image.alpha, samples[:, :, 3])
    assert image.channels == 3
    out = tmp_path / "b.png"
    imageio.write_image(out, image.with_pixels(image.pixels * 0.5))
    np.testing.assert_array_equal(np.asarray(PILImage.open(out))[:, :, 3], samples[:, :, 3])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied_like_pillow(tmp_path, orientation):
    samples = _samples((6, 10, 3), np.uint8)
    exif = PILImage.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    PILImage.fromarray(samples).save(path, exif=exif.tobytes())
    expected = np.asarray(ImageOps.exif_transpose(PILImage.open(path)))
    image = imageio.read_image(path)
    np.testing.assert_array_equal(imageio.tensor_to_samples(image.pixels, np.uint8), expected)
    out = tmp_path / "upright.png"
    imageio.write_image(out, image)
    assert PILImage.open(out).getexif().get(0x0112, 1) == 1  # not rotated twice by a viewer


def test_exif_rotated_jpeg_comes_out_upright(tmp_path):
    upright = np.zeros((40, 20, 3), np.uint8)
    upright[:10] = 255  # a white band at the top of the upright picture
    stored = np.rot90(upright, 1)  # how a camera held sideways stores it; orientation 6 turns it back
    exif = PILImage.Exif()
    exif[0x0112] = 6
    path = tmp_path / "camera.jpg"
    PILImage.fromarray(np.ascontiguousarray(stored)).save(path, exif=exif.tobytes(), quality=100)
    image = imageio.read_image(path)
    assert tuple(image.pixels.shape) == (1, 3, 40, 20)
    assert float(image.pixels[0, :, :10].mean()) > 0.95
    assert float(image.pixels[0, :, 12:].mean()) < 0.05


def test_palette_and_gray_alpha_modes(tmp_path):
    palette = PILImage.fromarray(_samples((8, 8, 3), np.uint8)).convert("P")
    palette.save(tmp_path / "p.png")
    assert imageio.read_image(tmp_path / "p.png").channels == 3
    PILImage.fromarray(_samples((8, 8, 2), np.uint8), "LA").save(tmp_path / "la.png")
    image = imageio.read_image(tmp_path / "la.png")
    assert image.channels == 1 and image.alpha is not None


def _truncated_png(tmp_path):
    path = tmp_path / "cut.png"
    PILImage.fromarray(_samples((64, 64, 3), np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize("make,cause", [
    (lambda p: p / "missing.png", "no such file"),
    (lambda p: (p / "text.png").write_text("hello, not an image") and p / "text.png", "not a readable image"),
    (lambda p: (p / "empty.png").write_bytes(b"") or p / "empty.png", "empty file"),
    (_truncated_png, "corrupt or truncated"),
    (lambda p: p, "is a folder"),
])
def test_bad_inputs_give_a_clear_error(tmp_path, make, cause):
    path = make(tmp_path)
    with pytest.raises(DenoiseError) as info:
        imageio.read_image(path)
    message = str(info.value)
    assert str(path) in message and cause in message
    assert "\n" not in message


def test_decompression_bomb_guard(tmp_path):
    path = tmp_path / "big.png"
    PILImage.fromarray(np.zeros((100, 100), np.uint8)).save(path)
    with pytest.raises(DenoiseError, match="exceeds the limit"):
        imageio.read_image(path, max_pixels=5000)


def test_bomb_guard_checks_sixteen_bit_png_header_before_decoding(tmp_path):
    header = struct.pack(">IIBBBBB", 100000, 100000, 16, 2, 0, 0, 0)
    chunk = struct.pack(">I", len(header)) + b"IHDR" + header + struct.pack(">I", zlib.crc32(b"IHDR" + header))
    path = tmp_path / "bomb.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk)
    with pytest.raises(DenoiseError, match="exceeds the limit"):
        imageio.read_image(path)


@pytest.mark.parametrize("name,dtype,alpha,cause", [
    ("x.jpg", np.uint16, False, "16-bit"), ("x.png", np.float32, False, "TIFF"), ("x.jpg", np.uint8, True, "alpha"),
    ("x.gif", np.uint8, False, "unsupported output extension"),
])
def test_unwritable_combinations_are_refused(tmp_path, name, dtype, alpha, cause):
    samples = _samples((8, 8, 3), dtype)
    image = imageio.Image(pixels=imageio.samples_to_tensor(samples), dtype=np.dtype(dtype), format="PNG",
                          alpha=np.zeros((8, 8), dtype) if alpha else None)
    with pytest.raises(DenoiseError, match=cause):
        imageio.write_image(tmp_path / name, image)
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    image = imageio.Image(pixels=imageio.samples_to_tensor(_samples((8, 8, 1), np.uint8)), alpha=None,
                          dtype=np.dtype(np.uint8), format="PNG")
    target = tmp_path / "sub" / "out.png"
    imageio.write_image(target, image)
    assert [p.name for p in target.parent.iterdir()] == ["out.png"]


def _interrupted_after(events: int):
    """A trace function that raises KeyboardInterrupt at the ``events``-th traced event, as a signal would."""
    seen = 0

    def trace(frame, event, arg):
        nonlocal seen
        seen += 1
        if seen == events:
            raise KeyboardInterrupt  # tracing stops with it: one interrupt, as one signal
        return trace
    return trace


def test_an_interrupt_at_any_point_of_a_write_leaves_the_whole_file_or_none(tmp_path):
    data = bytes(range(256)) * 64
    for events in itertools.count(1):
        folder = tmp_path / str(events)
        folder.mkdir()
        sys.settrace(_interrupted_after(events))
        try:
            imageio.write_bytes_atomic(folder / "out.png", data)
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        finally:
            sys.settrace(None)
        files = {p.name: p.read_bytes() for p in folder.iterdir()}
        assert files in ({}, {"out.png": data}), f"interrupted at event {events}: {sorted(files)}"
        if not interrupted:  # every point of the write was tried
            assert events > 20
            break


def test_decode_from_bytes_matches_file(tmp_path):
    samples = _samples((9, 7, 3), np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(samples).save(buffer, format="PNG")
    image = imageio.decode_image(buffer.getvalue())
    np.testing.assert_array_equal(imageio.tensor_to_samples(image.pixels, np.uint8), samples)
