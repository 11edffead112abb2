"""Sliding-window DCT hard thresholding: against a direct numpy/scipy implementation, and by its properties."""
import numpy as np
import pytest
import scipy.fft
import torch

from denoise_cli.methods import dct_shrinkage
from denoise_cli.methods.dct_shrinkage import BLOCK, STRIDE, dct_hard_threshold


def _reference(image: np.ndarray, threshold: float) -> np.ndarray:
    """Every BLOCK x BLOCK block of the reflect-padded image at even offsets, scipy's orthonormal DCT-II,
    coefficients at or under the threshold zeroed but the mean, averaged back: float64."""
    padded = np.pad(image, BLOCK, mode="reflect")
    total, count = np.zeros_like(padded), np.zeros_like(padded)
    for top in range(0, padded.shape[0] - BLOCK + 1, STRIDE):
        for left in range(0, padded.shape[1] - BLOCK + 1, STRIDE):
            coefficients = scipy.fft.dctn(padded[top:top + BLOCK, left:left + BLOCK], norm="ortho")
            mean = coefficients[0, 0]
            coefficients[np.abs(coefficients) <= threshold] = 0
            coefficients[0, 0] = mean
            total[top:top + BLOCK, left:left + BLOCK] += scipy.fft.idctn(coefficients, norm="ortho")
            count[top:top + BLOCK, left:left + BLOCK] += 1
    return total[BLOCK:-BLOCK, BLOCK:-BLOCK] / count[BLOCK:-BLOCK, BLOCK:-BLOCK]


def test_equals_a_direct_implementation():
    image = np.random.default_rng(0).random((37, 29))
    ours = dct_hard_threshold(torch.from_numpy(image).float()[None, None], 0.1, 2.0)[0, 0].double().numpy()
    assert np.abs(ours - _reference(image, 0.2)).max() < 1e-5


def test_the_result_does_not_depend_on_the_tile_size(monkeypatch):
    image = torch.rand(2, 3, 65, 45, generator=torch.Generator().manual_seed(1))  # 16-pixel tiles end with one row
    whole = dct_hard_threshold(image, 0.05, 2.5)
    for tile in (16, 2):
        monkeypatch.setattr(dct_shrinkage, "TILE", tile)
        assert torch.equal(dct_hard_threshold(image, 0.05, 2.5), whole)


def test_no_threshold_gives_the_image_back_and_tiny_images_pass():
    image = torch.rand(1, 1, 20, 30, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(dct_hard_threshold(image, 0.1, 0.0), image, atol=1e-6)
    assert dct_hard_threshold(torch.rand(1, 2, 3, 5), 0.1, 1.0).shape == (1, 2, 3, 5)


@pytest.mark.parametrize("sigma", [0.01, 0.1])
def test_white_noise_is_taken_out_and_a_strong_pattern_kept(sigma):
    generator = torch.Generator().manual_seed(3)
    noise = sigma * torch.randn(1, 1, 96, 96, generator=generator)
    assert float(dct_hard_threshold(noise, sigma, 3.0).std()) < 0.15 * sigma  # the blocks' means stay
    rows = torch.arange(96, dtype=torch.float32)
    pattern = 10 * sigma * torch.cos(rows[:, None] * 0.9) * torch.cos(rows[None] * 1.3)[None, None]
    restored = dct_hard_threshold(pattern + noise, sigma, 3.0)
    assert float((restored - pattern).pow(2).mean().sqrt()) < 0.7 * sigma  # the noisy input's error: sigma
    assert float((restored * pattern).sum() / pattern.pow(2).sum()) > 0.95  # the pattern kept
