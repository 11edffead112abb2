r"""The ROF solver: Beck & Teboulle's fast gradient projection (FISTA on the dual, 2009) with adaptive restart
(O'Donoghue & Candes 2015) and a step 8/7 of the textbook one (:data:`STEP_DIVISOR`), stopped by a certified bound on
its distance from the exact solution.

ROF: :math:`\min_u \tfrac12\|u - f\|^2 + \lambda\,\mathrm{TV}(u)`, TV as in :mod:`.operators`. With
:math:`u = f + \lambda\,\mathrm{div}\,p` for any dual-feasible ``p`` (each group of ``p`` in the unit ball of the dual
norm) and any image :math:`a`, the gap :math:`G = P(a) - D(p) = (P(a) - P^*) + (D^* - D(p))` is at least
:math:`\tfrac12\|a - u^*\|^2 + \tfrac12\|u - u^*\|^2`: P is 1-strongly convex, and D is 1-strongly concave in u over
the feasible set. The midpoint :math:`m = (u + a)/2` is therefore within
:math:`\|m - u^*\|^2 \le G - \tfrac14\|a - u\|^2` of the exact solution (the worst case over everything G allows),
and u itself, taking :math:`a = u`, within :math:`\|u - u^*\|^2 \le G` (the usual bound, 2G, is loose by 2). The
solver takes for :math:`a` a weighted average of its iterates, returns the midpoint (or u, when the plain gap
certifies u more tightly) and stops when its certified RMSE from the exact solution is below ``tol``.

One iteration is a single sweep over the image in blocks of rows (:func:`_sweep`): the dual step, the projection,
the restart test's dot products and the momentum update of the previous iteration are all done on one block while
it is in cache, instead of one pass over memory each. The extrapolated point q is formed a block at a time into a
window of a few rows, so the solver keeps two dual buffers and three images (f, the average, u at the checks): about
28 bytes per value, 2.15-2.24 GiB peak RSS for a 6000x4000 RGB photo (2.51 GiB with a whole q). The dual buffers are
laid out row-major first, so that a block of rows is one piece of memory. On the CPU the image is cut into one band
of rows per thread, each swept on a thread of its own with torch single-threaded (:class:`RowBands`, see
:mod:`.threads`): 1024^2 RGB per channel, 14 ms per iteration on a 2-core Xeon, against 29 ms on torch's two OpenMP
threads under the command's passive waiting (as on one thread) and 14 ms with them spinning. On a GPU the sweep is
one block, the whole image.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, TypeVar

import torch

from .base import ProgressCallback
from .operators import GAP_ROWS, divergence_of_dual, duality_gap_terms, project_onto_dual_ball
from .threads import TorchThreadPool

T = TypeVar("T")

#: Bytes of one dual buffer that a sweep works on at a time on the CPU: the blocks of the two buffers, the window and
#: the temporaries stay in a CPU's last-level cache, and each block is big enough that the per-operation overhead (an
#: OpenMP wake-up each, as the command runs with passive waiting) stays small. 1024^2 RGB, ms per iteration with
#: blocks of 1.5 / 3 / 6 MiB: 48.5 / 44.4 / 43.8 (whole-image operations: 48.3).
BLOCK_BYTES = 3 << 20
#: The dual step is 1 / (STEP_DIVISOR * lambda). The dual objective's curvature is at most 8 lambda^2 (the norm of
#: div squared, reached by checkerboards), so FISTA's textbook step is 1/(8 lambda) (TEXTBOOK_STEP_DIVISOR). FISTA on
#: a quadratic stays stable for steps up to 4/3 of that whatever the momentum (the iteration's worst mode has modulus
#: 1 at 1/(6 lambda)); 1/(7 lambda) keeps a margin (that mode shrinks by 0.55 per iteration at full momentum) and
#: takes 6-11 % fewer iterations to the default stop on Kodak mosaics (sigma 25 and 50, separate and coupled).
#: 1/(6 lambda) takes 13 % fewer there but 7-13x more on a checkerboard at lambda 0.5 (354 iterations against 27 to
#: tol 1/1020, 618 against 91 to 5e-4), and 1/(5 lambda) diverges.
TEXTBOOK_STEP_DIVISOR = 8.0
STEP_DIVISOR = 7.0


def solve_rof(f: torch.Tensor, lam: torch.Tensor, dims: tuple, max_iter: int, tol: float, check_every: int,
              progress: Optional[ProgressCallback] = None, p_start: Optional[torch.Tensor] = None,
              step_divisor: float = STEP_DIVISOR) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Solve ROF for each image of f (N, C, H, W) with weights ``lam`` (N,) and norm groups ``dims`` (see
    :func:`operators.group_dims`), from the feasible dual ``p_start`` (N, C, 2, H, W) or zero, with dual steps of
    1 / (step_divisor * lam).

    Stops when the certified RMSE bound is at most ``tol`` for every image, or after ``max_iter`` iterations; the
    bound is checked after ``check_every`` iterations, then where its decay predicts ``tol``. Returns u (N, C, H, W),
    the dual p (N, C, 2, H, W) and facts: iterations, gap (per value), rmse_bound (per image), converged.

    The certificate's image ``a`` is the average of the images f + lam div q that the iterations pass through,
    weighted by iteration^2. Its TV is far less noisy than that of u, so its gap is far smaller than the usual
    P(u) - D(p) (half the iterations to a given bound on Kodak mosaics). With the midpoint's bound on top, the true
    error at the stop is 3-10x below the bound (Kodak 1-12 crops, sigma 10-50). The average lags when convergence
    turns linear: then the plain gap is smaller and the average starts again."""
    n = f.shape[0]
    values_per_image = f[0].numel()
    if not bool((lam > 0).any()):
        return f.clone(), zero_dual(f), {"iterations": 0, "gap": [0.0] * n, "rmse_bound": [0.0] * n,
                                          "converged": True}
    lam4 = lam.view(n, 1, 1, 1).to(f.dtype)
    steps = 1.0 / (step_divisor * lam.clamp_min(1e-12))
    step = float(steps[0]) if bool((steps == steps[0]).all()) else steps.view(n, 1, 1, 1, 1)
    rows = f.shape[-2]
    if f.device.type == "cpu":
        rows = max(1, BLOCK_BYTES // (f[:, :, 0].numel() * 2 * f.element_size()))
    p = zero_dual(f)
    if p_start is not None:
        p.copy_(p_start)
    back = zero_dual(f)  # p's previous value minus p; every buffer keeps zero boundary entries
    bands = RowBands(f.shape[-2], TorchThreadPool.threads(f.device))
    # each band's rows of q = p - momentum * back that the sweep is at
    windows = [zero_dual(f[:, :, :min(rows + 2, f.shape[-2])]) for _ in range(bands.count)]
    momentum = 0.0
    u: Optional[torch.Tensor] = None  # f + lam div p, at the checks
    average = torch.zeros_like(f)  # the images f + lam div q, weighted by iteration^2 (the gap's primal image)
    weights = 0.0
    t = 1.0
    bound = torch.full((n,), float("inf"), dtype=torch.float64, device=f.device)
    gap = bound.clone()
    iteration = 0
    first_bound, shown = 0.0, 0  # for progress: the first certified bound, and the percent shown so far
    previous_check: Optional[tuple] = None  # (iteration, worst bound) of the last check
    next_check = check_every
    with bands:
        while iteration < max_iter:
            iteration += 1
            weights += iteration * iteration
            uphill = _sweep(f, lam4, step, dims, p, back, windows, momentum, average,
                            iteration * iteration / weights, rows, bands)
            p, back = back, p  # the sweep wrote the new iterate into back's buffer and p - p_new into p's
            t_next = (1.0 + (1.0 + 4.0 * t * t) ** 0.5) / 2.0
            if uphill:  # the momentum points uphill on the dual objective: restart it (O'Donoghue & Candes)
                t_next, t = 1.0, 1.0
            momentum = (t - 1.0) / t_next
            t = t_next
            if iteration == next_check or iteration == max_iter:
                u = divergence_of_dual(p, out=u).mul_(lam4).add_(f)  # the loop ends only here: this u is the result
                gap, bound, midpoint, lagging = _certify(u, p, lam, dims, average, tol, bands)
                if lagging:
                    weights = 0.0  # start the average again from the next iterate
                worst = float(bound.max())
                if progress is not None:
                    first_bound = first_bound or worst
                    # tol 0: no bound to reach, max_iter iterations
                    shown = max(shown, _percent_certified(first_bound, worst, tol) if tol > 0 else
                                min(99, 100 * iteration // max_iter))
                    progress(shown, 100, {"phase": "solving", "rmse_bound": worst})
                if worst <= tol or iteration == max_iter:
                    for image in midpoint.nonzero().flatten().tolist():  # in place: no new image in memory
                        u[image].add_(average[image]).mul_(0.5)
                    break
                next_check = iteration + _iterations_to_next_check(previous_check, (iteration, worst), tol,
                                                                   check_every)
                previous_check = (iteration, worst)
    if u is None:  # no iteration at all
        u = f.clone()
    gap = gap.clamp_min(0) / values_per_image
    return u, p, {"iterations": iteration, "gap": gap.tolist(), "rmse_bound": bound.tolist(),
                  "converged": bool((bound <= tol).all())}


def _certify(u: torch.Tensor, p: torch.Tensor, lam: torch.Tensor, dims: tuple, average: torch.Tensor, tol: float,
             bands: RowBands) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
    """The certificate of u = f + lam div p (N, C, H, W): per image, the gap G and the certified RMSE bound (N,), and
    whether the bound is the midpoint's (u + average) / 2 (N,), bool; and whether the average lags (the plain gap is
    under half of the average's: start it again). The plain gap is computed only when the midpoint's bound is not
    yet below ``tol``."""
    values_per_image = u[0].numel()
    distance, variation = _gap_terms(u, p, lam, dims, average, bands)
    gap = distance + variation
    squared_error = 0.5 * distance + variation  # the midpoint's certified squared error
    midpoint = torch.ones_like(gap, dtype=torch.bool)
    lagging = False
    if _rmse_bound(squared_error, values_per_image).max() > tol:
        plain = sum(_gap_terms(u, p, lam, dims, None, bands))
        lagging = bool((2 * plain < gap).any())
        midpoint = squared_error <= plain
        squared_error = torch.where(midpoint, squared_error, plain)
        gap = torch.where(midpoint, gap, plain)
    return gap, _rmse_bound(squared_error, values_per_image), midpoint, lagging


def _gap_terms(u: torch.Tensor, p: torch.Tensor, lam: torch.Tensor, dims: tuple, candidate: Optional[torch.Tensor],
               bands: RowBands) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`operators.duality_gap_terms`, a band of rows per thread of ``bands``."""
    parts = bands.map_bands(lambda start, stop: duality_gap_terms(u, p, lam, dims, candidate,
                                                                  rows_between=(start, stop)))
    return sum(part[0] for part in parts), sum(part[1] for part in parts)


class RowBands(TorchThreadPool):
    """An image's rows split into ``count`` bands, each swept on a thread of its own with torch single-threaded
    (:class:`.threads.TorchThreadPool`; use as a context manager)."""

    def __init__(self, height: int, count: int):
        # bands start at multiples of the duality gap's blocks of rows, so that the gap is summed over the same
        # blocks whatever the number of bands (the same reports with one thread or two)
        blocks = -(-height // GAP_ROWS)
        super().__init__(min(count, blocks), "rof-band")
        self.bounds = [min(height, blocks * band // self.count * GAP_ROWS) for band in range(self.count + 1)]

    def map_bands(self, work: Callable[[int, int], T]) -> list[T]:
        """work(start, stop) for each band's rows start..stop-1, on the bands' threads; the results in band order."""
        return self.map(lambda span: work(*span), list(zip(self.bounds[:-1], self.bounds[1:])))


def zero_dual(f: torch.Tensor) -> torch.Tensor:
    """A zero dual variable for images (N, C, H, W): (N, C, 2, H, W), stored with rows outermost (H, N, C, 2, W), so
    that the entries of a block of rows are contiguous."""
    n, channels, height, width = f.shape
    return f.new_zeros(height, n, channels, 2, width).permute(1, 2, 3, 0, 4)


def _sweep(f: torch.Tensor, lam4: torch.Tensor, step, dims: tuple, p: torch.Tensor, out: torch.Tensor,
           windows: list, momentum: float, average: torch.Tensor, average_share: float, rows: int,
           bands: RowBands) -> bool:
    """One FISTA iteration on the dual, a band of rows per thread of ``bands`` (each with its window in
    ``windows``), ``rows`` rows at a time; returns whether it went uphill (restart).

    The extrapolated point q = p - momentum * out (``out`` holds the previous iterate minus p) is formed a block of
    rows at a time into the band's window (N, C, 2, rows + 2, W), just before those rows of ``out`` are overwritten;
    no whole q is kept. The two rows of q at each boundary between bands, which both bands read, are formed first.
    Writes p_new = project(q + step * grad(f + lam div q)) into ``out`` and p - p_new into ``p``, and mixes
    f + lam div q into ``average``: average += average_share * (image - average). Uphill: <q - p_new, p_new - p> > 0.
    """
    edges = {bound: torch.add(p[..., bound - 1:bound + 1, :], out[..., bound - 1:bound + 1, :], alpha=-momentum)
             for bound in bands.bounds[1:-1]}

    def sweep_band(start: int, stop: int) -> torch.Tensor:
        above = edges[start][..., :1, :] if start in edges else None
        below = edges[stop][..., 1:, :] if stop in edges else None
        return _sweep_band(f, lam4, step, dims, p, out, windows[bands.bounds.index(start)], momentum, average,
                           average_share, rows, start, stop, above, below)

    return bool(torch.stack(bands.map_bands(sweep_band)).sum() < 0)


def _sweep_band(f: torch.Tensor, lam4: torch.Tensor, step, dims: tuple, p: torch.Tensor, out: torch.Tensor,
                window: torch.Tensor, momentum: float, average: torch.Tensor, average_share: float, rows: int,
                start: int, stop: int, above: Optional[torch.Tensor], below: Optional[torch.Tensor]) -> torch.Tensor:
    """:func:`_sweep` on the rows start..stop-1, given the rows of q just above and just below them (None at the
    image's edges); returns the band's share of the restart test's <q - p_new, p - p_new>."""
    height = f.shape[-2]
    window_top, formed = start, start  # the window holds the rows window_top..formed-1 of q
    if above is not None:
        window[..., :1, :] = above
        window_top = start - 1
    products = []
    for top in range(start, stop, rows):
        bottom = min(top + rows, stop)
        first, last = max(top - 1, 0), min(bottom + 1, height)  # the row above completes div, the row below grad
        if first > window_top:  # keep the rows first..formed-1, formed from entries of out now overwritten
            window[..., :formed - first, :] = window[..., first - window_top:formed - window_top, :].clone()
            window_top = first
        own_last = min(last, stop)
        torch.add(p[..., formed:own_last, :], out[..., formed:own_last, :], alpha=-momentum,
                  out=window[..., formed - first:own_last - first, :])
        formed = own_last
        if last > stop:  # the row below the band
            window[..., stop - first:last - first, :] = below
        q = window[..., :last - first, :]
        image = torch.addcmul(f[:, :, top:last], divergence_of_dual(q)[:, :, top - first:], lam4)
        average[:, :, top:bottom].lerp_(image[:, :, :bottom - top], average_share)
        count = bottom - top
        torch.sub(image[:, :, 1:], image[:, :, :-1], out=out[:, :, 0, top:last - 1])
        torch.sub(image[:, :, :count, 1:], image[:, :, :count, :-1], out=out[:, :, 1, top:bottom, :-1])
        block, q_block = out[..., top:bottom, :], q[..., top - first:bottom - first, :]
        if isinstance(step, float):
            torch.add(q_block, block, alpha=step, out=block)
        else:
            block.mul_(step).add_(q_block)
        project_onto_dual_ball(block, dims)
        back = p[..., top:bottom, :].sub_(block)
        # the restart test's <q, back> - <p_new, back>, on the block's contiguous memory
        q_flat, new_flat, back_flat = (x.permute(3, 0, 1, 2, 4).reshape(-1) for x in (q_block, block, back))
        products.append(torch.dot(q_flat, back_flat) - torch.dot(new_flat, back_flat))
    return torch.stack(products).sum()


def _iterations_to_next_check(previous: Optional[tuple], last: tuple, tol: float, check_every: int) -> int:
    """When to check next, from the (iteration, bound) of the last two checks: where the bound's power-law decay
    through them reaches ``tol`` (the decay slows as it goes, so this is rarely too late), but at least 2 and at most
    2 x check_every iterations on; check_every after the first check."""
    if previous is None or tol <= 0 or last[1] >= previous[1]:
        return check_every
    (first, first_bound), (at, bound) = previous, last
    rate = math.log(first_bound / bound) / math.log(at / first)  # bound ~ iteration ** -rate
    # log of the predicted iteration, capped before exp: a slow decay (rate near 0) predicts a huge number
    log_predicted = min(math.log(at) + math.log(bound / tol) / rate, math.log(at + 2 * check_every))
    return min(max(math.ceil(math.exp(log_predicted)) - at, 2), 2 * check_every)


def _rmse_bound(squared_error: torch.Tensor, values_per_image: int) -> torch.Tensor:
    """The certified RMSE from the exact solution, sqrt(squared_error / n), per image."""
    return torch.sqrt(squared_error.clamp_min(0) / values_per_image)


def _percent_certified(first: float, bound: float, tol: float) -> int:
    """How far the certified bound has come from its first value toward ``tol`` (> 0), on a log scale, in percent."""
    if bound <= tol:
        return 100
    if first <= tol or bound >= first:
        return 0
    return min(99, int(100 * math.log(first / bound) / math.log(first / tol)))
