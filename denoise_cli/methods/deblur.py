"""``denoise deblur``: the method function that puts the PSF (given, or found blind) and the deconvolution together.

With a PSF spec (:mod:`.psf`) the image is deconvolved by :func:`.deconvolution.tv_deconvolve`. With ``"auto"`` the
kernel is first estimated (:func:`.blind.estimate_psf`, coarse to fine), then used the same way, but ``--weight auto``
is the noise rule without the SURE search (it trusts the kernel: on the origin's scenario it cost the blind result
0.12 dB); ``method="chan-wong"`` runs the origin's baseline instead (:func:`.chan_wong.chan_wong`). The PSF used is
returned in the facts (``psf``, a nested list, rows first) so that reports and ``--save-psf`` have it.

A kernel found blind can be wrong (textured photos, or a photo with no blur to find), and deconvolving by a wrong
kernel rings. So the blind result is checked (:func:`rings`); one that rings is replaced by the pass with no blur
(a 1x1 PSF: the input, denoised) and the facts say so (``psf_rejected``).
"""
from __future__ import annotations

import time
from typing import Optional

import torch

from ..core.errors import DenoiseError
from .base import ProgressCallback
from .blind import estimate_psf, ring_share
from .chan_wong import chan_wong
from .deconvolution import tv_deconvolve
from .psf import as_array, parse_psf

DEBLUR_METHODS = ("tv", "chan-wong")
AUTO = "auto"
#: A blind result rings (see :func:`rings`) when more than RING_OVERSHOOT of its values, inside a border of the
#: kernel's size, lie beyond the file's range [0, 1] by more than RANGE_MARGIN. A deconvolution by the true kernel
#: stays in range: 0.0 % out on 120^2 gray crops of the sample images (grass, text, retina, hubble) blurred by
#: motion:15, disk:5 or gaussian:3 (noise 0.5/255, 8-bit), and on Levin's capture 4-4 with its true kernel; at
#: most 2.0 % on over-exposed photos (Kodak 2-12 even, gray 255^2, brightened 1.4 or 2x: 0.2-70 % of the scene
#: clipped before the blur, motion:15,30 or disk:5; 24 cases); deconvolving the sample crops unblurred by those
#: kernels puts 3.4-30 % out. Set on the blind results of Levin's 32 captures and of his 8 kernels on Kodak 13-24
#: gray crops (96 cases, 2026-12-03): the outputs better than their inputs had at most 2.5 % out of range, but for
#: Levin 4-4 (6.5 %, +3.8 dB over its input but 8x the true kernel's error: ringing); the five worst of the 7
#: outputs worse than their inputs (-9.1 to -1.0 dB) had 3.1-8.7 %, the two mildest (-1.2, -0.15 dB) under 1 %.
RING_OVERSHOOT = 0.03


def deblur(x: torch.Tensor, psf: str, psf_size: int = 31, weight="auto", regularizer: str = "tv",
           method: str = "tv", max_iter: int = 300, tol: float = 1e-4,
           progress: Optional[ProgressCallback] = None) -> tuple[torch.Tensor, dict]:
    """Deblur each image of (N, C, H, W) in [0, 1]. ``psf``: a spec or file (:func:`.psf.parse_psf`) or ``"auto"``
    (blind, a kernel of ``psf_size`` pixels, rounded up to odd). Returns the images and facts (those of
    :func:`.deconvolution.tv_deconvolve`, plus psf, psf_shape, psf_seconds, the time the blind estimate took, and
    psf_rejected, whether the kernel found was dropped because its result rang)."""
    if method not in DEBLUR_METHODS:
        raise ValueError(f"method must be one of {DEBLUR_METHODS}, got {method!r}")
    if method == "chan-wong" and psf != AUTO:
        raise DenoiseError("--method chan-wong estimates the PSF itself: use it with --psf auto")
    given = None if psf == AUTO else parse_psf(psf)  # read once for the batch

    def non_blind(image: torch.Tensor, kernel: torch.Tensor, search: bool) -> tuple[torch.Tensor, dict]:
        return tv_deconvolve(image, kernel.to(image.device), weight, regularizer, max_iter, tol, progress, search)

    outputs, kernels, facts = [], [], {}
    for image in x.split(1):
        if given is None:
            restored, kernel = _blind(image, psf_size, method, facts, progress)
        else:
            restored, kernel = None, given
        if restored is None:  # ours: the non-blind TV pass (a kernel found blind keeps the rule weight)
            restored, image_facts = non_blind(image, kernel, search=given is not None)
            rejected = given is None and rings(restored, max(kernel.shape))
            if rejected:  # the kernel found is wrong: the pass with no blur instead
                kernel = torch.ones(1, 1, dtype=kernel.dtype)
                restored, image_facts = non_blind(image, kernel, search=False)
            if given is None:
                image_facts["psf_rejected"] = rejected
            for key, value in image_facts.items():
                facts.setdefault(key, []).append(value[0] if isinstance(value, list) else value)
        outputs.append(restored)
        kernels.append(kernel)
    if "converged" in facts:
        facts["converged"] = all(facts["converged"])
    facts["psf_shape"] = [list(kernel.shape) for kernel in kernels]
    facts["psf"] = [as_array(kernel).round(8).tolist() for kernel in kernels]
    return torch.cat(outputs), facts


def rings(restored: torch.Tensor, border: int) -> bool:
    """Whether a deconvolution ``restored`` (1, C, H, W), of an image in [0, 1], rings: more than RING_OVERSHOOT of
    its values, inside a border of ``border`` pixels (the kernel's size) where one is left, lie beyond [0, 1] by
    more than RANGE_MARGIN (:func:`.blind.ring_share`)."""
    return ring_share(restored, border) > RING_OVERSHOOT


def kernel_dropped(facts: dict) -> bool:
    """Whether the facts of a one-image run say its blind kernel was dropped because the result rang."""
    return bool(facts.get("psf_rejected", [False])[0])


def _blind(image: torch.Tensor, psf_size: int, method: str, facts: dict,
           progress: Optional[ProgressCallback]) -> tuple[Optional[torch.Tensor], torch.Tensor]:
    """The kernel of one image (1, C, H, W) found blind, and the restored image when the method makes one itself
    (Chan-Wong; None for ours, which restores with the non-blind pass); adds psf_seconds to ``facts``."""
    height, width = image.shape[-2:]
    if min(height, width) < 2 * psf_size:
        raise DenoiseError(f"a {width}x{height} image is too small to estimate a {psf_size}-pixel PSF "
                           "(it takes twice the PSF size): lower --psf-size")
    started = time.perf_counter()
    if method == "chan-wong":
        restored, kernel = chan_wong(image, psf_size, progress)
    else:
        restored, kernel = None, estimate_psf(image, psf_size, progress)
    facts.setdefault("psf_seconds", []).append(round(time.perf_counter() - started, 3))
    return restored, kernel
