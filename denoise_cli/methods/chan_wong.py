"""The project origin's blind baseline: Chan & Wong's alternating minimisation (1998), image and kernel each updated
by one regularised division in the Fourier domain per round (periodic boundaries, as in the origin), from a 3x3 box,
10 rounds. ``denoise deblur --psf auto --method chan-wong`` runs it, so that what :mod:`.blind` adds is shown.
"""
from __future__ import annotations

from typing import Optional

import torch

from .base import ProgressCallback
from .blind import box_start, clean_kernel, kernel_from_spectrum
from .noise_level import estimate_noise
from .operators import laplacian_symbol
from .psf import transfer_function

#: Rounds, and the weights of the image's and the kernel's smoothness terms. The image's is the Wiener weight
#: sigma^2 / (gradient variance of photos, ~0.05^2), at least CHAN_WONG_IMAGE_WEIGHT_MIN.
CHAN_WONG_ROUNDS, CHAN_WONG_GRADIENT_VARIANCE, CHAN_WONG_KERNEL_WEIGHT = 10, 0.05 ** 2, 1e-1
CHAN_WONG_IMAGE_WEIGHT_MIN = 1e-3


def chan_wong(x: torch.Tensor, psf_size: int, progress: Optional[ProgressCallback] = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The origin's baseline on one image (1, C, H, W): (deblurred image, kernel (psf_size, psf_size) float64).

    Each round updates the image, u = argmin ||k * u - f||^2 + a ||grad u||^2 (per channel; a the Wiener weight
    from the estimated noise), then the kernel,
    k = argmin ||k * u - f||^2 + b ||grad k||^2 on the gray image, projected onto its support, non-negative and
    summing to 1: both are one division in the Fourier domain (periodic boundaries, as in the origin).
    """
    size = psf_size + (psf_size % 2 == 0)
    f = x[0].float()
    height, width = f.shape[-2:]
    laplacian = laplacian_symbol(height, width, f.dtype, f.device)
    observed_f = torch.fft.rfft2(f)
    gray_f = observed_f.mean(dim=0)
    sigma = float(estimate_noise(x).underlying[0])
    image_weight = max(CHAN_WONG_IMAGE_WEIGHT_MIN, sigma ** 2 / CHAN_WONG_GRADIENT_VARIANCE)

    def image_step(kernel: torch.Tensor) -> torch.Tensor:
        otf = transfer_function(kernel, height, width)
        return otf.conj() * observed_f / (otf.abs() ** 2 + image_weight * laplacian)

    kernel = box_start(size, f)
    for round_ in range(CHAN_WONG_ROUNDS):
        latent_gray_f = image_step(kernel).mean(dim=0)
        kernel_f = latent_gray_f.conj() * gray_f / (latent_gray_f.abs() ** 2
                                                     + CHAN_WONG_KERNEL_WEIGHT * laplacian + 1e-8)
        kernel = clean_kernel(kernel_from_spectrum(kernel_f, height, width, size, size), kernel)
        if progress is not None:
            progress(round_ + 1, CHAN_WONG_ROUNDS, {"phase": "estimating the blur"})
    latent_f = image_step(kernel)
    return torch.fft.irfft2(latent_f, s=(height, width))[None].to(x.dtype), kernel.double()
