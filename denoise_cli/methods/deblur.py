"""``denoise deblur``: the method function that puts the PSF (given, or found blind) and the deconvolution together.

With a PSF spec (:mod:`.psf`) the image is deconvolved by :func:`.deconvolution.tv_deconvolve`. With ``"auto"`` the
kernel is first estimated (:func:`.blind.estimate_psf`, coarse to fine), then used the same way; ``method="chan-wong"``
runs the origin's baseline instead (:func:`.blind.chan_wong`). The PSF used is returned in the facts (``psf``, a
nested list, rows first) so that reports and ``--save-psf`` have it.
"""
from __future__ import annotations

import time
from typing import Optional

import torch

from ..core.errors import DenoiseError
from .base import ProgressCallback
from .blind import chan_wong, estimate_psf
from .deconvolution import tv_deconvolve
from .psf import as_array, parse_psf

DEBLUR_METHODS = ("tv", "chan-wong")
AUTO = "auto"


def deblur(x: torch.Tensor, psf: str = AUTO, psf_size: int = 31, weight="auto", regularizer: str = "tv",
           method: str = "tv", max_iter: int = 300, tol: float = 1e-4,
           progress: Optional[ProgressCallback] = None) -> tuple[torch.Tensor, dict]:
    """Deblur each image of (N, C, H, W) in [0, 1]. ``psf``: a spec or file (:func:`.psf.parse_psf`) or ``"auto"``
    (blind, a kernel of ``psf_size`` pixels, rounded up to odd). Returns the images and facts (those of
    :func:`.deconvolution.tv_deconvolve`, plus psf, psf_shape and psf_seconds, the time the blind estimate took)."""
    if method not in DEBLUR_METHODS:
        raise ValueError(f"method must be one of {DEBLUR_METHODS}, got {method!r}")
    if method == "chan-wong" and psf != AUTO:
        raise DenoiseError("--method chan-wong estimates the PSF itself: use it with --psf auto")
    outputs, kernels, facts = [], [], {}
    for image in x.split(1):
        height, width = image.shape[-2:]
        started = time.perf_counter()
        if psf == AUTO:
            if min(height, width) < 2 * psf_size:
                raise DenoiseError(f"a {width}x{height} image is too small to estimate a {psf_size}-pixel PSF "
                                   "(it takes twice the PSF size): lower --psf-size")
            if method == "chan-wong":
                restored, kernel = chan_wong(image, psf_size, progress)
                outputs.append(restored)
                kernels.append(kernel)
                facts.setdefault("psf_seconds", []).append(round(time.perf_counter() - started, 3))
                continue
            kernel = estimate_psf(image, psf_size, progress)
            facts.setdefault("psf_seconds", []).append(round(time.perf_counter() - started, 3))
        else:
            kernel = parse_psf(psf)
        restored, image_facts = tv_deconvolve(image, kernel.to(image.device), weight, regularizer, max_iter, tol,
                                              progress)
        outputs.append(restored)
        kernels.append(kernel)
        for key, value in image_facts.items():
            facts.setdefault(key, []).append(value[0] if isinstance(value, list) else value)
    if "converged" in facts:
        facts["converged"] = all(facts["converged"])
    facts["psf_shape"] = [list(kernel.shape) for kernel in kernels]
    facts["psf"] = [as_array(kernel).round(8).tolist() for kernel in kernels]
    return torch.cat(outputs), facts
