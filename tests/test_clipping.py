"""Undoing clipping's bias: against means sampled with NumPy (Gaussian and Poisson noise, clipped like a file), the
identity away from black and white and without noise, a real photo's dark background, and zsn2n's use of it."""
import numpy as np
import pytest
import torch
from PIL import Image

from denoise_cli.core.metrics import psnr
from denoise_cli.methods.clipping import clean_level_at_mean, clipped_gaussian_moments, unclip
from denoise_cli.methods.zsn2n import finish_estimate

from .conftest import SAMPLES


def _sampled_clipped_mean(clean: float, noise: str, level: float, count: int = 4_000_000) -> float:
    """The mean of clip(noisy, 0, 1) over many samples: Gaussian of sigma ``level`` or Poisson of peak ``level``."""
    rng = np.random.default_rng(0)
    samples = (clean + level * rng.standard_normal(count) if noise == "gaussian"
               else rng.poisson(level * clean, count) / level)
    return float(np.clip(samples, 0, 1).mean())


@pytest.mark.parametrize("clean", [0.0, 0.02, 0.05, 0.95, 0.98, 1.0])
@pytest.mark.parametrize("sigma", [0.1, 0.2])
def test_the_clipped_mean_of_gaussian_noise_maps_back_to_the_clean_value(clean, sigma):
    mean = torch.tensor([_sampled_clipped_mean(clean, "gaussian", sigma)])
    assert abs(float(mean[0]) - clean) > 0.01  # clipping moved it ...
    assert float(unclip(mean, 0.0, sigma * sigma)[0]) == pytest.approx(clean, abs=2e-3)  # ... and unclip undoes it


@pytest.mark.parametrize("clean", [0.02, 0.3, 0.9, 0.98])
def test_photon_noise_is_unbiased_near_black_and_corrected_near_white(clean):
    peak = 50.0  # Poisson noise is never below 0, so it is clipped only at 1
    mean = torch.tensor([_sampled_clipped_mean(clean, "poisson", peak)])
    corrected = float(unclip(mean, 1 / peak, 0.0)[0])
    assert corrected == pytest.approx(clean, abs=4e-3)
    if clean > 0.9:
        assert abs(float(mean[0]) - clean) > 0.01


def test_mid_tones_and_noiseless_images_are_left_as_they_are():
    levels = torch.linspace(0.3, 0.7, 101, dtype=torch.float64)
    assert torch.allclose(unclip(levels, 0.0, 0.05 ** 2), levels, atol=1e-5)  # six sigmas from both ends
    image = torch.rand(1, 3, 8, 8)
    assert unclip(image, 0.0, 0.0) is image
    out = unclip(image, 0.0, 0.1 ** 2)
    assert out.dtype == image.dtype and out.shape == image.shape and bool(((out >= 0) & (out <= 1)).all())


@pytest.mark.parametrize("slope, offset", [(0.0, 0.15 ** 2), (1 / 30, 1e-4)])
def test_it_inverts_the_clipped_mean_at_every_level_and_keeps_the_order(slope, offset):
    levels = torch.linspace(0.001, 0.999, 999, dtype=torch.float64)
    clipped = clipped_gaussian_moments(levels, (slope * levels + offset).sqrt())[0]
    assert torch.allclose(clean_level_at_mean(clipped, slope, offset), levels, atol=2e-5)
    means = torch.sort(torch.rand(500, generator=torch.Generator().manual_seed(1), dtype=torch.float64)).values
    assert bool((torch.diff(clean_level_at_mean(means, slope, offset)) >= 0).all())


def test_a_real_photos_dark_background_comes_back_dark():
    # the clipped mean of noisy copies of the retina photo (black surround), estimated by averaging 64 of them
    clean = torch.from_numpy(np.asarray(Image.open(SAMPLES / "retina.png"))[:160, :160] / 255.0).permute(2, 0, 1)
    clean = clean[None].float()
    sigma = 40 / 255
    generator = torch.Generator().manual_seed(3)
    copies = (clean + sigma * torch.randn((64, *clean.shape[1:]), generator=generator)).clamp(0, 1)
    average = copies.mean(dim=0, keepdim=True)
    corrected = unclip(average, 0.0, sigma * sigma)
    assert float(psnr(corrected, clean)) > float(psnr(average, clean)) + 6


def test_zsn2n_unclips_only_data_that_were_clipped():
    # a ramp from black to mid-grey under noise of sigma 0.1, and the ideal smoother's estimate: the clipped mean
    clean = torch.linspace(0, 0.5, 64).repeat(1, 3, 64, 1)
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(4))
    estimate = clipped_gaussian_moments(clean.double(), 0.1)[0].float()
    stored, facts = finish_estimate(noisy.clamp(0, 1), estimate, refine=False)
    assert facts["unclipped"] and float((stored - clean).abs().max()) < 0.01 < float((estimate - clean).abs().max())
    unstored, facts = finish_estimate(noisy, estimate, refine=False)  # values below 0: nothing was clipped
    assert not facts["unclipped"] and torch.equal(unstored, estimate)
