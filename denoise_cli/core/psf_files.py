"""Reading and writing point-spread functions (blur kernels) as files: ``.npy`` arrays, or images of any bit depth.

A PSF is a 2-D float64 array. Images are read with :mod:`.imageio` (a colour PSF is averaged over its channels; alpha
is ignored); ``.npy`` files hold the array itself (no pickles). Nothing here normalises or checks the values: that
is :mod:`denoise_cli.methods.psf`'s job.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch

from . import imageio
from .errors import DenoiseError

#: Extensions a PSF can be written to: ``.npy`` (exact), ``.tif`` (float32), ``.png`` (16-bit, scaled so that the
#: largest value is white: reading normalises the sum again, so only the quantisation is lost).
WRITE_SUFFIXES = (".npy", ".tif", ".tiff", ".png")


def read_psf_file(path: str) -> np.ndarray:
    """The PSF stored in ``path`` as a float64 (H, W) array. Raises DenoiseError naming the file and the cause."""
    if Path(path).suffix.lower() != ".npy":
        image = imageio.read_image(path)
        return image.pixels[0].double().mean(dim=0).numpy() * image.data_range
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DenoiseError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DenoiseError(f"{path}: not a readable .npy array ({exc})") from None
    if array.dtype.kind not in "uif" or array.ndim != 2:
        raise DenoiseError(f"{path}: a PSF must be a 2-D array of numbers, got {array.ndim}-D {array.dtype}")
    return array.astype(np.float64)


def check_psf_path(path: str) -> None:
    """Raise DenoiseError unless a PSF can be written to ``path`` (by its extension)."""
    if Path(path).suffix.lower() not in WRITE_SUFFIXES:
        raise DenoiseError(f"{path}: a PSF is written as {', '.join(WRITE_SUFFIXES)}")


def write_psf_file(path: str, psf: np.ndarray) -> None:
    """Write the (H, W) PSF to ``path`` atomically, in the format its extension names (see WRITE_SUFFIXES)."""
    check_psf_path(path)
    suffix = Path(path).suffix.lower()
    psf = np.asarray(psf, dtype=np.float64)
    if suffix == ".npy":
        buffer = io.BytesIO()
        np.save(buffer, psf)
        imageio.write_bytes_atomic(path, buffer.getvalue())
        return
    if suffix == ".png":
        pixels, dtype = psf / max(psf.max(), np.finfo(np.float64).tiny), np.uint16
    else:
        pixels, dtype = psf, np.float32
    image = imageio.Image(pixels=torch.from_numpy(pixels).float()[None, None], alpha=None, dtype=np.dtype(dtype),
                          format="PNG" if suffix == ".png" else "TIFF")
    imageio.write_image(path, image)
