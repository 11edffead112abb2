"""Noise-level estimation on real images with known added noise."""
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from denoise_cli.methods.clipping import clipped_gaussian_moments, clipped_sigma_at_mean
from denoise_cli.methods.noise_level import estimate_noise, estimate_sigma

from .conftest import SAMPLES


def _noisy(clean: np.ndarray, sigma: float, seed: int, clip: bool = True) -> torch.Tensor:
    """(1, C, H, W) in [0, 1]: ``clean`` (uint8) plus N(0, sigma^2) on the 0-255 scale, clipped and rounded like a
    file, or left as floats."""
    noisy = clean + np.random.default_rng(seed).normal(0, sigma, clean.shape)
    if clip:
        noisy = np.clip(np.rint(noisy), 0, 255)
    array = noisy.astype(np.float32) / 255
    return torch.from_numpy(array if array.ndim == 3 else array[:, :, None]).permute(2, 0, 1)[None].contiguous()


@pytest.mark.parametrize("sigma", [5, 15, 30])
def test_estimate_is_close_to_the_added_noise_on_a_photo(sigma):
    clean = np.asarray(Image.open(SAMPLES / "retina.png"))[100:356, 100:356].astype(np.float64)
    estimate = float(estimate_sigma(_noisy(clean, sigma, seed=sigma))[0]) * 255
    assert estimate == pytest.approx(sigma, abs=0.06 * sigma + 0.5)


@pytest.mark.parametrize("sigma", [5, 15, 30])
def test_added_noise_adds_in_variance_on_a_texture_that_holds_its_own_noise(sigma):
    # the grass photo's fine texture reads as sigma ~10 by itself; independent noise adds in variance
    clean = np.asarray(Image.open(SAMPLES / "grass.png"))[:256, :256].astype(np.float64)
    own = float(estimate_sigma(_noisy(clean, 0, seed=0))[0]) * 255
    estimate = float(estimate_sigma(_noisy(clean, sigma, seed=sigma))[0]) * 255
    assert estimate == pytest.approx((own ** 2 + sigma ** 2) ** 0.5, rel=0.06)


def test_batch_gives_one_estimate_per_image_and_large_images_are_subsampled():
    flat = np.full((600, 700), 128.0)
    batch = torch.cat([_noisy(flat, 10, seed=1, clip=False), _noisy(flat, 20, seed=2, clip=False)])
    estimates = estimate_sigma(batch) * 255
    assert estimates.shape == (2,)
    assert estimates.tolist() == pytest.approx([10, 20], rel=0.03)


def test_clean_image_reads_near_zero_and_tiny_images_are_refused():
    clean = torch.from_numpy(np.asarray(Image.open(SAMPLES / "retina.png"))[100:228, 100:228] / 255.0)
    assert float(estimate_sigma(clean.permute(2, 0, 1)[None].float())[0]) * 255 < 2.0
    with pytest.raises(ValueError, match="cannot estimate"):
        estimate_sigma(torch.rand(1, 1, 5, 40))


@pytest.mark.parametrize("clean_value, sigma", [(0.02, 0.2), (0.5, 0.2), (0.97, 0.1), (0.3, 0.05)])
def test_clipped_gaussian_moments_match_sampling(clean_value, sigma):
    samples = np.clip(clean_value + sigma * np.random.default_rng(0).standard_normal(2_000_000), 0, 1)
    mean, std = clipped_gaussian_moments(torch.tensor([clean_value], dtype=torch.float64), sigma)
    assert float(mean[0]) == pytest.approx(samples.mean(), abs=3e-4)
    assert float(std[0]) == pytest.approx(samples.std(), abs=3e-4)
    # and the inverse: the std at the expected value of that clean value
    assert float(clipped_sigma_at_mean(mean, sigma)[0]) == pytest.approx(float(std[0]), rel=1e-3)


def test_underlying_sigma_sees_through_heavy_clipping():
    # a photo with most of its area near white, noise sigma 40 on the 0-255 scale, clipped and rounded like a file
    clean = np.asarray(Image.open(SAMPLES / "retina.png").convert("L"))[100:356, 100:356].astype(np.float64)
    clean = 245 + clean / 255 * 10
    clean[:, :96] = np.linspace(60, 200, 256)[:, None]
    noise = estimate_noise(_noisy(clean, 40, seed=3))
    effective, underlying = float(noise.effective[0]) * 255, float(noise.underlying[0]) * 255
    assert effective < 0.85 * 40  # clipping hides a good part of the noise ...
    assert underlying == pytest.approx(40, rel=0.06)  # ... which the clipped-Gaussian model recovers


def test_underlying_equals_effective_away_from_the_bounds():
    flat = np.full((200, 200), 128.0)
    noise = estimate_noise(_noisy(flat, 10, seed=4, clip=False))
    assert float(noise.underlying[0]) == pytest.approx(float(noise.effective[0]), rel=1e-3)


@pytest.mark.parametrize("name", ["page", "coins"])
@pytest.mark.parametrize("sigma", [2, 5])
def test_texture_of_a_gray_photo_does_not_read_as_noise(name, sigma):
    # gray 7x7 patches have few dimensions: fine texture reached the smallest eigenvalues of all patches and read
    # as sigma ~10 on both photos (the scanned page, the coins), whatever the noise added; the flat patches' reading
    # does not (the coins photo holds its own noise of about 2, which adds in variance)
    clean = getattr(skimage.data, name)().astype(np.float64)
    height, width = clean.shape
    top, left = (height - 160) // 2, (width - 256) // 2
    crop = clean[top:top + 160, left:left + 256]
    estimate = float(estimate_noise(_noisy(crop, sigma, seed=sigma)).underlying[0]) * 255
    assert estimate == pytest.approx(sigma, abs=0.15 * sigma + 1.0)
