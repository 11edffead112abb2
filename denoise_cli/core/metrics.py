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
#: Output tile (rows, columns) of the SSIM computation on the CPU (measured best on 4K: the arrays of one tile stay
#: in cache) and on other devices; the columns are a multiple of _LANES.
_CPU_TILE = (128, 768)
_DEVICE_TILE = (2048, 2048)
#: Neighbouring columns that the blur reads as one vector (see _blur_valid): 16 float32 fill an AVX-512 register.
_LANES = 16


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


def _lane_kernels(window: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 1-D Gaussian ``window`` (k,) as the two convolution weights of :func:`_blur_valid`: vertical (L, 1, k, 1),
    depthwise over the L lanes; horizontal (L, L, 1, g), dense, where output lane j of a lane group takes input
    position j + t of the g groups from its own on (L = _LANES)."""
    size = window.numel()
    groups = (_LANES + size - 2) // _LANES + 1
    vertical = window.view(1, 1, size, 1).expand(_LANES, 1, size, 1).contiguous()
    horizontal = window.new_zeros(_LANES, _LANES, 1, groups)
    lane = torch.arange(_LANES, device=window.device)[:, None].expand(_LANES, size)
    position = lane + torch.arange(size, device=window.device)
    horizontal[lane, position % _LANES, torch.zeros_like(lane), position // _LANES] = window.expand(_LANES, size)
    return vertical, horizontal


def _blur_valid(planes: torch.Tensor, vertical: torch.Tensor, horizontal: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur of contiguous planes (B, H, W), W a multiple of _LANES, over the valid region:
    (B, H - k + 1, W - e), where e = (g - 1) * _LANES >= k - 1 is how far the horizontal kernel reads past its last
    output (the last e - k + 1 valid columns are not computed).

    No copy of the data: each run of _LANES neighbouring columns is read as the channels of one pixel of a
    channels-last image, so the vertical pass is a depthwise convolution at full vector width (k multiply-adds per
    value) and the horizontal one, whose taps cross lane groups, a dense convolution over g groups (g * _LANES
    multiply-adds per value, still at full width). On the CPU this is 2-3x faster than a depthwise convolution with
    the planes as channels, which also needs a transpose in and out.
    """
    batch, height, width = planes.shape
    lanes = planes.view(batch, height, width // _LANES, _LANES).permute(0, 3, 1, 2)
    blurred = F.conv2d(F.conv2d(lanes, vertical, groups=_LANES), horizontal)
    return blurred.permute(0, 2, 3, 1).reshape(batch, blurred.shape[2], -1)


def _fill_moments(region: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Write s = x + y and d = x - y of a tile pair (C, h, w), each less a shift per channel, and their squares into
    ``region`` (4C, h, w) as [s, d, s^2, d^2]; return the shifts (2C, 1, 1).

    SSIM needs only mu_x * mu_y, mu_x^2 + mu_y^2, sigma_xy and sigma_x^2 + sigma_y^2, and these follow from the local
    means and variances of s and d (2 mu_x mu_y = (mu_s^2 - mu_d^2) / 2, 2 sigma_xy = (var_s - var_d) / 2, and the
    sums with + instead of -): four blurred planes per channel instead of five. The shift (the mean of a sparse grid
    of the tile) does not change a variance and removes the cancellation in E[s^2] - E[s]^2 that would otherwise
    cost float32 about 1e-5.
    """
    c = x.shape[0]
    sums_and_differences = region[:2 * c]
    torch.add(x, y, out=sums_and_differences[:c])
    torch.sub(x, y, out=sums_and_differences[c:])
    shift = sums_and_differences[:, ::8, ::8].mean(dim=(1, 2), keepdim=True)
    sums_and_differences.sub_(shift)
    torch.mul(sums_and_differences, sums_and_differences, out=region[2 * c:])
    return shift


def _ssim_terms(moments: torch.Tensor, shift: torch.Tensor, stabilisers: torch.Tensor):
    """SSIM and contrast-structure maps (C, h, w) from the blurred [s, d, s^2, d^2] (4C, h, w) of
    :func:`_fill_moments` and its shifts (2C, 1, 1); ``stabilisers`` is [2 C1, 2 C2] shaped (2, 1, 1, 1).
    ``moments`` is overwritten. For x = y, d is exactly 0 and both maps are exactly 1."""
    c = moments.shape[0] // 4
    means, squares = moments[:2 * c], moments[2 * c:]
    squares.addcmul_(means, means, value=-1)  # var_s, var_d
    means.add_(shift).square_()  # mu_s^2, mu_d^2
    terms = moments.unflatten(0, (2, 2, c))  # (mean or variance, s or d, C, h, w)
    plus, minus = terms[:, 0].add_(stabilisers), terms[:, 1]  # [mu_s^2 + 2 C1, var_s + 2 C2], [mu_d^2, var_d]
    ratios = plus - minus
    ratios.div_(plus.add_(minus))  # [luminance, contrast-structure]
    luminance, contrast_structure = ratios
    return luminance.mul_(contrast_structure), contrast_structure


def _accurate_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum of a float32 tile (C, h, w) as float64: each row summed in float32 (to about 1e-7 relative), the row sums
    in float64. Converting every value to float64 first costs a copy of the tile and 8 % of the SSIM time."""
    return values.sum(dim=-1).sum(dtype=torch.float64)


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

    The work goes tile by tile through one float32 buffer, with no copy of the whole image: on the CPU small tiles,
    so the intermediate arrays stay in cache (several times faster than whole-image operations there). Tiles that
    would overhang the image are moved back inside it and only their new outputs count; when the image is narrower
    than a tile, the buffer's columns past it stay zero and their outputs are dropped.
    """
    n, c, h, w = x.shape
    size = window.numel()
    if h < size or w < size:
        raise ValueError(f"images of {h}x{w} are smaller than the {size}x{size} SSIM window")
    if not x.is_floating_point():  # integer samples: s and d would wrap around
        x, y = x.float(), y.float()
    halo = size - 1
    vertical, horizontal = _lane_kernels(window.float())
    overhang = (horizontal.shape[-1] - 1) * _LANES
    out_h, out_w = h - halo, w - halo
    tile_rows, tile_cols = _CPU_TILE if x.device.type == "cpu" else _DEVICE_TILE
    tile_h = min(tile_rows, out_h)
    tile_w = min(tile_cols, -(-out_w // _LANES) * _LANES)
    filled = min(tile_w + halo, w)
    buffer = torch.zeros(4 * c, tile_h + halo, tile_w + overhang, device=x.device)
    region = buffer[:, :, :filled]
    stabilisers = torch.tensor([2 * (K1 * data_range) ** 2, 2 * (K2 * data_range) ** 2],
                               device=x.device).view(2, 1, 1, 1)
    ssim_sum = torch.zeros(n, dtype=torch.float64, device=x.device)
    cs_sum = torch.zeros_like(ssim_sum)
    rows, cols = _tile_starts(out_h, tile_h), _tile_starts(out_w, tile_w)
    for image in range(n):
        for top, keep_top in rows:
            for left, keep_left in cols:
                in_rows, in_cols = slice(top, top + tile_h + halo), slice(left, left + filled)
                shift = _fill_moments(region, x[image, :, in_rows, in_cols], y[image, :, in_rows, in_cols])
                moments = _blur_valid(buffer, vertical, horizontal)
                moments = moments[:, keep_top:, keep_left:out_w - left]
                local_ssim, contrast_structure = _ssim_terms(moments, shift, stabilisers)
                ssim_sum[image] += _accurate_sum(local_ssim)
                cs_sum[image] += _accurate_sum(contrast_structure)
                if ssim_map is not None:
                    ssim_map[image, :, top + keep_top:top + tile_h,
                             left + keep_left:left + keep_left + local_ssim.shape[-1]] = local_ssim
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
