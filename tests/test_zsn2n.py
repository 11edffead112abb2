"""ZS-N2N: the downsampler and loss by hand, the fit's effect, its precision, exact tiling, determinism."""
import contextlib
import copy
import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from denoise_cli.core.metrics import psnr
from denoise_cli.core import device as device_module
from denoise_cli.methods import zsn2n
from denoise_cli.methods.threads import TorchThreadPool
from denoise_cli.methods.zsn2n import (FAST_ITERATIONS, FLIPS, ZSN2N, BandedNetwork, apply_denoiser, fast_loss,
                                       pad_to_even, pair_downsample, resolve_precision, schedule, zsn2n_denoise,
                                       zsn2n_loss)


class Constant(nn.Module):
    """A stand-in network that predicts the same noise value everywhere."""

    def __init__(self, value: float):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full_like(x, self.value)


def test_pair_downsampler_by_hand():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    d1, d2 = pair_downsample(x)
    # block (0,0) holds 0 1 / 4 5: diagonal mean (0 + 5) / 2, anti-diagonal mean (1 + 4) / 2
    assert d1[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    assert d2[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]
    y = torch.tensor([[[[1.0, 0.0], [0.0, 3.0]]]])
    assert pair_downsample(y)[0].item() == 2.0 and pair_downsample(y)[1].item() == 0.0


def test_loss_by_hand():
    x = torch.tensor([[[[1.0, 0.0], [0.0, 3.0]]]])  # D1 = 2, D2 = 0
    total, residual, consistency = zsn2n_loss(Constant(0.0), x)
    assert residual.item() == pytest.approx(0.5 * ((2 - 0) ** 2 + (0 - 2) ** 2))  # = 4
    assert consistency.item() == 0.0
    total, residual, consistency = zsn2n_loss(Constant(0.5), x)
    # pred1 = 1.5, pred2 = -0.5; x - f(x) downsampled: D1 = 1.5, D2 = -0.5
    assert residual.item() == pytest.approx(0.5 * ((1.5 - 0) ** 2 + (-0.5 - 2) ** 2))
    assert consistency.item() == pytest.approx(0.0)
    assert total.item() == pytest.approx(residual.item())


def test_network_shape_follows_the_paper():
    net = ZSN2N(3, 48)
    assert [tuple(m.weight.shape) for m in (net.conv1, net.conv2, net.conv3)] == [(48, 3, 3, 3), (48, 48, 3, 3),
                                                                                  (3, 48, 1, 1)]
    assert net.act.negative_slope == 0.2


def test_in_place_activation_gives_the_papers_values_and_gradients():
    torch.manual_seed(0)
    net = ZSN2N(3, 8)
    paper = copy.deepcopy(net)
    paper.act = torch.nn.LeakyReLU(0.2)  # the paper's, not in place
    x = torch.randn(2, 3, 12, 10)
    outputs = [model(x) for model in (net, paper)]
    assert net.act.inplace and torch.equal(*outputs)
    for output in outputs:
        output.square().sum().backward()
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(net.parameters(), paper.parameters()))


@pytest.mark.parametrize("bands", [2, 3])
def test_a_step_in_bands_of_rows_equals_the_whole_pass(bands):
    torch.manual_seed(0)
    net = ZSN2N(3, 8)
    x = torch.rand(1, 3, 40, 36)
    whole_loss = fast_loss(net, x, torch.Generator().manual_seed(1))
    whole_loss.backward()
    whole = [p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    with TorchThreadPool(bands) as pool:
        network = BandedNetwork(net, pool, contextlib.nullcontext)
        banded_loss = fast_loss(net, x, torch.Generator().manual_seed(1), network)
        network.backward(banded_loss)
    assert banded_loss.item() == pytest.approx(whole_loss.item(), rel=1e-6)
    for expected, parameter in zip(whole, net.parameters()):
        assert torch.allclose(parameter.grad, expected, rtol=1e-5, atol=1e-7)


def test_pad_to_even_reflects_odd_sides():
    x = torch.arange(15.0).reshape(1, 1, 3, 5)
    padded = pad_to_even(x)
    assert padded.shape == (1, 1, 4, 6)
    assert padded[0, 0, 3].tolist()[:5] == x[0, 0, 1].tolist()


def test_tiled_inference_equals_the_whole_image_pass():
    torch.manual_seed(0)
    net = ZSN2N(3, 8)
    x = torch.rand(1, 3, 37, 45)
    whole = x - net(x)
    tiled = apply_denoiser(net, x, tile=16)
    assert torch.allclose(whole, tiled, atol=1e-6)


def _noisy_blocks(seed=0):
    generator = torch.Generator().manual_seed(seed)
    clean = F.interpolate(torch.rand(1, 1, 6, 6, generator=generator), size=(33, 31), mode="bilinear")
    noisy = clean + 0.1 * torch.randn(clean.shape, generator=generator)
    return clean, noisy


@pytest.mark.parametrize("exact, precision", [(False, "float32"), (False, "bfloat16"), (True, "float32")])
def test_a_short_fit_lowers_the_loss_and_raises_psnr(exact, precision):
    clean, noisy = _noisy_blocks()
    losses, phases = [], []

    def record(step, total, info):
        phases.append(info["phase"])
        if info["phase"] == "fitting":
            losses.append(info["loss"])

    out, facts = zsn2n_denoise(noisy, iterations=300, learning_rate=3e-3, seed=1, exact=exact, precision=precision,
                               progress=record)
    assert out.shape == noisy.shape and out.dtype == noisy.dtype
    assert min(losses[-5:]) < losses[0]
    assert float(psnr(out, clean)) > float(psnr(noisy.clamp(0, 1), clean)) + 3
    assert facts["mode"] == ("exact" if exact else "fast+refine+unclip")
    assert facts["precision"] == precision
    assert ("refining" in phases) == (not exact and facts["refined"] == [True])


def test_a_bfloat16_fit_computes_in_bfloat16_and_lands_near_the_float32_one():
    clean, noisy = _noisy_blocks()
    runs = {precision: zsn2n_denoise(noisy, iterations=100, learning_rate=3e-3, seed=1, precision=precision,
                                     refine=False, unclip=False) for precision in ("float32", "bfloat16")}
    (full, full_facts), (half, half_facts) = runs["float32"], runs["bfloat16"]
    assert full_facts["final_loss"] != half_facts["final_loss"]  # the arithmetic differs: autocast took effect
    assert abs(float(psnr(full, clean)) - float(psnr(half, clean))) < 0.5


@pytest.mark.parametrize("native", [True, False])
def test_auto_precision_is_bfloat16_only_where_the_hardware_computes_it(monkeypatch, native):
    monkeypatch.setattr(zsn2n, "computes_bf16_natively", lambda device: native)
    cpu = torch.device("cpu")
    assert resolve_precision("auto", False, cpu) == (torch.bfloat16 if native else torch.float32)
    assert resolve_precision("float32", False, cpu) == torch.float32
    assert resolve_precision("bfloat16", False, cpu) == torch.bfloat16  # asked for: emulated where not native
    assert resolve_precision("bfloat16", True, cpu) == torch.float32  # --exact is the paper's float32 procedure
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("float16", False, cpu)


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the CPU's flags from Linux's /proc/cpuinfo")
def test_native_bfloat16_on_the_cpu_follows_the_cpus_own_flags():
    flags = set(re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.M).group(1).split())
    expected = bool(flags & {"avx512_bf16", "amx_bf16"})
    assert device_module.computes_bf16_natively(torch.device("cpu")) == expected


def test_the_fit_is_deterministic_with_a_seed():
    _, noisy = _noisy_blocks()
    a, _ = zsn2n_denoise(noisy, iterations=20, seed=5)
    b, _ = zsn2n_denoise(noisy, iterations=20, seed=5)
    c, _ = zsn2n_denoise(noisy, iterations=20, seed=6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_auto_schedule_is_the_papers_with_exact_and_scales_the_period_with_the_steps():
    assert schedule("auto", "auto", exact=True) == (2000, 1500)
    assert schedule("auto", "auto", exact=False) == (FAST_ITERATIONS, round(0.75 * FAST_ITERATIONS))
    assert FAST_ITERATIONS < 2000
    assert schedule(1000, "auto", exact=True) == (1000, 750)
    assert schedule(100, 30, exact=False) == (100, 30)
    with pytest.raises(ValueError):
        schedule(0, "auto", exact=False)


def test_the_facts_report_the_schedule_that_ran():
    _, noisy = _noisy_blocks()
    _, facts = zsn2n_denoise(noisy, iterations=8, seed=1)
    assert (facts["iterations"], facts["step_size"]) == (8, 6)


def test_the_flip_average_is_the_mean_of_the_flipped_whole_image_passes():
    torch.manual_seed(0)
    net = ZSN2N(3, 8)
    x = torch.rand(1, 3, 37, 45)
    passes = [(x.flip(dims) - net(x.flip(dims))).flip(dims) if dims else x - net(x) for dims in FLIPS]
    expected = torch.stack(passes).mean(dim=0)
    assert len(FLIPS) == 4 and len(set(FLIPS)) == 4
    assert torch.allclose(apply_denoiser(net, x, tile=16, flips=FLIPS), expected, atol=1e-6)
    assert not torch.allclose(expected, passes[0], atol=1e-4)  # the net is not flip-invariant: the mean differs


@pytest.mark.parametrize("exact, flips", [(False, 4), (True, 1)])
def test_the_default_averages_the_flips_and_exact_runs_one_pass(exact, flips):
    _, noisy = _noisy_blocks()
    _, facts = zsn2n_denoise(noisy, iterations=4, seed=1, exact=exact)
    assert facts["flips"] == flips
