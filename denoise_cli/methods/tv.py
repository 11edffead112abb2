r"""ROF total-variation denoising, solved to a certified tolerance, with the weight chosen per image by SURE.

ROF (Rudin, Osher & Fatemi 1992): :math:`\min_u \tfrac12\|u - f\|^2 + \lambda\,\mathrm{TV}(u)` with
:math:`\mathrm{TV}(u) = \sum_i \|(\nabla u)_i\|`, forward differences with Neumann boundaries, and the norm taken over
groups that the ``norm`` and ``channels`` settings choose (the table in :mod:`.operators`).

The solver (:mod:`.rof`) is FISTA on the dual with adaptive restart; it stops when a certified bound on the RMSE
from the exact solution is below ``tol``.

The weight :math:`\lambda` is for images in [0, 1]; it means the same as scikit-image's ``weight`` in
``denoise_tv_chambolle``.
"""
from __future__ import annotations

import math
import time
from typing import Optional, Union

import torch

from ..core.errors import DenoiseError
from .base import ProgressCallback
from .noise_level import PATCH, estimate_noise
from .operators import check_modes, group_dims
from .rof import TEXTBOOK_STEP_DIVISOR, solve_rof
from .sure import TYPICAL_EVALUATIONS, sure_parameter, sure_tiles

#: ``--weight auto`` searches lambda per image by Monte-Carlo SURE (see :func:`auto_weight`) within a factor of 2 of
#: a rule lambda = slope * sigma_hat, slope = AUTO_WEIGHT_SLOPE[norm] * (sqrt(C) if channels are coupled else 1). With
#: C equal channels the coupled TV is sqrt(C) times one channel's, so the same per-channel smoothing needs sqrt(C)
#: times the weight. The isotropic slope is the best fixed slope for isotropic/coupled RGB over Kodak24 images 1-12
#: (256x256 centre crops, Gaussian sigma 15, 25, 50; benchmarks/calibrate_tv_weight.py): 1.145 = 0.661 * sqrt(3).
#: The PSNR-best slope of single images ranges 0.75-1.41 there (content decides: texture wants less smoothing), which
#: is why a fixed slope loses up to 0.8 dB and the search is needed; the bracket [0.5, 2] x rule holds every case.
#: Anisotropic TV is about 4/pi times isotropic TV for gradients of uniformly spread directions.
AUTO_WEIGHT_SLOPE = {"isotropic": 1.145 / math.sqrt(3), "anisotropic": 1.145 / math.sqrt(3) * math.pi / 4}
#: The SURE search (:func:`sure.parabolic_max` from the rule): its bracket around the rule, its resolution, the solver
#: tolerance of its solves, and the tiles of a large image it looks at (up to 2 x 2 tiles of this side, spread over the
#: image). SURE's divergence term is sensitive to how far the solves are from converged: 2.1e-3 stops them where 3e-3
#: did under the old, sqrt(2)-looser certificate, which is what the search was checked with (3e-3 under the new one
#: picked lambda 15 % lower and lost 0.3 dB more on the clipped test image; the old 5e-3 saved a third of the search's
#: iterations and chose as well on Kodak 1-12, but 0.15 dB worse on the retina test crop).
SURE_BRACKET = (0.5, 2.0)
SURE_REL_TOL = 0.05
SURE_SOLVER_TOL = 2.1e-3
SURE_TILE = 256
#: SURE's sigma is the effective (clipped) noise level, which suits SURE's Gaussian model better than the underlying
#: one on 8-bit files, but not below this fraction of the underlying sigma: the lowest ratio of the two on the
#: calibration images (Kodak 1-12 at sigma 15, 25, 50) is 0.877. Below it (a photo with 30 % of its values clipped
#: reads 0.80) SURE would take the image for much less noisy than it is and pick lambda up to 2x too small.
SURE_MIN_SIGMA_FRACTION = 0.875
#: The SURE search's solves take the textbook dual step 1/(8 lambda), not the solver's default 1/(7 lambda): the
#: Monte-Carlo divergence depends on where each solve stops, and the search was checked with these steps (with 1/(7
#: lambda) it picked lambda 3 % lower on the mostly clipped test image, 0.27 dB short of the best instead of 0.24).
SURE_STEP_DIVISOR = TEXTBOOK_STEP_DIVISOR
#: ``tol="auto"``: the certified RMSE bound a result must reach, as a fraction of one level of the output file (a
#: quarter of a level: the true error is then typically 3-10x smaller, and a few percent of 8-bit values round to the
#: other side of a level), and never looser than FLOAT_TOL, the tolerance of float and 16-bit outputs.
OUTPUT_LEVEL_TOL = 0.25
FLOAT_TOL = 5e-4


def auto_weight(x: torch.Tensor, norm: str = "isotropic", channels: str = "coupled", max_iter: int = 1000,
                progress: Optional[ProgressCallback] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Lambda for each image of (N, C, H, W) in [0, 1], chosen without the clean image: (lambda, sigma_hat), (N,).

    sigma_hat is the effective noise level from :func:`noise_level.estimate_noise`, at least SURE_MIN_SIGMA_FRACTION
    of the underlying one; lambda minimises Monte-Carlo SURE of the ROF solution (see :mod:`sure`) over [0.5, 2] x
    the calibrated rule (searched from the rule), to 5%, measured on up to four 256x256 tiles of the image.
    ``progress`` hears of each solve (phase "choosing the weight"). Images under 7x7 pixels raise DenoiseError:
    their noise cannot be estimated.
    """
    check_modes(norm, channels)
    height, width = x.shape[-2:]
    if min(height, width) < PATCH:
        raise DenoiseError(f"a {width}x{height} image is too small to estimate its noise (it takes at least "
                           f"{PATCH}x{PATCH} pixels): give the weight as a number")
    noise = estimate_noise(x)
    sigma = torch.maximum(noise.effective, SURE_MIN_SIGMA_FRACTION * noise.underlying)
    dims = group_dims(norm, channels)
    rule = AUTO_WEIGHT_SLOPE[norm] * (math.sqrt(x.shape[1]) if channels == "coupled" else 1.0)

    duals: dict = {}  # lambda -> its dual solution; each solve starts from that of the nearest lambda solved
    solves = {"done": 0, "expected": x.shape[0] * TYPICAL_EVALUATIONS}

    def solve(batch: torch.Tensor, lam: float) -> torch.Tensor:
        weights = torch.full((batch.shape[0],), lam, dtype=torch.float32, device=batch.device)
        nearest = min(duals, key=lambda solved: abs(math.log(solved / lam)), default=None)
        u, duals[lam], _ = solve_rof(batch, weights, dims, max_iter, SURE_SOLVER_TOL, 10, None,
                                       duals.get(nearest), SURE_STEP_DIVISOR)
        solves["done"] += 1
        if progress is not None:
            progress(min(solves["done"], solves["expected"]), solves["expected"], {"phase": "choosing the weight"})
        return u

    weights = []
    for image, noise in zip(x.float(), sigma.tolist()):
        duals.clear()
        centre = rule * noise
        if centre <= 0:
            weights.append(0.0)
            continue
        low, high = SURE_BRACKET[0] * centre, SURE_BRACKET[1] * centre
        weights.append(sure_parameter(solve, sure_tiles(image, SURE_TILE), noise, low, high, centre, SURE_REL_TOL))
    return torch.tensor(weights, dtype=torch.float64), sigma


def tv_denoise(x: torch.Tensor, weight: Union[float, str, torch.Tensor] = "auto", norm: str = "isotropic",
               channels: str = "coupled", max_iter: int = 1000, tol: Union[float, str] = "auto",
               check_every: int = 10, output_step: float = 0.0,
               progress: Optional[ProgressCallback] = None) -> tuple[torch.Tensor, dict]:
    """Solve the ROF problem for each image of a batch (N, C, H, W) in [0, 1].

    weight: lambda (a number, a per-image tensor (N,), or ``"auto"``: chosen per image by SURE, see
    :func:`auto_weight`).
    tol: stop when the certified RMSE bound from the exact solution (see :mod:`.rof`) is below ``tol`` for every
    image (in [0, 1] units; the true error is typically 3-10x below the bound). ``"auto"``: OUTPUT_LEVEL_TOL of
    ``output_step``, the quantisation step of the file the result goes to (1/255 for 8-bit: tol 9.8e-4), and at most
    FLOAT_TOL (float and 16-bit outputs, or output_step 0). ``max_iter`` caps the iterations.
    Returns the denoised batch (same shape and dtype) and facts: tol, weight, sigma and weight_seconds (the time the
    search took, when auto), solve_seconds (the time of the solve with the weight), iterations, gap (per value: the
    certificate, see :func:`rof.solve_rof`), rmse_bound, converged.
    """
    check_modes(norm, channels)
    if x.dim() != 4:
        raise ValueError(f"expected (N, C, H, W), got shape {tuple(x.shape)}")
    if tol == "auto":
        tol = max(FLOAT_TOL, OUTPUT_LEVEL_TOL * output_step)
    elif isinstance(tol, str) or not tol >= 0:
        raise ValueError(f"tol must be a number >= 0 or 'auto', got {tol!r}")
    facts: dict = {"tol": tol}
    if isinstance(weight, str):
        if weight != "auto":
            raise ValueError(f"weight must be a number or 'auto', got {weight!r}")
        searched = time.perf_counter()
        lam, sigma = auto_weight(x, norm, channels, max_iter, progress)
        facts["sigma"] = sigma.tolist()
        facts["weight_seconds"] = round(time.perf_counter() - searched, 3)
    else:
        lam = torch.as_tensor(weight, dtype=torch.float64).reshape(-1).expand(x.shape[0])
    if not bool(torch.isfinite(lam).all()) or bool((lam < 0).any()):
        raise ValueError(f"weight must be a finite number >= 0, got {lam.tolist()}")
    facts["weight"] = lam.tolist()
    flat = lam.cpu() >= mean_weight(x)  # the exact solution is the mean: no iterations needed
    solver_lam = torch.where(flat, torch.zeros_like(lam), lam).to(x.device, torch.float32)
    solving = time.perf_counter()
    u, _, solver_facts = solve_rof(x.float(), solver_lam, group_dims(norm, channels), max_iter, tol, check_every,
                                     progress)
    facts["solve_seconds"] = round(time.perf_counter() - solving, 3)
    if bool(flat.any()):
        u = torch.where(flat.to(x.device).view(-1, 1, 1, 1), x.float().mean(dim=(2, 3), keepdim=True), u)
    facts.update(solver_facts)
    return u.contiguous().to(x.dtype), facts  # (the solver's u is a view into one of its buffers)


def mean_weight(x: torch.Tensor) -> torch.Tensor:
    """A weight (N,), float64 on the CPU, from which on the ROF solution of each image of (N, C, H, W) is its channel
    means, in every norm and channel mode.

    The row-wise partial sums of f - (row mean), then the column-wise ones of (row mean) - (mean), make a dual field
    P with div P = mean - f whose groups are at most sqrt(C) (H + W) / 4 times the value range; p = P / lambda is
    feasible from that lambda on, and u = f + lambda div p is then the mean.
    """
    channels, height, width = x.shape[1:]
    value_range = (x.flatten(1).amax(dim=1) - x.flatten(1).amin(dim=1)).double().cpu()
    return math.sqrt(channels) * (height + width) / 4 * value_range
