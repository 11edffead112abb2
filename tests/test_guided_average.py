"""The guided non-local average: against a pixel-by-pixel NumPy reference, tile independence, noise removal on flat
areas, edges kept where the guide has them, and its place in zsn2n's default (under Gaussian and photon noise)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from denoise_cli.core.imageio import as_stored
from denoise_cli.core.metrics import psnr
from denoise_cli.core.noise import add_noise, parse_noise
from denoise_cli.methods import guided_average as ga, zsn2n
from denoise_cli.methods.noise_level import estimate_noise, fit_noise_variance
from denoise_cli.methods.zsn2n import MAX_SIGNAL_SHARE, finish_estimate, zsn2n_denoise

from .conftest import SAMPLES


def reference(noisy: np.ndarray, guide: np.ndarray, sigma: float) -> np.ndarray:
    """The module docstring's formula, one pixel and one offset at a time: (C, H, W) arrays -> (C, H, W)."""
    radius, half = ga.WINDOW // 2, ga.PATCH // 2
    margin = radius + half
    pad = ((0, 0), (margin, margin), (margin, margin))
    y, g = np.pad(noisy, pad, mode="reflect"), np.pad(guide, pad, mode="reflect")
    out = np.empty_like(noisy)
    for i in range(noisy.shape[1]):
        for j in range(noisy.shape[2]):
            ci, cj = i + margin, j + margin
            own = g[:, ci - half:ci + half + 1, cj - half:cj + half + 1]
            weights, values = [], []
            for oi in range(-radius, radius + 1):
                for oj in range(-radius, radius + 1):
                    if oi == oj == 0:
                        continue
                    other = g[:, ci + oi - half:ci + oi + half + 1, cj + oj - half:cj + oj + half + 1]
                    weights.append(np.exp(-np.mean((own - other) ** 2) / (ga.SCALE * sigma) ** 2))
                    values.append(y[:, ci + oi, cj + oj])
            weights.append(max(max(weights), 1e-12))
            values.append(y[:, ci, cj])
            w = np.array(weights)
            average = (w[:, None] * np.array(values)).sum(0) / w.sum()
            effective = w.sum() ** 2 / (w ** 2).sum()
            out[:, i, j] = (effective * average + ga.GUIDE_SAMPLES * guide[:, i, j]) / (effective + ga.GUIDE_SAMPLES)
    return out


def _textured(seed: int, shape=(1, 3, 19, 17)):
    generator = torch.Generator().manual_seed(seed)
    clean = F.interpolate(torch.rand(1, shape[1], 5, 5, generator=generator), size=shape[-2:], mode="bicubic")
    noisy = clean + 0.1 * torch.randn(shape, generator=generator)
    guide = clean + 0.02 * torch.randn(shape, generator=generator)
    return clean, noisy, guide


def test_equals_the_pixel_by_pixel_reference():
    _, noisy, guide = _textured(0)
    expected = reference(noisy[0].double().numpy(), guide[0].double().numpy(), 0.1)
    out = ga.guided_average(noisy, guide, torch.tensor([0.1]))
    assert np.allclose(out[0].numpy(), expected, atol=1e-5)


def test_the_result_does_not_depend_on_the_tile_size(monkeypatch):
    _, noisy, guide = _textured(1, (2, 1, 40, 37))
    sigma = torch.tensor([0.1, 0.05])
    whole = ga.guided_average(noisy, guide, sigma)
    monkeypatch.setattr(ga, "TILE", 16)
    tiled = ga.guided_average(noisy, guide, sigma)
    assert torch.allclose(whole, tiled, atol=1e-6)
    alone = ga.guided_average(noisy[1:], guide[1:], sigma[1:])
    assert torch.allclose(whole[1:], alone, atol=1e-6)  # each image of a batch with its own sigma


def test_progress_counts_the_tiles(monkeypatch):
    _, noisy, guide = _textured(7, (1, 1, 40, 37))
    monkeypatch.setattr(ga, "TILE", 16)
    calls = []
    ga.guided_average(noisy, guide, torch.tensor([0.1]), lambda done, total, info: calls.append((done, total, info)))
    assert calls == [(k, 9, {"phase": "refining"}) for k in range(1, 10)]


def test_a_flat_area_is_averaged_over_the_whole_window():
    generator = torch.Generator().manual_seed(2)
    noisy = 0.5 + 0.1 * torch.randn(1, 3, 48, 48, generator=generator)
    out = ga.guided_average(noisy, torch.full_like(noisy, 0.5), torch.tensor([0.1]))
    # every weight is 1: 441 samples, mixed with the (exact) guide
    assert float((out - 0.5).std()) < 0.1 / 15


def test_an_edge_of_the_guide_is_not_averaged_across():
    clean = torch.zeros(1, 1, 40, 40)
    clean[..., 20:] = 0.8
    noisy = clean + 0.05 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))
    out = ga.guided_average(noisy, clean, torch.tensor([0.05]))
    assert float((out - clean)[..., 18:22].abs().max()) < 0.05
    assert float(psnr(out, clean)) > float(psnr(noisy, clean)) + 15


def test_images_smaller_than_the_margin_are_padded_by_replication():
    _, noisy, guide = _textured(4, (1, 3, 6, 9))
    out = ga.guided_average(noisy, guide, torch.tensor([0.1]))
    assert out.shape == noisy.shape and torch.isfinite(out).all()


def test_a_noiseless_guide_with_zero_sigma_keeps_finite_values():
    _, noisy, guide = _textured(5)
    assert torch.isfinite(ga.guided_average(noisy, guide, torch.tensor([0.0]))).all()


@pytest.mark.parametrize("settings, mode", [({}, "fast+refine+unclip"), ({"refine": False}, "fast+unclip"),
                                            ({"unclip": False}, "fast+refine"),
                                            ({"refine": False, "unclip": False}, "fast"), ({"exact": True}, "exact")])
def test_zsn2n_finishes_by_default_and_reports_it(settings, mode):
    _, noisy, _ = _textured(6, (1, 3, 24, 24))
    _, facts = zsn2n_denoise(noisy.clamp(0, 1), iterations=4, seed=1, **settings)  # clipped, as a file stores it
    assert facts["mode"] == mode
    finished = mode not in ("fast", "exact")
    assert ("sigma" in facts and "finish_seconds" in facts) == finished
    if finished:
        assert facts["refined"] == ["+refine" in mode]
        assert facts["unclipped"] == ["+unclip" in mode]


def test_the_default_is_the_network_estimate_refined():
    _, noisy, _ = _textured(8, (1, 3, 30, 26))
    plain, _ = zsn2n_denoise(noisy, iterations=5, seed=3, refine=False)
    default, facts = zsn2n_denoise(noisy, iterations=5, seed=3)
    finished, finish = finish_estimate(noisy, plain)
    assert torch.equal(default, finished)  # benchmarks/zsn2n_benchmark.py relies on it
    assert facts["sigma"] == [finish["sigma"]] == [float(estimate_noise(noisy).effective[0])]
    assert facts["refined"] == [finish["refined"]] and facts["signal_share"] == [finish["signal_share"]]


def _photo(samples: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(samples).permute(2, 0, 1)[None].float() / 255


@pytest.mark.parametrize("noise", ["gaussian:25", "gaussian:50", "poisson:50", "poisson:10"])
def test_photon_noise_is_told_from_gaussian_noise_and_both_are_refined(noise):
    clean = _photo(np.array(Image.open(SAMPLES / "retina.png")))
    noisy = as_stored(add_noise(clean, parse_noise(noise), torch.Generator().manual_seed(9)), np.uint8)
    share = fit_noise_variance(noisy, clean)[0].signal_share
    photon = noise.startswith("poisson")
    assert (share > MAX_SIGNAL_SHARE) if photon else (share < 0.1)
    refined, facts = finish_estimate(noisy, clean, unclip=False)
    assert facts["refined"]
    assert torch.equal(refined, ga.guided_average(noisy, clean, estimate_noise(noisy).effective))


@pytest.mark.parametrize("noise", ["gaussian:25", "poisson:50"])
def test_the_refinement_raises_psnr_on_a_real_photo(retina, noise):
    clean = _photo(retina)
    noisy = as_stored(add_noise(clean, parse_noise(noise), torch.Generator().manual_seed(7)), np.uint8)
    plain, _ = zsn2n_denoise(noisy, iterations=150, learning_rate=3e-3, seed=1, refine=False)
    refined, facts = zsn2n_denoise(noisy, iterations=150, learning_rate=3e-3, seed=1)
    if noise == "gaussian:25":
        assert abs(facts["sigma"][0] * 255 - 25) < 4
    assert float(psnr(refined, clean)) > float(psnr(plain, clean)) + 0.5


@pytest.mark.parametrize("sigma", [3, 25])
def test_under_light_noise_the_finish_puts_back_what_the_estimate_smoothed_away(retina, sigma, monkeypatch):
    # a blurred copy of the clean photo stands in for a network that took out texture with the noise
    clean = _photo(retina)
    noisy = as_stored(add_noise(clean, parse_noise(f"gaussian:{sigma}"), torch.Generator().manual_seed(5)), np.uint8)
    smoothed = F.avg_pool2d(F.pad(clean, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    finished, facts = finish_estimate(noisy, smoothed, unclip=False)
    monkeypatch.setattr(zsn2n, "RESIDUAL_MAX_SIGMA", 0.0)
    refined_only, _ = finish_estimate(noisy, smoothed, unclip=False)
    assert facts["residual_restored"] == (sigma < 7)
    if sigma < 7:
        assert float(psnr(finished, clean)) > float(psnr(refined_only, clean)) + 0.5
    else:
        assert torch.equal(finished, refined_only)
