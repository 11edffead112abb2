"""denoise: image denoising (total variation, Zero-Shot Noise2Noise), deblurring and scoring (SSIM, PSNR) on tensors.

Tensors are (N, C, H, W), float32, values in [0, 1]. Files go through :func:`read_image` / :func:`write_image`,
which keep bit depth, alpha, ICC profile and EXIF.

The names below are imported on first use (PEP 562), so that ``import denoise_cli`` is instant and the command's
entry point (:mod:`denoise_cli.__main__`) controls when torch loads.
"""
from importlib import import_module

#: Public name -> the module that defines it.
_API = {
    "DenoiseError": ".core.errors", "Image": ".core.imageio", "read_image": ".core.imageio",
    "write_image": ".core.imageio", "ms_ssim": ".core.metrics", "psnr": ".core.metrics", "ssim": ".core.metrics",
    "add_noise": ".core.noise", "parse_noise": ".core.noise", "resolve_device": ".core.device",
    "estimate_sigma": ".methods.noise_level", "total_variation": ".methods.operators", "tv_denoise": ".methods.tv",
    "ZSN2N": ".methods.zsn2n", "zsn2n_denoise": ".methods.zsn2n", "deblur": ".methods.deblur",
    "tv_deconvolve": ".methods.deconvolution", "parse_psf": ".methods.psf", "estimate_psf": ".methods.blind",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_API[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
