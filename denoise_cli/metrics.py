"""Image quality metrics on tensors: PSNR, SSIM (Wang et al. 2004) and MS-SSIM (Wang et al. 2003).

All functions take batches shaped (N, C, H, W) on any device and return one value per image, shape (N,).
SSIM follows the reference definition exactly: an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03,
population (biased) covariances, statistics over the valid region only (no padding), and the mean over pixels and
channels. It equals scikit-image's ``structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=R, channel_axis=-1)``. The Gaussian is applied separably on unpadded input,
tile by tile, in float32 on mean-shifted tiles, which keeps the values within about 1e-8 of the float64 reference.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

WINDOW_SIZE = 11
SIGMA = 1.5
K1 = 0.01
K2 = 0.03
#: Standard MS-SSIM scale weights (Wang, Simoncelli & Bovik 2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: Output tile side and tiles per step on the CPU for the SSIM moments (see _ssim_parts; measured best on 4K).
_TILE = 128
_CPU_TILES_PER_CHUNK = 3


class SSIMResult(NamedTuple):
    """ssim: (N,) mean SSIM per image. map: (N, C, H - win + 1, W - win + 1) local SSIM."""

    ssim: torch.Tensor
    map: torch.Tensor


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.dim() != 4 or y.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) tensors, got shapes {tuple(x.shape)} and {tuple(y.shape)}")
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio 10*log10(R^2 / MSE) in dB over all pixels and channels, shape (N,).

    Identical images give +inf.
    """
    _check_pair(x, y)
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(data_range ** 2 / mse)


def gaussian_window(size: int = WINDOW_SIZE, sigma: float = SIGMA, dtype=torch.float64,
                    device=None) -> torch.Tensor:
    """The normalised 1-D Gaussian, shape (size,)."""
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    window = torch.exp(-0.5 * (coords / sigma) ** 2)
    return window / window.sum()


def _blur_valid(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable filtering of every channel of (B, K, H, W) over the valid region -> (B, K, H - k + 1, W - k + 1).

    A depthwise convolution on channels-last memory: the fastest form on the CPU by far (a plain batched conv2d with
    one channel is 50-200x slower there).
    """
    k, size = x.shape[1], window.numel()
    x = x.contiguous(memory_format=torch.channels_last)
    x = F.conv2d(x, window.view(1, 1, size, 1).expand(k, 1, size, 1).contiguous(), groups=k)
    return F.conv2d(x, window.view(1, 1, 1, size).expand(k, 1, 1, size).contiguous(), groups=k)


def _tile_terms(x: torch.Tensor, y: torch.Tensor, c1: float, c2: float, window: torch.Tensor):
    """Luminance and contrast-structure terms of tiles (B, C, t + k - 1, t + k - 1) -> two (B, C, t, t).

    Each tile is shifted by its own mean first: a window's variance and covariance do not change under a constant
    shift, and shifting removes the cancellation in E[x^2] - E[x]^2 that would otherwise cost float32 about 1e-5.
    """
    c = x.shape[1]
    x_mean = x.mean(dim=(2, 3), keepdim=True)
    y_mean = y.mean(dim=(2, 3), keepdim=True)
    x = x - x_mean
    y = y - y_mean
    mu_x, mu_y, xx, yy, xy = _blur_valid(torch.cat([x, y, x * x, y * y, x * y], dim=1), window).split(c, dim=1)
    var_sum = (xx - mu_x * mu_x) + (yy - mu_y * mu_y)  # this order makes SSIM(x, x) exactly 1
    cov = xy - mu_x * mu_y
    mu_x = mu_x + x_mean
    mu_y = mu_y + y_mean
    luminance = (2 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1)
    return luminance, (2 * cov + c2) / (var_sum + c2)


def _ssim_parts(x: torch.Tensor, y: torch.Tensor, data_range: float, window: torch.Tensor):
    """Luminance and contrast-structure maps of (N, C, H, W), each (N, C, H - k + 1, W - k + 1), float32.

    The work goes tile by tile (a few tiles at a time on the CPU, so the dozen intermediate arrays stay in cache;
    this is 5-10x faster than whole-image tensor operations there) and in float32 on mean-shifted tiles, which keeps
    the result within about 1e-8 of a float64 computation.
    """
    n, c, h, w = x.shape
    size = window.numel()
    if h < size or w < size:
        raise ValueError(f"images of {h}x{w} are smaller than the {size}x{size} SSIM window")
    halo, tile = size - 1, _TILE
    out_h, out_w = h - halo, w - halo
    rows, cols = -(-out_h // tile), -(-out_w // tile)
    pad = (0, cols * tile + halo - w, 0, rows * tile + halo - h)
    x = F.pad(x.float(), pad, mode="replicate")  # the padding only feeds outputs that are cropped away
    y = F.pad(y.float(), pad, mode="replicate")
    window = window.float()
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    per_chunk = _CPU_TILES_PER_CHUNK if x.device.type == "cpu" else cols * n
    luminance = x.new_empty(n, c, rows * tile, cols * tile)
    contrast_structure = torch.empty_like(luminance)
    for row in range(rows):
        top = row * tile
        band_x = _band_tiles(x[:, :, top:top + tile + halo], tile, halo)
        band_y = _band_tiles(y[:, :, top:top + tile + halo], tile, halo)
        for start in range(0, band_x.shape[0], per_chunk):
            lum, cs = _tile_terms(band_x[start:start + per_chunk], band_y[start:start + per_chunk], c1, c2, window)
            for index in range(lum.shape[0]):
                image, col = divmod(start + index, cols)
                target = (image, slice(None), slice(top, top + tile), slice(col * tile, (col + 1) * tile))
                luminance[target] = lum[index]
                contrast_structure[target] = cs[index]
    return luminance[:, :, :out_h, :out_w], contrast_structure[:, :, :out_h, :out_w]


def _band_tiles(band: torch.Tensor, tile: int, halo: int) -> torch.Tensor:
    """(N, C, t + halo, W) band -> (N * cols, C, t + halo, t + halo) overlapping tiles, image-major."""
    n, c, height, _ = band.shape
    tiles = band.unfold(3, tile + halo, tile)  # (N, C, t + halo, cols, t + halo)
    return tiles.permute(0, 3, 1, 2, 4).reshape(-1, c, height, tile + halo)


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window_size: int = WINDOW_SIZE,
         sigma: float = SIGMA) -> SSIMResult:
    """Structural similarity of two batches (N, C, H, W); returns the per-image mean (N,) and the SSIM map.

    ``data_range`` is the span of the values (1.0 for images in [0, 1]). The images must be at least
    ``window_size`` pixels on each side.
    """
    _check_pair(x, y)
    window = gaussian_window(window_size, sigma, device=x.device)
    luminance, contrast_structure = _ssim_parts(x, y, data_range, window)
    ssim_map = luminance * contrast_structure
    return SSIMResult(ssim=ssim_map.flatten(1).double().mean(dim=1), map=ssim_map)


def ms_ssim_min_size(scales: int = len(MS_SSIM_WEIGHTS), window_size: int = WINDOW_SIZE) -> int:
    """Smallest height/width MS-SSIM accepts: the coarsest scale must still hold one window."""
    return window_size * 2 ** (scales - 1)


def ms_ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0,
            weights: tuple = MS_SSIM_WEIGHTS) -> torch.Tensor:
    """Multi-scale SSIM (Wang, Simoncelli & Bovik 2003), shape (N,).

    The contrast-structure term at each of the first scales and the full SSIM at the last, each averaged per image and
    clamped at 0 (as in common implementations, so a negative term cannot flip the product), combined as
    prod(term_j ** weight_j); the image is halved by 2x2 averaging between scales. Raises ValueError when a side is
    shorter than :func:`ms_ssim_min_size`.
    """
    _check_pair(x, y)
    minimum = ms_ssim_min_size(len(weights))
    if min(x.shape[-2:]) < minimum:
        raise ValueError(f"MS-SSIM with {len(weights)} scales needs images of at least {minimum}x{minimum} pixels, "
                         f"got {x.shape[-2]}x{x.shape[-1]}")
    window = gaussian_window(device=x.device)
    weight = torch.tensor(weights, dtype=torch.float64, device=x.device)
    terms = []
    for scale in range(len(weights)):
        luminance, contrast_structure = _ssim_parts(x, y, data_range, window)
        if scale == len(weights) - 1:
            terms.append((luminance * contrast_structure).flatten(1).double().mean(dim=1))
        else:
            terms.append(contrast_structure.flatten(1).double().mean(dim=1))
            x = F.avg_pool2d(x, 2)
            y = F.avg_pool2d(y, 2)
    stacked = torch.stack(terms, dim=1).clamp_min(0)
    return torch.prod(stacked ** weight, dim=1)
