"""Image quality metrics on tensors: PSNR, SSIM (Wang et al. 2004) and MS-SSIM (Wang et al. 2003).

All functions take batches shaped (N, C, H, W) on any device and return one value per image, shape (N,).
SSIM follows the reference definition exactly: an 11x11 Gaussian window with sigma 1.5, K1 = 0.01, K2 = 0.03,
population (biased) covariances, statistics over the valid region only (no padding), and the mean over pixels and
channels. It equals scikit-image's ``structural_similarity(x, y, gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=R, channel_axis=-1)``. The Gaussian is applied separably on unpadded input,
tile by tile, in float32 on mean-shifted tiles, which keeps the values within about 1e-8 of the float64 reference.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

WINDOW_SIZE = 11
SIGMA = 1.5
K1 = 0.01
K2 = 0.03
#: Standard MS-SSIM scale weights (Wang, Simoncelli & Bovik 2003), finest scale first.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
#: Output tile side and tiles per step on the CPU for the SSIM moments (see _ssim_sums; measured best on 4K).
_TILE = 256
_CPU_TILES_PER_CHUNK = 1


class SSIMResult(NamedTuple):
    """ssim: (N,) mean SSIM per image, float64. map: (N, C, H - win + 1, W - win + 1) local SSIM, or None."""

    ssim: torch.Tensor
    map: Optional[torch.Tensor]


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
    """Luminance and contrast-structure terms of tiles (B, C, t + k - 1, t' + k - 1) -> two (B, C, t, t').

    SSIM needs only mu_x * mu_y, mu_x^2 + mu_y^2, sigma_xy and sigma_x^2 + sigma_y^2, and these follow from the local
    means and variances of s = x + y and d = x - y (2 mu_x mu_y = (mu_s^2 - mu_d^2) / 2, 2 sigma_xy = (var_s - var_d) / 2,
    and the sums with + instead of -): four blurred planes per channel instead of five. Each tile's s and d are
    shifted by their own means first: a variance does not change under a constant shift, and shifting removes the
    cancellation in E[s^2] - E[s]^2 that would otherwise cost float32 about 1e-5. For x = y, d is exactly 0 and both
    terms are exactly 1.
    """
    c = x.shape[1]
    s, d = x + y, x - y
    s_mean = s.mean(dim=(2, 3), keepdim=True)
    d_mean = d.mean(dim=(2, 3), keepdim=True)
    s, d = s - s_mean, d - d_mean
    mu_s, mu_d, ss, dd = _blur_valid(torch.cat([s, d, s * s, d * d], dim=1), window).split(c, dim=1)
    var_s = ss - mu_s * mu_s
    var_d = dd - mu_d * mu_d
    mu_s = mu_s + s_mean
    mu_d = mu_d + d_mean
    mu_s, mu_d = mu_s * mu_s, mu_d * mu_d
    luminance = (mu_s - mu_d + 2 * c1) / (mu_s + mu_d + 2 * c1)
    return luminance, (var_s - var_d + 2 * c2) / (var_s + var_d + 2 * c2)


def _tile_starts(length: int, tile: int) -> list[tuple[int, int]]:
    """(start, keep) of equal tiles of ``min(tile, length)`` covering ``0..length``; the last one is moved back to
    end at ``length`` and ``keep`` is the offset of its first output not already covered by the one before."""
    size = min(tile, length)
    starts = list(range(0, length - size + 1, size))
    keeps = [0] * len(starts)
    if starts[-1] + size < length:
        keeps.append(starts[-1] + size - (length - size))
        starts.append(length - size)
    return list(zip(starts, keeps))


def _ssim_sums(x: torch.Tensor, y: torch.Tensor, data_range: float, window: torch.Tensor,
               ssim_map: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums over pixels and channels of the SSIM map and of the contrast-structure map of (N, C, H, W): two (N,)
    float64. With ``ssim_map`` (N, C, H - k + 1, W - k + 1), the SSIM map is written into it as well.

    The work goes tile by tile, with no copy of the whole image: a few tiles at a time on the CPU, so the dozen
    intermediate arrays stay in cache (5-10x faster than whole-image tensor operations there), in float32 on
    mean-shifted tiles, which keeps the result within about 1e-8 of a float64 computation. Tiles that would overhang
    the image are moved back inside it and only their new outputs count.
    """
    n, c, h, w = x.shape
    size = window.numel()
    if h < size or w < size:
        raise ValueError(f"images of {h}x{w} are smaller than the {size}x{size} SSIM window")
    halo = size - 1
    rows, cols = _tile_starts(h - halo, _TILE), _tile_starts(w - halo, _TILE)
    tile_h, tile_w = min(_TILE, h - halo), min(_TILE, w - halo)
    tiles = [(image, row, col) for image in range(n) for row in rows for col in cols]
    per_chunk = _CPU_TILES_PER_CHUNK if x.device.type == "cpu" else 64
    window = window.float()
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    ssim_sum = torch.zeros(n, dtype=torch.float64, device=x.device)
    cs_sum = torch.zeros_like(ssim_sum)
    for start in range(0, len(tiles), per_chunk):
        chunk = tiles[start:start + per_chunk]
        windows = [(image, slice(top, top + tile_h + halo), slice(left, left + tile_w + halo))
                   for image, (top, _), (left, _) in chunk]
        x_tiles = torch.stack([x[image, :, r, q] for image, r, q in windows]).float()
        y_tiles = torch.stack([y[image, :, r, q] for image, r, q in windows]).float()
        luminance, contrast_structure = _tile_terms(x_tiles, y_tiles, c1, c2, window)
        local_ssim = luminance * contrast_structure
        for index, (image, (top, keep_top), (left, keep_left)) in enumerate(chunk):
            kept_ssim = local_ssim[index, :, keep_top:, keep_left:]
            ssim_sum[image] += kept_ssim.sum(dtype=torch.float64)
            cs_sum[image] += contrast_structure[index, :, keep_top:, keep_left:].sum(dtype=torch.float64)
            if ssim_map is not None:
                ssim_map[image, :, top + keep_top:top + tile_h, left + keep_left:left + tile_w] = kept_ssim
    return ssim_sum, cs_sum


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window_size: int = WINDOW_SIZE,
         sigma: float = SIGMA, with_map: bool = False) -> SSIMResult:
    """Structural similarity of two batches (N, C, H, W); returns the per-image mean (N,) and, with ``with_map``,
    the SSIM map (N, C, H - window_size + 1, W - window_size + 1) float32 (else ``map`` is None). The mean is within
    about 1e-8 of a float64 computation; single map values within about 1e-4 (float32 cancellation in windows far
    from their tile's mean, which averages out).

    ``data_range`` is the span of the values (1.0 for images in [0, 1]). The images must be at least
    ``window_size`` pixels on each side.
    """
    _check_pair(x, y)
    window = gaussian_window(window_size, sigma, device=x.device)
    n, c, h, w = x.shape
    ssim_map = x.new_empty(n, c, h - window_size + 1, w - window_size + 1, dtype=torch.float32) \
        if with_map and h >= window_size and w >= window_size else None
    ssim_sum, _ = _ssim_sums(x, y, data_range, window, ssim_map)
    return SSIMResult(ssim=ssim_sum / (c * (h - window_size + 1) * (w - window_size + 1)), map=ssim_map)


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
        ssim_sum, cs_sum = _ssim_sums(x, y, data_range, window)
        valid = x.shape[1] * (x.shape[2] - WINDOW_SIZE + 1) * (x.shape[3] - WINDOW_SIZE + 1)
        if scale == len(weights) - 1:
            terms.append(ssim_sum / valid)
        else:
            terms.append(cs_sum / valid)
            x = F.avg_pool2d(x, 2)
            y = F.avg_pool2d(y, 2)
    stacked = torch.stack(terms, dim=1).clamp_min(0)
    return torch.prod(stacked ** weight, dim=1)
