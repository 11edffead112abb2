"""denoise: image denoising (total variation, Zero-Shot Noise2Noise) and scoring (SSIM, PSNR) on torch tensors.

Tensors are (N, C, H, W), float32, values in [0, 1]. Files go through :func:`read_image` / :func:`write_image`,
which keep bit depth, alpha, ICC profile and EXIF.
"""
import gc

# Importing torch makes a quarter of a million long-lived objects, and the cyclic garbage collector would walk them
# over and over: as they appear, and again in every full collection after. Pause it for the imports, then freeze what
# exists (frozen objects are left out of later collections) and put it back as it was: `denoise ssim` on a 4K pair
# goes from 1.5-1.8 s to 1.4 s.
_collecting = gc.isenabled()
gc.disable()
from .core.device import resolve_device
from .core.errors import DenoiseError
from .core.imageio import Image, read_image, write_image
from .core.metrics import ms_ssim, psnr, ssim
from .core.noise import add_noise, parse_noise
from .methods.noise_level import estimate_sigma
from .methods.operators import total_variation
from .methods.tv import tv_denoise
from .methods.zsn2n import ZSN2N, zsn2n_denoise

gc.freeze()
if _collecting:
    gc.enable()

__all__ = [
    "DenoiseError", "Image", "ZSN2N", "add_noise", "estimate_sigma", "ms_ssim", "parse_noise", "psnr",
    "read_image", "resolve_device", "ssim", "total_variation", "tv_denoise", "write_image", "zsn2n_denoise",
]
