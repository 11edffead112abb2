"""Sliding-window DCT hard thresholding (Yu & Sapiro, "DCT image denoising: a simple and effective image denoising
algorithm", IPOL 2011): every BLOCK x BLOCK block on a grid of STRIDE pixels is taken to the 2-D DCT, coefficients
under ``factor`` x sigma are zeroed (the block's mean is always kept), and the blocks are taken back and averaged
where they overlap.

ZS-N2N's default finish uses it on the residual (noisy - estimate): what the network took out besides the noise,
texture at light noise, stands out of the residual's white noise and is put back (see zsn2n.finish_estimate).

The image is worked on in tiles of about TILE x TILE pixels that reach BLOCK pixels beyond their core (reflected
beyond the image), on the one grid of blocks: the result does not depend on the tile size, and the memory beyond
the output is that of a tile's blocks.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BLOCK, STRIDE = 8, 2
#: Output tile side (even, so that every tile starts on the grid of blocks).
TILE = 512


def dct_hard_threshold(x: torch.Tensor, sigma: float, factor: float) -> torch.Tensor:
    """``x`` (N, C, H, W) with its sliding-window DCT coefficients under ``factor`` x ``sigma`` (the units of x)
    zeroed, each channel on its own: same shape and dtype. (The padding repeats the edge pixels of images of at
    most BLOCK pixels on a side, which reflection cannot pad.)"""
    height, width = x.shape[-2:]
    mode = "reflect" if min(height, width) > BLOCK else "replicate"
    basis = _dct_basis(x.device)
    out = torch.empty_like(x)
    for top in range(0, height, TILE):
        for left in range(0, width, TILE):
            bottom, right = min(top + TILE, height), min(left + TILE, width)
            # the tile and BLOCK pixels around it, padded where that reaches beyond the image (which the slice
            # then reaches too, so its reflection is the image's)
            first_row, end_row = max(top - BLOCK, 0), min(bottom + BLOCK, height)
            first_column, end_column = max(left - BLOCK, 0), min(right + BLOCK, width)
            window = F.pad(x[..., first_row:end_row, first_column:end_column].float(),
                           (first_column - (left - BLOCK), right + BLOCK - end_column,
                            first_row - (top - BLOCK), bottom + BLOCK - end_row), mode=mode)
            out[..., top:bottom, left:right] = _threshold_window(window, basis, sigma * factor)[
                ..., BLOCK:BLOCK + bottom - top, BLOCK:BLOCK + right - left].to(x.dtype)
    return out


def _threshold_window(window: torch.Tensor, basis: torch.Tensor, threshold: float) -> torch.Tensor:
    """The blocks of ``window`` (N, C, h, w) on its grid, thresholded and averaged back: (N, C, h, w)."""
    n, channels, height, width = window.shape
    flat = window.reshape(n * channels, 1, height, width)
    blocks = F.unfold(flat, BLOCK, stride=STRIDE)  # (N * C, BLOCK^2, L)
    coefficients = basis @ blocks
    keep = coefficients.abs() > threshold
    keep[:, 0] = True  # the block's mean
    restored = basis.T @ (coefficients * keep)
    total = F.fold(restored, (height, width), BLOCK, stride=STRIDE)
    count = F.fold(torch.ones_like(restored[:1]), (height, width), BLOCK, stride=STRIDE)
    return (total / count).reshape(n, channels, height, width)


def _dct_basis(device: torch.device) -> torch.Tensor:
    """The orthonormal 2-D DCT-II of a BLOCK x BLOCK block flattened row-major: (BLOCK^2, BLOCK^2) float32."""
    basis = dct_matrix(BLOCK)
    return torch.kron(basis, basis).float().to(device)


def dct_matrix(size: int) -> torch.Tensor:
    """The orthonormal 1-D DCT-II of ``size`` samples: (frequency, position), float64."""
    k = torch.arange(size, dtype=torch.float64)
    basis = torch.cos(math.pi * (k[None] + 0.5) * k[:, None] / size) * math.sqrt(2 / size)
    basis[0] /= math.sqrt(2)
    return basis
