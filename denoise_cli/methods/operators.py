r"""The total-variation operators shared by every TV method (denoising, deconvolution): the forward-difference
gradient and its negative adjoint, the divergence, on (N, C, H, W) images; the group norms that the ``norm`` and
``channels`` settings choose; the TV itself; the ROF duality gap.

==============  ==========  ===============================================================
norm            channels    group of one pixel's gradient entries under one norm
==============  ==========  ===============================================================
isotropic       coupled     both directions, all channels (vectorial TV, no colour fringes)
isotropic       separate    both directions, one channel (scikit-image's per-channel TV)
anisotropic     coupled     one direction, all channels
anisotropic     separate    one entry: |u_x| + |u_y| per channel
==============  ==========  ===============================================================

Gradients are (N, C, 2, H, W): [:, :, 0] vertical, [:, :, 1] horizontal, forward differences with Neumann
boundaries (the last row/column of each difference is 0).
"""
from __future__ import annotations

from typing import Optional

import torch

NORMS = ("isotropic", "anisotropic")
CHANNEL_MODES = ("coupled", "separate")
REDUCTIONS = ("none", "sum", "mean")
#: The duality gap is summed this many rows at a time (float32 within a block, float64 across blocks).
GAP_ROWS = 64


def check_modes(norm: str, channels: str) -> None:
    """Raise ValueError unless ``norm`` is in NORMS and ``channels`` in CHANNEL_MODES."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if channels not in CHANNEL_MODES:
        raise ValueError(f"channels must be one of {CHANNEL_MODES}, got {channels!r}")


def gradient(u: torch.Tensor) -> torch.Tensor:
    """Forward differences with Neumann boundary: (N, C, H, W) -> (N, C, 2, H, W), [:, :, 0] vertical, [:, :, 1]
    horizontal; the last row/column of each difference is 0. Differentiable."""
    g = u.new_zeros(u.shape[:2] + (2,) + u.shape[2:])
    g[:, :, 0, :-1] = u[:, :, 1:] - u[:, :, :-1]
    g[:, :, 1, :, :-1] = u[:, :, :, 1:] - u[:, :, :, :-1]
    return g


def divergence(p: torch.Tensor) -> torch.Tensor:
    """The negative adjoint of :func:`gradient`: (N, C, 2, H, W) -> (N, C, H, W), so <grad u, p> = -<u, div p>.

    Entries of ``p`` in the last row of the vertical part and the last column of the horizontal part are ignored
    (the gradient is zero there).
    """
    py, px = p[:, :, 0], p[:, :, 1]
    d = torch.zeros_like(py)
    d[:, :, :-1] += py[:, :, :-1]
    d[:, :, 1:] -= py[:, :, :-1]
    d[:, :, :, :-1] += px[:, :, :, :-1]
    d[:, :, :, 1:] -= px[:, :, :, :-1]
    return d


def divergence_of_dual(p: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """:func:`divergence` for a dual variable whose boundary entries are zero (the solver's iterates), in 3 passes
    instead of 5; written into ``out`` (N, C, H, W) when given."""
    py, px = p[:, :, 0], p[:, :, 1]
    d = torch.add(py, px, out=out) if out is not None else py + px
    d[:, :, 1:] -= py[:, :, :-1]
    d[:, :, :, 1:] -= px[:, :, :, :-1]
    return d


def group_dims(norm: str, channels: str) -> tuple:
    """Dimensions of a (N, C, 2, H, W) gradient that one norm groups (see the table in the module docstring)."""
    dims = (2,) if norm == "isotropic" else ()
    return (1,) + dims if channels == "coupled" else dims


def group_norms(g: torch.Tensor, dims: tuple) -> torch.Tensor:
    """Euclidean norm of each group of ``g`` (N, C, 2, H, W), broadcastable against ``g``."""
    return g.abs() if not dims else _group_squares(g, dims).sqrt_()


def project_onto_dual_ball(g: torch.Tensor, dims: tuple) -> torch.Tensor:
    """Scale each group of ``g`` (N, C, 2, H, W) whose norm exceeds 1 back onto the unit sphere, in place: g / max(1,
    norm), as a multiplication by the reciprocal square root of the clamped squares (one pass fewer than norms)."""
    if not dims:
        return g.clamp_(-1.0, 1.0)
    return g.mul_(_group_squares(g, dims).clamp_min_(1.0).rsqrt_())


def _group_squares(g: torch.Tensor, dims: tuple) -> torch.Tensor:
    """The squared Euclidean norm of each group of ``g`` (N, C, 2, H, W) over ``dims`` (not empty).

    Written out (the two directions' squares in one fused multiply-add, then a sum over channels) because a
    ``vector_norm`` over the size-2 direction dimension is ~10x slower on the CPU, and whole-tensor squares take
    twice the time of the fused form.
    """
    if 2 in dims:
        vertical, horizontal = g[:, :, 0:1], g[:, :, 1:2]
        squares = (vertical * vertical).addcmul_(horizontal, horizontal)
    else:
        squares = g * g
    if 1 in dims:
        squares = squares.sum(dim=1, keepdim=True)
    return squares


def sum_of_group_norms(g: torch.Tensor, dims: tuple) -> torch.Tensor:
    """TV of each image from its gradient (N, C, 2, H, W): the sum of the group norms, shape (N,)."""
    norms = torch.linalg.vector_norm(g, dim=dims) if dims else g.abs()
    return norms.flatten(1).sum(dim=1)


def total_variation(x: torch.Tensor, norm: str = "isotropic", channels: str = "separate",
                    reduction: str = "sum") -> torch.Tensor:
    """Total variation of a batch (N, C, H, W); differentiable, usable as a loss.

    reduction: ``none`` gives TV per image (N,); ``sum`` the total over the batch; ``mean`` the total divided by the
    number of values N*C*H*W (the size-normalised form used as a smoothness loss; with ``norm="anisotropic"`` and
    ``channels="separate"`` it is the mean of |u_x| + |u_y|).
    """
    check_modes(norm, channels)
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    per_image = sum_of_group_norms(gradient(x), group_dims(norm, channels))
    if reduction == "none":
        return per_image
    total = per_image.sum()
    return total / x.numel() if reduction == "mean" else total


def duality_gap_terms(u: torch.Tensor, p: torch.Tensor, lam: torch.Tensor, dims: tuple,
                      candidate: Optional[torch.Tensor] = None, rows: int = GAP_ROWS,
                      rows_between: Optional[tuple[int, int]] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of P(candidate) - D(p) per image, float64, each (N,), for u = f + lambda div p (N, C, H, W)
    and any image ``candidate`` (default: u itself, the usual ROF duality gap).

    P(v) = 1/2 ||v - f||^2 + lambda TV(v) and D(p) = 1/2 ||f||^2 - 1/2 ||u||^2, so the gap is the distance
    1/2 ||candidate - u||^2 plus lambda sum(||grad candidate|| - <grad candidate, p>), a sum of terms that are
    non-negative for a feasible p (one per group): each block's terms are summed in float32 (all of one sign: no
    cancellation) and the blocks in float64. ``rows`` image rows at a time, so that the temporaries stay small (and
    in cache). ``rows_between`` (start, stop): only the terms of the rows start..stop-1 (default: all).
    """
    n, channels, height, width = u.shape
    variation = torch.zeros(n, dtype=torch.float64, device=u.device)
    distance = torch.zeros_like(variation)
    image = u if candidate is None else candidate
    g = u.new_empty(n, channels, 2, min(rows, height), width)
    start, stop = rows_between or (0, height)
    for top in range(start, stop, rows):
        bottom = min(top + rows, stop)
        block = g[:, :, :, :bottom - top]
        _gradient_rows_into(image, top, bottom, block)
        inner = block.mul(p[..., top:bottom, :])
        inner = inner.sum(dim=dims, keepdim=True) if dims else inner
        variation += group_norms(block, dims).sub_(inner).clamp_min_(0).flatten(1).sum(dim=1).double()
        if candidate is not None:
            difference = candidate[:, :, top:bottom] - u[:, :, top:bottom]
            distance += 0.5 * difference.pow_(2).flatten(1).sum(dim=1).double()
    return distance, lam.double() * variation


def _gradient_rows_into(image: torch.Tensor, top: int, bottom: int, out: torch.Tensor) -> None:
    """Rows top..bottom-1 of :func:`gradient` of ``image`` (N, C, H, W), written into ``out`` (N, C, 2, rows, W)."""
    height = image.shape[-2]
    below = min(bottom, height - 1)  # vertical differences exist above the last row only
    torch.sub(image[:, :, top + 1:below + 1], image[:, :, top:below], out=out[:, :, 0, :below - top])
    out[:, :, 0, below - top:].zero_()
    torch.sub(image[:, :, top:bottom, 1:], image[:, :, top:bottom, :-1], out=out[:, :, 1, :, :-1])
    out[:, :, 1, :, -1].zero_()


def periodic_gradient(u: torch.Tensor) -> torch.Tensor:
    """Forward differences with periodic boundary (the last row/column differences wrap around): (..., H, W) ->
    (..., 2, H, W), [..., 0, :, :] vertical, [..., 1, :, :] horizontal. For solvers working in the Fourier domain."""
    return torch.stack((torch.roll(u, -1, -2) - u, torch.roll(u, -1, -1) - u), dim=-3)


def periodic_divergence(g: torch.Tensor) -> torch.Tensor:
    """The negative adjoint of :func:`periodic_gradient`: (..., 2, H, W) -> (..., H, W)."""
    vertical, horizontal = g[..., 0, :, :], g[..., 1, :, :]
    return vertical - torch.roll(vertical, 1, -2) + horizontal - torch.roll(horizontal, 1, -1)


def laplacian_symbol(height: int, width: int, dtype: torch.dtype = torch.float32,
                     device: torch.device = torch.device("cpu")) -> torch.Tensor:
    """The Fourier symbol of -div(grad) on a periodic (height, width) grid, on rfft2's half grid: (H, W // 2 + 1)."""
    fy = torch.fft.fftfreq(height, dtype=dtype, device=device)[:, None]
    fx = torch.fft.rfftfreq(width, dtype=dtype, device=device)[None, :]
    return 4 - 2 * torch.cos(2 * torch.pi * fy) - 2 * torch.cos(2 * torch.pi * fx)
