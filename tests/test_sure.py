"""Monte-Carlo SURE and the parameter search, against the true error they estimate."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from denoise_cli.methods.sure import golden_max, mc_sure, parabolic_max, sure_parameter

from .conftest import SAMPLES


def _blur(batch: torch.Tensor, width: float) -> torch.Tensor:
    """A Gaussian blur of standard deviation ``width`` pixels, reflect-padded: a denoiser with one parameter."""
    radius = 6
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / width) ** 2)
    taps = taps / taps.sum()
    c = batch.shape[1]
    padded = F.pad(batch, (radius,) * 4, mode="reflect")
    out = F.conv2d(padded, taps.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(out, taps.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)


@pytest.fixture
def photo_and_noisy():
    clean = torch.from_numpy(np.asarray(Image.open(SAMPLES / "retina.png"))[100:292, 100:292] / 255.0).float()
    clean = clean.permute(2, 0, 1)[None].contiguous()
    sigma = 20 / 255
    noisy = clean + sigma * torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))
    return clean, noisy, sigma


def test_sure_estimates_the_true_mse_of_a_blur(photo_and_noisy):
    clean, noisy, sigma = photo_and_noisy
    probe = torch.randn(noisy.shape, generator=torch.Generator().manual_seed(0))
    for width in (0.5, 1.0, 2.0):
        true_mse = float((_blur(noisy, width) - clean).pow(2).mean())
        assert mc_sure(_blur, noisy, width, sigma, probe) == pytest.approx(true_mse, rel=0.05)


def test_sure_parameter_lands_near_the_oracle_choice(photo_and_noisy):
    clean, noisy, sigma = photo_and_noisy
    oracle, _ = golden_max(lambda w: -float((_blur(noisy, w) - clean).pow(2).mean()), 0.3, 3.0, rel_tol=0.01)
    chosen = sure_parameter(_blur, noisy, sigma, 0.3, 3.0, start=1.0, rel_tol=0.01)
    assert chosen == pytest.approx(oracle, rel=0.1)
    assert sure_parameter(_blur, noisy, sigma, 0.3, 3.0, start=1.0, rel_tol=0.01) == chosen  # deterministic


def test_golden_max_finds_the_peak_on_a_log_scale():
    argument, value = golden_max(lambda t: -(math.log(t) - math.log(0.37)) ** 2, 0.01, 10.0, rel_tol=1e-4)
    assert argument == pytest.approx(0.37, rel=1e-3)
    assert value == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("start", [0.2, 0.37, 1.0, 3.0])
def test_parabolic_max_finds_a_skewed_peak_in_few_evaluations(start):
    """A smooth peak that is not a parabola in log t (skewed, flat on one side), from starts on both sides."""
    calls = []

    def score(t):
        calls.append(t)
        x = math.log(t) - math.log(0.37)
        return -x * x - 0.3 * x ** 3 if x > -2 else -4 + 2.4 + (x + 2)

    argument, value = parabolic_max(score, 0.01, 10.0, start, rel_tol=0.02)
    evaluated = list(calls)
    assert argument == pytest.approx(0.37, rel=0.02)
    assert argument in evaluated and value == max(score(t) for t in evaluated)
    assert len(evaluated) <= 9


def test_parabolic_max_stops_at_the_bound_of_a_monotone_score():
    assert parabolic_max(lambda t: -t, 0.5, 2.0, 1.0) == (pytest.approx(0.5), pytest.approx(-0.5))
    assert parabolic_max(lambda t: t, 0.5, 2.0, 1.0) == (pytest.approx(2.0), pytest.approx(2.0))


def test_parabolic_max_looks_inside_before_stepping_beyond_the_largest_start():
    """Peak between the centre and the largest of the three starting points (the best of the three): the search
    evaluates the fitted peak and stops there, without the costlier evaluation beyond the largest point."""
    calls = []

    def score(t):
        calls.append(t)
        return -(math.log(t) - math.log(1.2)) ** 2

    argument, _ = parabolic_max(score, 0.5, 2.0, 1.0, rel_tol=0.05)
    assert argument == pytest.approx(1.2, rel=0.01)
    assert max(calls) == pytest.approx(1.25) and len(calls) == 4
