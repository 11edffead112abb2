"""`denoise deblur`: PSF specs and files, the unknown-boundary deconvolution against an independent forward model
(scipy's convolution), blind estimation on a synthetic case, bad PSFs, and the installed command."""
from __future__ import annotations

import math
import threading

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
import torch
from PIL import Image

from denoise_cli.core.errors import DenoiseError
from denoise_cli.core.metrics import psnr
from denoise_cli.core.psf_files import write_psf_file
from denoise_cli.methods import blind
from denoise_cli.methods.blind import (_component_labels, estimate_psf, gradient_threshold, keep_main_components,
                                      recentre)
from denoise_cli.methods.chan_wong import chan_wong
from denoise_cli.methods import deblur as deblur_module
from denoise_cli.methods.deblur import deblur, rings
from denoise_cli.methods.deconvolution import (SURE_LOW, SURE_MIN_SIGMA, auto_weight, deblur_noise_level,
                                                sure_weight, tv_deconvolve)
from denoise_cli.methods.psf import parse_psf, transfer_function, trim_zero_border
from denoise_cli.methods.threads import TorchThreadPool

from .conftest import SAMPLES, run_cli

# --------------------------------------------------------------------------------------------------- PSF specs


@pytest.mark.parametrize("spec", ["gaussian:1.5", "motion:9", "motion:7,30", "box:4", "disk:2.5", "motion:12,90"])
def test_models_are_normalised_non_negative_and_centred(spec):
    psf = parse_psf(spec).numpy()
    assert psf.min() >= 0 and abs(psf.sum() - 1) < 1e-12
    if spec != "box:4":  # symmetric about the centre entry (h // 2, w // 2)
        rows, cols = np.indices(psf.shape)
        assert abs((rows * psf).sum() - psf.shape[0] // 2) < 1e-9
        assert abs((cols * psf).sum() - psf.shape[1] // 2) < 1e-9


def test_gaussian_model_is_the_sampled_gaussian():
    psf = parse_psf("gaussian:2").numpy()
    assert psf.shape == (13, 13)
    axis = np.arange(-6, 7)
    expected = np.exp(-(axis[:, None] ** 2 + axis[None, :] ** 2) / 8.0)
    np.testing.assert_allclose(psf, expected / expected.sum(), rtol=1e-12)


@pytest.mark.parametrize("length,degrees", [(9, 0), (15, 30), (11, 90), (20, 135)])
def test_motion_model_has_its_length_and_direction(length, degrees):
    psf = parse_psf(f"motion:{length},{degrees}").numpy()
    rows, cols = np.indices(psf.shape)
    x, y = cols - psf.shape[1] // 2, psf.shape[0] // 2 - rows  # y up
    angle = math.radians(degrees)
    along, across = x * math.cos(angle) + y * math.sin(angle), -x * math.sin(angle) + y * math.cos(angle)
    # a uniform segment of length L has variance L^2 / 12 along it; bilinear splatting adds up to 1/6 per image axis
    assert abs((psf * along ** 2).sum() - length ** 2 / 12) < 0.05 * length ** 2 / 12 + 1 / 3
    assert (psf * across ** 2).sum() < 1 / 3


def test_disk_model_covers_the_disk_area():
    psf = parse_psf("disk:4").numpy()
    assert psf.shape == (9, 9)
    assert abs(psf.sum() / psf.max() - math.pi * 16) < 0.5  # full-value pixels' equivalent area
    assert psf[4, 4] == psf.max()


def test_psf_files_round_trip_and_are_normalised(tmp_path):
    kernel = np.zeros((5, 6))
    kernel[2, 1:5] = [1, 2, 3, 4]  # even width, not normalised
    np.save(tmp_path / "k.npy", kernel)
    np.testing.assert_allclose(parse_psf(str(tmp_path / "k.npy")).numpy(), kernel / kernel.sum())
    for name in ("k.tif", "k.png"):
        write_psf_file(str(tmp_path / name), kernel / kernel.sum())
        np.testing.assert_allclose(parse_psf(str(tmp_path / name)).numpy(), kernel / kernel.sum(), atol=1e-4)
    Image.fromarray((kernel * 60).astype(np.uint8)).save(tmp_path / "k8.png")
    np.testing.assert_allclose(parse_psf(str(tmp_path / "k8.png")).numpy(), kernel / kernel.sum(), atol=1e-12)


@pytest.mark.parametrize("array,words", [
    (np.zeros((0, 3)), "empty"), (-np.ones((3, 3)), "negative"), (np.full((3, 3), np.nan), "NaN"),
    (np.zeros((3, 3)), "all zero"), (np.ones((3, 3, 3)), "2-D"),
])
def test_bad_psf_arrays_are_refused(tmp_path, array, words):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(DenoiseError, match=words):
        parse_psf(str(tmp_path / "bad.npy"))


@pytest.mark.parametrize("spec", ["gaussian:abc", "gaussian:-1", "box:2.5", "motion:", "disk:0", "gaussian:1e9",
                                  "motion:5,nan", "missing.npy"])
def test_bad_psf_specs_are_refused(spec):
    with pytest.raises(DenoiseError):
        parse_psf(spec)


@pytest.mark.parametrize("pad", [(3, 3, 5, 5), (0, 2, 4, 4), (6, 6, 0, 0)])
def test_a_zero_border_changes_nothing_but_the_work(pad):
    """A kernel's all-zero outer rows and columns go in pairs (its centre stays the same entry), so a kernel found
    blind in a 31^2 support, or a measured PSF with a wide dark border, deconvolves as its trimmed self."""
    kernel = parse_psf("motion:7,20")
    padded = torch.nn.functional.pad(kernel, pad)
    trimmed = trim_zero_border(padded)
    top, bottom, left, right = pad[2], pad[3], pad[0], pad[1]
    assert trimmed.shape == (kernel.shape[0] + abs(bottom - top), kernel.shape[1] + abs(right - left))
    assert torch.allclose(transfer_function(trimmed, 64, 64), transfer_function(padded, 64, 64))
    if top == bottom and left == right:  # the same blur as the kernel itself: the same deconvolution
        blurred, _ = _blur_valid(_cartoon(size=90, seed=2), kernel.numpy())
        x = torch.from_numpy(blurred).float()[None, None]
        assert torch.equal(tv_deconvolve(x, padded, 2e-3)[0], tv_deconvolve(x, kernel, 2e-3)[0])


def test_a_psf_larger_than_the_image_is_refused():
    with pytest.raises(DenoiseError, match="larger than the image"):
        tv_deconvolve(torch.rand(1, 1, 20, 20), parse_psf("gaussian:5"), 1e-3)


# ------------------------------------------------------------------------------------------- forward model


@pytest.mark.parametrize("shape", [(5, 5), (4, 6)])
def test_the_centre_entry_convention(shape):
    """A kernel whose only entry is at (h // 2, w // 2) is the identity; one column right of it shifts right."""
    kernel = torch.zeros(shape, dtype=torch.float64)
    kernel[shape[0] // 2, shape[1] // 2] = 1
    assert torch.allclose(transfer_function(kernel, 16, 16), torch.ones(16, 9, dtype=torch.complex128))
    kernel = torch.roll(kernel, 1, 1)
    image = torch.rand(16, 16, dtype=torch.float64)
    moved = torch.fft.irfft2(transfer_function(kernel, 16, 16) * torch.fft.rfft2(image), s=(16, 16))
    assert torch.allclose(moved, torch.roll(image, 1, 1))


def _cartoon(size: int = 96, seed: int = 0) -> np.ndarray:
    """A piecewise-constant test image (rectangles and a disk) in [0.1, 0.9]: TV's ideal case."""
    rng = np.random.default_rng(seed)
    image = np.full((size, size), 0.3)
    for _ in range(6):
        top, left = rng.integers(0, size - 20, 2)
        image[top:top + rng.integers(10, 40), left:left + rng.integers(10, 40)] = rng.uniform(0.1, 0.9)
    rows, cols = np.indices((size, size))
    image[(rows - size / 2) ** 2 + (cols - size / 3) ** 2 < (size / 6) ** 2] = 0.8
    return image


def _blur_valid(sharp: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scipy's 'valid' convolution (an independent forward model) and the sharp frame it is aligned with under the
    centre-entry convention."""
    blurred = scipy.signal.convolve2d(sharp, kernel, mode="valid")
    kh, kw = kernel.shape
    top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
    return blurred, sharp[top:top + blurred.shape[0], left:left + blurred.shape[1]]


@pytest.mark.parametrize("spec", ["gaussian:1.5", "motion:7,30", "box:4"])
def test_a_synthetic_blur_is_undone_up_to_the_borders(spec):
    kernel = parse_psf(spec).numpy()
    blurred, sharp = _blur_valid(_cartoon(), kernel)
    restored, facts = tv_deconvolve(torch.from_numpy(blurred).float()[None, None], torch.from_numpy(kernel), 2e-4,
                                    max_iter=1000)
    restored = restored[0, 0].double().numpy()
    error = np.sqrt(((restored - sharp) ** 2).mean())
    before = np.sqrt(((blurred - sharp) ** 2).mean())
    border = np.ones_like(sharp, dtype=bool)
    border[8:-8, 8:-8] = False
    border_error = np.sqrt(((restored - sharp)[border] ** 2).mean())
    assert error < 0.3 * before and error < 0.02, (error, before)
    assert border_error < 0.03, border_error  # no ringing at the frame: the unknown-boundary model


def test_a_circular_model_rings_where_ours_does_not():
    """The same data through a periodic (circular) Wiener filter, written independently in numpy: its border error
    is several times ours, which is why the default model is the unknown-boundary one."""
    kernel = parse_psf("motion:11,20").numpy()
    blurred, sharp = _blur_valid(_cartoon(seed=3), kernel)
    ours, _ = tv_deconvolve(torch.from_numpy(blurred).float()[None, None], torch.from_numpy(kernel), 2e-4)
    padded = np.zeros_like(blurred)
    kh, kw = kernel.shape
    padded[:kh, :kw] = kernel
    otf = np.fft.fft2(np.roll(padded, (-(kh // 2), -(kw // 2)), (0, 1)))
    wiener = np.real(np.fft.ifft2(np.conj(otf) * np.fft.fft2(blurred) / (np.abs(otf) ** 2 + 1e-3)))
    band = np.ones_like(sharp, dtype=bool)
    band[6:-6, 6:-6] = False
    ours_error = np.sqrt(((ours[0, 0].double().numpy() - sharp)[band] ** 2).mean())
    circular_error = np.sqrt(((wiener - sharp)[band] ** 2).mean())
    assert circular_error > 3 * ours_error, (circular_error, ours_error)


def test_colour_channels_are_coupled_and_shapes_kept():
    kernel = parse_psf("gaussian:1.2")
    rgb = np.stack([_blur_valid(_cartoon(seed=s), kernel.numpy())[0] for s in range(3)])
    x = torch.from_numpy(rgb).float()[None]
    restored, facts = tv_deconvolve(x, kernel, "auto")
    assert restored.shape == x.shape and restored.dtype == x.dtype
    assert facts["weight"][0] > 0 and facts["sigma"][0] >= 0


def _noisy_blurred_grass(spec: str, sigma: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 140^2 crop of the grass sample (fine texture) blurred by ``spec`` and noise ``sigma`` (8-bit levels),
    rounded to 8 bits: (blurred (1, 1, h, w), sharp frame (1, 1, h, w), psf)."""
    grass = np.asarray(Image.open(SAMPLES / "grass.png"), dtype=np.float64)[:140, :140] / 255
    kernel = parse_psf(spec)
    blurred, sharp = _blur_valid(grass, kernel.numpy())
    noisy = blurred + np.random.default_rng(0).normal(0, sigma / 255, blurred.shape)
    observed = np.round(np.clip(noisy, 0, 1) * 255) / 255
    return torch.from_numpy(observed).float()[None, None], torch.from_numpy(sharp).float()[None, None], kernel


def test_auto_weight_is_the_rule_where_the_noise_is_below_sures_reach():
    blurred, _, kernel = _noisy_blurred_grass("gaussian:1.6", 0)
    sigma = 0.5 * SURE_MIN_SIGMA
    assert sure_weight(blurred[0], kernel, sigma) == auto_weight(sigma, 1)


def test_auto_weight_search_lowers_the_rule_on_texture_to_the_best_weight():
    # the rule over-smooths fine texture; SURE sees it (measured: +0.28 dB over the rule, at the grid's best)
    blurred, sharp, kernel = _noisy_blurred_grass("gaussian:1.6", 15)
    sigma = float(deblur_noise_level(blurred)[0])
    rule = auto_weight(sigma, 1)
    chosen = sure_weight(blurred[0], kernel.float(), sigma)
    assert SURE_LOW * rule <= chosen < 0.8 * rule

    def score(weight: float) -> float:
        return float(psnr(tv_deconvolve(blurred, kernel, weight)[0], sharp)[0])

    best = max(score(multiple * rule) for multiple in (0.25, 0.35, 0.5, 0.71, 1.0))
    assert score(chosen) >= score(rule) + 0.15
    assert score(chosen) >= best - 0.1
    phases = []
    _, facts = tv_deconvolve(blurred, kernel, "auto", progress=lambda done, steps, facts: phases.append(facts["phase"]))
    assert facts["weight"][0] == pytest.approx(chosen) and facts["weight_seconds"][0] > 0
    assert phases[0] == "choosing the weight" and phases[-1] == "deconvolving"
    _, facts = tv_deconvolve(blurred, kernel, "auto", search=False)  # an estimated kernel's final pass: the rule
    assert facts["weight"][0] == pytest.approx(rule)


def test_adaptive_regularizer_staircases_less_on_a_smooth_ramp():
    ramp = np.tile(np.linspace(0.2, 0.8, 110), (110, 1))
    rng = np.random.default_rng(0)
    kernel = parse_psf("gaussian:1.5").numpy()
    blurred, sharp = _blur_valid(ramp, kernel)
    blurred = blurred + rng.normal(0, 0.01, blurred.shape)
    errors = {}
    for regularizer in ("tv", "adaptive"):
        restored, _ = tv_deconvolve(torch.from_numpy(blurred).float()[None, None], torch.from_numpy(kernel), 5e-3,
                                    regularizer)
        errors[regularizer] = np.sqrt(((restored[0, 0].double().numpy() - sharp)[8:-8, 8:-8] ** 2).mean())
    assert errors["adaptive"] < errors["tv"], errors


# --------------------------------------------------------------------------------------------------- blind


def _shift_aligned_correlation(found: np.ndarray, true: np.ndarray) -> float:
    """The largest normalised correlation of two kernels over relative shifts (a blind kernel may be shifted)."""
    size = max(found.shape[0], true.shape[0]) + 8
    def placed(k):
        out = np.zeros((size, size))
        top, left = (size - k.shape[0]) // 2, (size - k.shape[1]) // 2
        out[top:top + k.shape[0], left:left + k.shape[1]] = k
        return out
    a, b = placed(found), placed(true)
    correlation = np.real(np.fft.ifft2(np.fft.fft2(a) * np.conj(np.fft.fft2(b))))
    return float(correlation.max() / np.sqrt((a ** 2).sum() * (b ** 2).sum()))


def test_blind_estimation_recovers_a_synthetic_motion_kernel():
    sharp = np.asarray(Image.open(SAMPLES / "hubble.png").convert("L"), dtype=np.float64) / 255
    true = parse_psf("motion:9,30").numpy()
    blurred, _ = _blur_valid(sharp[:200, :200], true)
    found = estimate_psf(torch.from_numpy(blurred).float()[None, None], 15).numpy()
    assert found.shape == (15, 15) and found.min() >= 0 and abs(found.sum() - 1) < 1e-6
    assert found.max() < 0.5  # not collapsed to a point
    assert _shift_aligned_correlation(found, true) > 0.8


def test_a_low_contrast_image_is_estimated_at_the_contrast_the_weights_were_set_at():
    """The kernel of a x + b is the kernel of x: a gray image of little spread is stretched to TARGET_SPREAD for the
    estimate (one of full spread is left as it is), and a faint photo's blur is found as its contrasty twin's."""
    ramp = torch.linspace(0, 1, 10_000).reshape(100, 100)
    assert blind.stretched(ramp) is ramp
    faint = blind.stretched(0.45 + 0.1 * ramp)
    low, high = torch.quantile(faint.flatten().double(), torch.tensor([0.001, 0.999], dtype=torch.float64))
    assert abs(float(high - low) - blind.TARGET_SPREAD) < 1e-5 and abs(float(faint.mean()) - 0.5) < 1e-5
    sharp = np.asarray(Image.open(SAMPLES / "hubble.png").convert("L"), dtype=np.float64)[:200, :200] / 255
    true = parse_psf("motion:9,30").numpy()
    blurred, _ = _blur_valid(0.4 + 0.2 * sharp, true)
    stored = np.rint(blurred * 255) / 255  # an 8-bit file: 46 levels of spread
    found = estimate_psf(torch.from_numpy(stored).float()[None, None], 15).numpy()
    assert _shift_aligned_correlation(found, true) > 0.75  # 0.86 here (0.68 unstretched; the photo itself: 0.87)


@pytest.mark.parametrize("seed", range(4))
def test_kernel_components_are_scipys_8_connected_labels(seed):
    support = torch.rand(31, 31, generator=torch.Generator().manual_seed(seed)) < 0.45
    ours = _component_labels(support).numpy()
    theirs, _ = scipy.ndimage.label(support.numpy(), structure=np.ones((3, 3)))
    pairs = set(zip(ours[support.numpy()].tolist(), theirs[support.numpy()].tolist()))
    assert (ours[~support.numpy()] == 0).all()
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs}) == theirs.max()  # same partition


def test_pruning_drops_light_pieces_and_keeps_diagonal_neighbours():
    kernel = torch.zeros(9, 9, dtype=torch.float64)
    kernel[4, 1:7] = 0.14  # the main path, 0.84
    kernel[5, 7] = 0.08  # touches the path's end diagonally: the same piece
    kernel[0, 0] = kernel[8, 8] = 0.04  # specks apart, each under a tenth of the mass
    kept = keep_main_components(kernel)
    assert abs(float(kept.sum()) - 1) < 1e-12 and float(kept[0, 0]) == float(kept[8, 8]) == 0
    assert torch.equal(kept > 0, (kernel > 0) & (kernel > 0.05))
    assert torch.allclose(kept[4, 1:7], torch.full((6,), 0.14 / 0.92, dtype=torch.float64))


@pytest.mark.parametrize("down, right", [(0, 0), (3, -3), (-6, 2)])
def test_recentring_moves_the_centre_of_mass_to_the_middle(down, right):
    kernel = torch.zeros(15, 15, dtype=torch.float64)
    kernel[7 + down, 4 + right:11 + right] = torch.linspace(1, 2, 7, dtype=torch.float64)  # a ramp, mass right
    kernel /= kernel.sum()
    centred = recentre(kernel)
    rows, cols = np.indices(kernel.shape)
    assert abs(float(centred.sum()) - 1) < 1e-12
    assert abs((rows * centred.numpy()).sum() - 7) <= 0.5 and abs((cols * centred.numpy()).sum() - 7) <= 0.5
    assert torch.equal(centred[centred > 0], kernel[kernel > 0])  # shifted whole, nothing lost


def test_gradient_threshold_keeps_enough_pixels_in_each_direction():
    image = np.asarray(Image.open(SAMPLES / "grass.png").convert("L"), dtype=np.float64)[:120, :120] / 255
    threshold = gradient_threshold(torch.from_numpy(image).float(), 5)
    dx, dy = image[:-1, 1:] - image[:-1, :-1], image[1:, :-1] - image[:-1, :-1]
    magnitude = dx ** 2 + dy ** 2
    folded = np.degrees(np.arctan2(dy, dx))  # the direction of a line: fold to [-90, 90)
    folded = np.where(folded >= 90, folded - 180, np.where(folded < -90, folded + 180, folded))

    def fewest_in_a_bin(level: float) -> int:
        return min(int((magnitude[(folded >= low) & (folded < low + 45) & (dx != 0)] >= level).sum())
                   for low in (-90, -45, 0, 45))

    assert threshold > 0 and fewest_in_a_bin(threshold * (1 - 1e-6)) >= 100  # 20 x the kernel size in each bin
    assert fewest_in_a_bin(threshold * (1 + 1e-6)) < 100  # and no higher threshold would do
    assert gradient_threshold(torch.zeros(50, 50), 5) == 0.0  # no gradients: keep everything


def test_a_large_image_is_estimated_on_its_centre_window(monkeypatch):
    sharp = np.asarray(Image.open(SAMPLES / "hubble.png").convert("L"), dtype=np.float64) / 255
    blurred, _ = _blur_valid(sharp[:110, :96], parse_psf("motion:5,0").numpy())
    image = torch.from_numpy(blurred).float()[None, None]
    top, left = (blurred.shape[0] - 64) // 2, (blurred.shape[1] - 64) // 2
    whole = estimate_psf(image[..., top:top + 64, left:left + 64], 7)
    monkeypatch.setattr(blind, "ESTIMATION_WINDOW", 64)
    assert torch.equal(estimate_psf(image, 7), whole)


def test_the_blind_estimate_is_the_same_on_one_thread_or_two_and_gives_the_threads_back():
    """The runs go to threads of their own with torch single-threaded inside, so the kernel found does not depend on
    the number of threads, and torch has its thread count back afterwards."""
    blurred, _ = _blur_valid(_gray_grass(96, 96), parse_psf("motion:7,30").numpy())
    image = torch.from_numpy(blurred).float()[None, None]
    previous = torch.get_num_threads()
    try:
        found = {}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            found[threads] = estimate_psf(image, 9)
            assert torch.get_num_threads() == threads
        assert torch.equal(found[1], found[2])
    finally:
        torch.set_num_threads(previous)


def test_chan_wong_baseline_returns_a_normalised_kernel():
    sharp = np.asarray(Image.open(SAMPLES / "grass.png").convert("L"), dtype=np.float64)[:96, :96] / 255
    blurred, _ = _blur_valid(sharp, parse_psf("box:3").numpy())
    restored, kernel = chan_wong(torch.from_numpy(blurred).float()[None, None], 9)
    assert restored.shape == (1, 1) + blurred.shape and kernel.shape == (9, 9)
    assert float(kernel.min()) >= 0 and abs(float(kernel.sum()) - 1) < 1e-6


def _gray_grass(height: int, width: int) -> np.ndarray:
    return np.asarray(Image.open(SAMPLES / "grass.png").convert("L"), dtype=np.float64)[:height, :width] / 255


def test_a_deconvolution_rings_by_a_wrong_kernel_not_by_the_true_one():
    kernel = parse_psf("motion:15,0")
    blurred, sharp = _blur_valid(_gray_grass(174, 174), kernel.numpy())
    as_batch = lambda image: torch.from_numpy(image).float()[None, None]
    right, _ = tv_deconvolve(as_batch(blurred), kernel, "auto", search=False)
    wrong, _ = tv_deconvolve(as_batch(sharp), kernel, "auto", search=False)  # nothing blurred it
    assert not rings(right, 15) and rings(wrong, 15)


def test_of_the_kernels_found_the_one_that_rings_least_is_chosen_then_the_lowest_objective():
    """A wrong kernel (the blur turned by 90 degrees) given the lowest objective still loses to the true one, whose
    deconvolution stays in range; between kernels that ring alike, the lower objective wins."""
    kernel = parse_psf("motion:15,0")
    blurred, _ = _blur_valid(_gray_grass(174, 174), kernel.numpy())
    gray = torch.from_numpy(blurred).float()
    wrong = parse_psf("motion:15,90")
    assert blind.choose_kernel(gray, [(wrong, 1.0), (kernel, 2.0)]) is kernel
    same = kernel.clone()
    assert blind.choose_kernel(gray, [(kernel, 2.0), (same, 1.0)]) is same


def test_a_blind_kernel_that_rings_is_not_used(tmp_path, monkeypatch):
    sharp = np.rint(_gray_grass(160, 160) * 255).astype(np.uint8)  # a photo with no blur to find
    Image.fromarray(sharp).save(tmp_path / "sharp.png")
    monkeypatch.setattr(deblur_module, "estimate_psf", lambda image, size, progress=None: parse_psf("motion:15,0"))
    result = run_cli("deblur", tmp_path / "sharp.png", "--psf", "auto", "--psf-size", "15", "-o",
                     tmp_path / "out.png", "--save-psf", tmp_path / "psf.npy", "--jobs", "1", "-v")
    assert result.code == 0 and "without ringing" in result.stderr
    assert "not used (undoing it rang): 1x1" in result.stderr  # the -v line
    assert np.load(tmp_path / "psf.npy").tolist() == [[1.0]]  # the PSF used: none
    out = np.asarray(Image.open(tmp_path / "out.png"), dtype=np.float64) / 255
    as_batch = lambda image: torch.from_numpy(image)[None, None]
    assert float(psnr(as_batch(out), as_batch(sharp / 255.0))) > 30  # the photo, lightly denoised


def test_blind_refuses_an_image_smaller_than_twice_the_psf():
    with pytest.raises(DenoiseError, match="too small"):
        deblur(torch.rand(1, 1, 40, 40), "auto", 31)


# -------------------------------------------------------------------------------------------- the command


def test_deblur_command_end_to_end(tmp_path):
    sharp = np.asarray(Image.open(SAMPLES / "retina.png"))[:128, :128]
    kernel = parse_psf("gaussian:1.5").numpy()
    blurred = np.stack([_blur_valid(sharp[..., c] / 255.0, kernel)[0] for c in range(3)], axis=-1)
    Image.fromarray(np.rint(blurred * 255).astype(np.uint8)).save(tmp_path / "blurred.png")
    result = run_cli("deblur", tmp_path / "blurred.png", "--psf", "gaussian:1.5", "-o", tmp_path / "out.png",
                     "--save-psf", tmp_path / "psf.npy", "--report", tmp_path / "r.json", "-q")
    assert result.code == 0, result.stderr
    out = np.asarray(Image.open(tmp_path / "out.png"))
    assert out.shape == blurred.shape and out.dtype == np.uint8
    np.testing.assert_allclose(np.load(tmp_path / "psf.npy"), kernel, atol=1e-8)


@pytest.mark.parametrize("args,words", [
    (["--psf", "gaussian:-2"], "--psf"), (["--psf", "nothere.npy"], "no such file"),
    (["--psf", "auto", "--save-psf", "k.jpg"], ".npy"), ([], "needs --psf"),
    (["--method", "chan-wong", "--psf", "box:3"], "chan-wong"),
])
def test_deblur_command_refuses_bad_psf_options(tmp_path, args, words):
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "a.png")
    result = run_cli("deblur", tmp_path / "a.png", "-o", tmp_path / "o.png", *args)
    assert result.code in (1, 2) and words in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_tiles_give_the_whole_image_solution(monkeypatch):
    """A large image is solved in tiles, each with its own unknown boundary: no seams worth a level."""
    import denoise_cli.methods.deconvolution as deconvolution
    kernel = parse_psf("motion:7,60").numpy()
    blurred, sharp = _blur_valid(_cartoon(size=130, seed=5), kernel)
    x = torch.from_numpy(blurred + np.random.default_rng(0).normal(0, 0.01, blurred.shape)).float()[None, None]
    whole, _ = tv_deconvolve(x, torch.from_numpy(kernel), 2e-3)
    monkeypatch.setattr(deconvolution, "TILE_CORE", 48)
    tiled, _ = tv_deconvolve(x, torch.from_numpy(kernel), 2e-3)
    assert len(deconvolution.tiles(x.shape[-1], 48, 24)) == 3
    difference = (tiled - whole)[0, 0].double().numpy()
    assert np.sqrt((difference ** 2).mean()) < 0.5 / 255
    psnrs = [-10 * np.log10(((u[0, 0].double().numpy() - sharp) ** 2).mean()) for u in (whole, tiled)]
    assert psnrs[1] > psnrs[0] - 0.05, psnrs  # (small tiles converge sooner: tiled is often a little closer)


def test_tiles_on_threads_equal_tiles_one_after_another(monkeypatch):
    """The tiles go to threads of ours (torch single-threaded inside) on the CPU: the same image as the tiles solved
    one after another, every tile reported once, and no second level of threads inside a pool's thread."""
    import denoise_cli.methods.deconvolution as deconvolution
    kernel = torch.from_numpy(parse_psf("gaussian:1.2").numpy())
    blurred, _ = _blur_valid(_cartoon(size=150, seed=3), kernel.numpy())
    x = torch.from_numpy(blurred + np.random.default_rng(1).normal(0, 0.01, blurred.shape)).float()[None, None]
    monkeypatch.setattr(deconvolution, "TILE_CORE", 48)
    tile_count = len(deconvolution.tiles(x.shape[-2], 48, 16)) * len(deconvolution.tiles(x.shape[-1], 48, 16))
    outputs, reports = [], {}
    threads = torch.get_num_threads()
    try:
        for count in (2, 1):
            torch.set_num_threads(count)
            seen = reports.setdefault(count, [])
            outputs.append(tv_deconvolve(x, kernel, 2e-3, progress=lambda done, total, facts: seen.append(
                (done, total, threading.current_thread().name.split("_")[0]))))
    finally:
        torch.set_num_threads(threads)
    assert tile_count == 9 and torch.allclose(outputs[0][0], outputs[1][0], atol=1e-6)
    assert sorted(done for done, _, _ in reports[2]) == list(range(1, 10)) and {t for _, t, _ in reports[2]} == {9}
    assert {name for _, _, name in reports[2]} == {"deconvolve-tile"}
    assert {name for _, _, name in reports[1]} == {threading.main_thread().name}
    with TorchThreadPool(2, "outer") as pool:
        assert pool.map(lambda _: TorchThreadPool.threads(torch.device("cpu")), range(2)) == [1, 1]
