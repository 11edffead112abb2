"""Point-spread functions: the models a user names on the command line, checks, normalisation, and the optical
transfer function (the PSF's discrete Fourier transform on a periodic grid).

A PSF is a (h, w) float64 tensor, non-negative, summing to 1, acting as a *convolution* kernel whose centre is entry
(h // 2, w // 2) (for an even size, the entry just past the middle). Specs:

==================  ===========================================================================================
``gaussian:SIGMA``  isotropic Gaussian, SIGMA pixels, on a (2 ceil(3 SIGMA) + 1)^2 grid
``motion:L[,DEG]``  a straight motion of L pixels at DEG degrees (counter-clockwise from the x axis; default 0),
                    anti-aliased
``box:N``           N x N uniform
``disk:R``          uniform disk of radius R pixels (defocus), anti-aliased, on a (2 ceil(R) + 1)^2 grid
a file name         an image (PNG/TIFF/... of any bit depth; colour averaged) or a ``.npy`` array
==================  ===========================================================================================
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..core.errors import DenoiseError
from ..core.psf_files import read_psf_file

MODELS = ("gaussian", "motion", "box", "disk")
#: Sub-pixel samples per pixel side when drawing the disk and the motion path (anti-aliasing).
SUPERSAMPLE = 8
#: The largest model accepted, in pixels per side (larger blurs are not what this tool is for).
MAX_MODEL_SIDE = 1001


def parse_psf(spec: str) -> torch.Tensor:
    """The normalised PSF a spec names (see the module table): (h, w) float64. Raises DenoiseError with the reason."""
    name, sep, args = spec.partition(":")
    if sep and name in MODELS:
        return normalise(_model(name, args, spec), spec)
    return normalise(torch.from_numpy(read_psf_file(spec)), spec)


def _model(name: str, args: str, spec: str) -> torch.Tensor:
    try:
        numbers = [float(part) for part in args.split(",")]
    except ValueError:
        numbers = []
    wanted = {"gaussian": (1, 1), "motion": (1, 2), "box": (1, 1), "disk": (1, 1)}[name]
    if not wanted[0] <= len(numbers) <= wanted[1] or not all(math.isfinite(v) for v in numbers) or numbers[0] <= 0:
        usage = {"gaussian": "gaussian:SIGMA", "motion": "motion:LENGTH[,ANGLE]", "box": "box:N", "disk": "disk:R"}
        raise DenoiseError(f"PSF {spec!r}: expected {usage[name]} with a finite size > 0")
    size = numbers[0]
    if name == "box" and size != int(size):
        raise DenoiseError(f"PSF {spec!r}: box needs a whole number of pixels")
    side = {"gaussian": 2 * math.ceil(3 * size) + 1, "motion": 2 * math.ceil(size / 2) + 3, "box": size,
            "disk": 2 * math.ceil(size) + 1}[name]
    if side > MAX_MODEL_SIDE:
        raise DenoiseError(f"PSF {spec!r}: {side:.0f} pixels across, more than the {MAX_MODEL_SIDE} supported")
    if name == "gaussian":
        radius = max(1, math.ceil(3 * size))
        axis = torch.arange(-radius, radius + 1, dtype=torch.float64)
        line = torch.exp(-axis ** 2 / (2 * size ** 2))
        return line[:, None] * line[None, :]
    if name == "box":
        return torch.ones(int(size), int(size), dtype=torch.float64)
    if name == "disk":
        return _disk(size)
    return _motion(size, numbers[1] if len(numbers) > 1 else 0.0)


def _disk(radius: float) -> torch.Tensor:
    half = math.ceil(radius)
    offsets = (torch.arange(SUPERSAMPLE, dtype=torch.float64) + 0.5) / SUPERSAMPLE - 0.5
    axis = (torch.arange(-half, half + 1, dtype=torch.float64)[:, None] + offsets[None, :]).reshape(-1)
    inside = (axis[:, None] ** 2 + axis[None, :] ** 2 <= radius ** 2).double()
    side = 2 * half + 1
    return inside.reshape(side, SUPERSAMPLE, side, SUPERSAMPLE).mean(dim=(1, 3))


def _motion(length: float, degrees: float) -> torch.Tensor:
    """A segment of ``length`` pixels through the centre, splatted bilinearly from dense samples along it."""
    angle = math.radians(degrees)
    half = math.ceil(length / 2) + 1
    side = 2 * half + 1
    samples = max(2, int(math.ceil(length * SUPERSAMPLE)) + 1)
    t = torch.linspace(-length / 2, length / 2, samples, dtype=torch.float64)
    cols, rows = half + t * math.cos(angle), half - t * math.sin(angle)  # image rows grow downwards
    kernel = torch.zeros(side, side, dtype=torch.float64)
    row0, col0 = rows.floor(), cols.floor()
    for d_row in (0, 1):
        for d_col in (0, 1):
            weight = (1 - (rows - row0 - d_row).abs()) * (1 - (cols - col0 - d_col).abs())
            kernel.index_put_(((row0 + d_row).long(), (col0 + d_col).long()), weight, accumulate=True)
    return trim_zero_border(kernel)


def trim_zero_border(kernel: torch.Tensor) -> torch.Tensor:
    """Drop all-zero outer row pairs and column pairs (the first and the last together): the centre stays the same
    entry, so the blur is the same, on a smaller support."""
    while kernel.shape[0] > 1 and bool((kernel[[0, -1]] == 0).all()):
        kernel = kernel[1:-1]
    while kernel.shape[1] > 1 and bool((kernel[:, [0, -1]] == 0).all()):
        kernel = kernel[:, 1:-1]
    return kernel


def normalise(psf: torch.Tensor, name: str) -> torch.Tensor:
    """``psf`` scaled to sum 1, after checking it is a 2-D, non-empty, finite, non-negative array with a positive
    sum. Raises DenoiseError naming ``name`` and the fault."""
    psf = psf.to(torch.float64)
    if psf.dim() != 2 or psf.numel() == 0:
        raise DenoiseError(f"PSF {name}: empty or not 2-D (shape {tuple(psf.shape)})")
    if not bool(torch.isfinite(psf).all()):
        raise DenoiseError(f"PSF {name}: holds NaN or infinite values")
    if bool((psf < 0).any()):
        raise DenoiseError(f"PSF {name}: holds negative values (a blur is a non-negative weighting)")
    total = float(psf.sum())
    if total <= 0:
        raise DenoiseError(f"PSF {name}: all zero")
    return psf / total


def check_fits(psf: torch.Tensor, height: int, width: int) -> None:
    """Raise DenoiseError when a PSF is larger than the image it should deblur."""
    if psf.shape[0] > height or psf.shape[1] > width:
        raise DenoiseError(f"the PSF ({psf.shape[1]}x{psf.shape[0]}) is larger than the image ({width}x{height})")


def transfer_function(psf: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The OTF of ``psf`` on a periodic (height, width) grid: the rfft2 of the PSF placed with its centre at (0, 0),
    shape (height, width // 2 + 1), complex, on the PSF's device and in its precision."""
    kh, kw = psf.shape
    placed = psf.new_zeros(height, width)
    placed[:kh, :kw] = psf
    return torch.fft.rfft2(torch.roll(placed, (-(kh // 2), -(kw // 2)), (0, 1)))


def as_array(psf: torch.Tensor) -> np.ndarray:
    """The PSF as a float64 numpy array (for files and reports)."""
    return psf.detach().to("cpu", torch.float64).numpy()
