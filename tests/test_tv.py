"""TV and the ROF solver: against scikit-image, against an independent primal-dual solver, and by its properties."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image
from skimage.restoration import denoise_tv_chambolle

from denoise_cli.core.imageio import as_stored
from denoise_cli.core.metrics import psnr
from denoise_cli.methods.noise_level import estimate_noise
from denoise_cli.methods.sure import golden_max
from denoise_cli.methods.operators import divergence, divergence_of_dual, gradient, group_norms, total_variation
from denoise_cli.methods.rof import zero_dual
from denoise_cli.methods.tv import SURE_MIN_SIGMA_FRACTION, auto_weight, tv_denoise

from .conftest import SAMPLES, noisy_copy

MODES = [(n, c) for n in ("isotropic", "anisotropic") for c in ("coupled", "separate")]


def _to_tensor(array: np.ndarray) -> torch.Tensor:
    array = array.astype(np.float32) / 255 if array.dtype == np.uint8 else array.astype(np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1)[None].contiguous()


# ---------------------------------------------------------------------- an independent reference, float64 numpy

def _np_grad(u):  # (C, H, W) -> (C, 2, H, W)
    g = np.zeros((u.shape[0], 2) + u.shape[1:])
    g[:, 0, :-1] = np.diff(u, axis=1)
    g[:, 1, :, :-1] = np.diff(u, axis=2)
    return g


def _np_grad_adjoint(p):  # D^T p, written from the definition <Du, p> = <u, D^T p>
    out = np.zeros((p.shape[0],) + p.shape[2:])
    out[:, :-1] -= p[:, 0, :-1]
    out[:, 1:] += p[:, 0, :-1]
    out[:, :, :-1] -= p[:, 1, :, :-1]
    out[:, :, 1:] += p[:, 1, :, :-1]
    return out


def _np_group_norm(g, norm, channels):
    axes = ((0,) if channels == "coupled" else ()) + ((1,) if norm == "isotropic" else ())
    return np.sqrt((g ** 2).sum(axis=axes, keepdims=True)) if axes else np.abs(g)


def _np_objective(u, f, lam, norm, channels):
    g = _np_grad(u)
    axes = ((0,) if channels == "coupled" else ()) + ((1,) if norm == "isotropic" else ())
    tv = np.sqrt((g ** 2).sum(axis=axes)).sum() if axes else np.abs(g).sum()
    return 0.5 * ((u - f) ** 2).sum() + lam * tv


def _chambolle_pock(f, lam, norm, channels, iterations=6000):
    """Accelerated primal-dual (Chambolle & Pock 2011, alg. 2) for ROF, float64: the long-run reference."""
    u = f.copy()
    u_bar = u.copy()
    y = np.zeros((f.shape[0], 2) + f.shape[1:])
    tau, sigma = 0.25, 0.5  # tau * sigma * ||D||^2 <= 1 with ||D||^2 <= 8
    for _ in range(iterations):
        y = y + sigma * _np_grad(u_bar)
        y = y / np.maximum(1.0, _np_group_norm(y, norm, channels) / lam)
        u_next = (u - tau * _np_grad_adjoint(y) + tau * f) / (1 + tau)
        theta = 1 / np.sqrt(1 + 2 * tau)
        tau, sigma = theta * tau, sigma / theta
        u_bar = u_next + theta * (u_next - u)
        u = u_next
    return u


# --------------------------------------------------------------------------------------------------------- tests

def test_divergence_is_the_negative_adjoint_of_gradient():
    generator = torch.Generator().manual_seed(0)
    u = torch.randn(2, 3, 7, 9, generator=generator, dtype=torch.float64)
    p = torch.randn(2, 3, 2, 7, 9, generator=generator, dtype=torch.float64)
    assert float((gradient(u) * p).sum()) == pytest.approx(-float((u * divergence(p)).sum()), rel=1e-12)


def test_fast_divergence_equals_divergence_on_dual_iterates():
    generator = torch.Generator().manual_seed(1)
    p = torch.randn(1, 3, 2, 6, 5, generator=generator)
    p[:, :, 0, -1] = 0  # the solver's iterates: no vertical entry in the last row, no horizontal in the last column
    p[:, :, 1, :, -1] = 0
    assert torch.allclose(divergence_of_dual(p), divergence(p))


def test_total_variation_by_hand():
    x = torch.tensor([[[[0.0, 1.0], [3.0, 5.0]]]])  # u_y = (3, 4), u_x = (1, 2) in the first row/column
    assert float(total_variation(x, "anisotropic", "separate")) == pytest.approx(3 + 4 + 1 + 2)
    # isotropic: pixel (0,0) has (u_y, u_x) = (3, 1); (0,1) has (4, 0); (1,0) has (0, 2)
    assert float(total_variation(x, "isotropic", "separate")) == pytest.approx(np.sqrt(10) + 4 + 2)
    assert float(total_variation(x, "anisotropic", "separate", reduction="mean")) == pytest.approx(10 / 4)
    rgb = x.repeat(1, 3, 1, 1)
    assert float(total_variation(rgb, "isotropic", "coupled")) == pytest.approx(np.sqrt(3) * (np.sqrt(10) + 6))
    assert total_variation(torch.cat([x, 2 * x]), reduction="none").tolist() == pytest.approx(
        [np.sqrt(10) + 6, 2 * (np.sqrt(10) + 6)])


def test_total_variation_is_differentiable_even_where_flat():
    x = torch.zeros(1, 3, 8, 8, requires_grad=True)
    loss = total_variation(x, "isotropic", "coupled", reduction="mean")
    loss.backward()
    assert torch.isfinite(x.grad).all()


def test_separate_isotropic_equals_scikit_image(retina):
    noisy = noisy_copy(retina[:64, :64], 25, seed=1)
    f = noisy.astype(np.float64) / 255
    expected = denoise_tv_chambolle(f, weight=0.1, eps=1e-12, max_num_iter=20000, channel_axis=-1)
    ours, facts = tv_denoise(_to_tensor(noisy), 0.1, "isotropic", "separate", tol=2e-4)
    rmse = np.sqrt(((ours[0].permute(1, 2, 0).numpy() - expected) ** 2).mean())
    assert facts["converged"]
    assert rmse < 1e-3


def _problem_and_optimum(image, weight, norm, channels, seed):
    """A noisy crop as uint8 (H, W, C), as float64 (C, H, W), and the long-run primal-dual solution for it."""
    noisy = noisy_copy(image, 25, seed=seed)
    f = noisy.astype(np.float64).transpose(2, 0, 1) / 255
    return noisy, f, _chambolle_pock(f, weight, norm, channels)


@pytest.mark.parametrize("norm,channels", MODES)
def test_every_mode_matches_an_independent_primal_dual_solver(retina, norm, channels):
    noisy, _, expected = _problem_and_optimum(retina[:20, :24], 0.08, norm, channels, seed=2)
    ours, facts = tv_denoise(_to_tensor(noisy), 0.08, norm, channels, tol=1e-4, max_iter=20000)
    rmse = np.sqrt(((ours[0].double().numpy() - expected) ** 2).mean())
    assert facts["converged"]
    assert rmse < 1e-4


@pytest.mark.parametrize("norm,channels", MODES)
def test_the_duality_gap_bounds_the_distance_to_the_optimum(retina, norm, channels):
    noisy, f, optimum = _problem_and_optimum(retina[:32, :32], 0.1, norm, channels, seed=3)
    rough, facts = tv_denoise(_to_tensor(noisy), 0.1, norm, channels, tol=0, max_iter=30, check_every=30)
    u = rough[0].double().numpy()
    excess = _np_objective(u, f, 0.1, norm, channels) - _np_objective(optimum, f, 0.1, norm, channels)
    gap_total = facts["gap"][0] * f.size
    assert excess >= 0
    assert ((u - optimum) ** 2).sum() <= gap_total * (1 + 1e-3) + 1e-7  # the gap bounds the squared error itself
    assert np.sqrt(((u - optimum) ** 2).mean()) <= facts["rmse_bound"][0]
    assert facts["iterations"] == 30 and not facts["converged"]


@pytest.mark.parametrize("height,width,channels_kept,norm,channels", [
    (41, 57, 1, "isotropic", "separate"), (64, 48, 3, "isotropic", "coupled"), (48, 64, 3, "anisotropic", "separate"),
    (33, 70, 3, "isotropic", "separate"), (50, 44, 3, "anisotropic", "coupled")])
def test_the_certified_bound_holds_at_the_default_tolerance(retina, height, width, channels_kept, norm, channels):
    """Stopped by the default 8-bit tolerance, the result (the midpoint or u) is within its certified bound of an
    independently converged solution, and the bound is within the tolerance."""
    noisy, f, optimum = _problem_and_optimum(retina[:height, :width, :channels_kept], 0.1, norm, channels, seed=7)
    ours, facts = tv_denoise(_to_tensor(noisy), 0.1, norm, channels, output_step=1 / 255)
    rmse = np.sqrt(((ours[0].double().numpy() - optimum) ** 2).mean())
    assert facts["converged"] and facts["iterations"] > 0
    assert rmse <= facts["rmse_bound"][0] <= facts["tol"]


def test_the_averaged_certificate_is_tighter_than_the_plain_duality_gap(retina):
    """The gap of the iterates' weighted average certifies the same u more tightly than P(u) - D(p)."""
    from denoise_cli.methods.operators import duality_gap_terms, group_dims
    from denoise_cli.methods.rof import solve_rof
    f = _to_tensor(noisy_copy(retina[:96, :96], 25, seed=6))
    lam = torch.tensor([0.08])
    dims = group_dims("isotropic", "separate")
    u, p, facts = solve_rof(f, lam, dims, max_iter=60, tol=0, check_every=60, progress=None)
    plain = float(sum(duality_gap_terms(divergence_of_dual(p).mul_(0.08).add_(f), p, lam, dims)))
    assert facts["gap"][0] * f.numel() < 0.5 * plain


def test_tolerance_zero_runs_every_iteration_and_reports_progress(retina):
    """--tol 0 asks for no bound at all: the solver runs max_iter iterations, its progress counts them."""
    shown = []
    u, facts = tv_denoise(_to_tensor(noisy_copy(retina[:48, :48], 25, seed=2)), weight=0.1, tol=0, max_iter=30,
                          check_every=10, progress=lambda done, total, info: shown.append(done))
    assert facts["iterations"] == 30 and not facts["converged"]
    assert shown == sorted(shown) and shown[:2] == [33, 66]


@pytest.mark.parametrize("norm,channels", MODES)
def test_denoising_lowers_total_variation(retina, norm, channels):
    x = _to_tensor(noisy_copy(retina, 25))
    u, _ = tv_denoise(x, 0.1, norm, channels)
    assert float(total_variation(u, norm, channels)) < 0.5 * float(total_variation(x, norm, channels))
    assert u.shape == x.shape and u.dtype == x.dtype


def test_zero_weight_returns_the_input(retina):
    x = _to_tensor(noisy_copy(retina, 25))
    u, facts = tv_denoise(x, 0.0)
    assert torch.equal(u, x)
    assert facts["iterations"] == 0


def test_a_batch_is_solved_image_by_image(retina, grass):
    a = _to_tensor(noisy_copy(retina[:40, :40], 25, seed=4))
    b = _to_tensor(noisy_copy(retina[40:80, 40:80], 10, seed=5))
    both, facts = tv_denoise(torch.cat([a, b]), torch.tensor([0.1, 0.03]), tol=1e-4)
    alone_a, _ = tv_denoise(a, 0.1, tol=1e-4)
    alone_b, _ = tv_denoise(b, 0.03, tol=1e-4)
    assert facts["weight"] == pytest.approx([0.1, 0.03])
    assert float((both[0] - alone_a[0]).abs().max()) < 1e-3
    assert float((both[1] - alone_b[0]).abs().max()) < 1e-3


def test_auto_weight_is_the_same_for_gray_in_both_channel_modes(grass):
    gray = _to_tensor(noisy_copy(grass, 20))
    assert auto_weight(gray, channels="coupled")[0].tolist() == auto_weight(gray, channels="separate")[0].tolist()


@pytest.mark.parametrize("sigma", [15, 25])
def test_auto_weight_lands_near_the_psnr_best_weight(sigma):
    # (at sigma 40 this crop has 10% clipped pixels, which SURE's Gaussian model does not cover: 0.46 dB short;
    # its effective sigma is 0.93 of the underlying one, above the floor of the test below)
    clean = _to_tensor(np.asarray(Image.open(SAMPLES / "retina.png"))[60:252, 80:272])
    noisy = _to_tensor(noisy_copy(np.asarray(Image.open(SAMPLES / "retina.png"))[60:252, 80:272], sigma, seed=4))
    auto, facts = tv_denoise(noisy, "auto", tol=1e-3)
    weight = facts["weight"][0]

    def score(lam: float) -> float:
        return float(psnr(as_stored(tv_denoise(noisy, lam, tol=1e-3)[0], np.uint8), clean)[0])

    _, best = golden_max(score, 0.3 * weight, 3 * weight, rel_tol=0.01)
    assert float(psnr(as_stored(auto, np.uint8), clean)[0]) > best - 0.1


def test_auto_weight_is_not_fooled_by_a_mostly_clipped_image():
    # near-white paper with a grey ramp: at sigma 40, clipping at 255 hides a fifth of the noise from the estimate;
    # taken at face value, SURE picks half the best lambda (2.1 dB short); the floor on its sigma keeps it near
    texture = np.asarray(Image.open(SAMPLES / "retina.png").convert("L"))[100:356, 100:356] / 255 * 10
    clean = (245 + texture).astype(np.uint8)
    clean[:, :96] = np.linspace(60, 200, 256)[:, None]
    noisy = _to_tensor(noisy_copy(clean, 40, seed=3))
    noise = estimate_noise(noisy)
    auto, facts = tv_denoise(noisy, "auto", tol=1e-3)
    assert float(noise.effective[0]) < SURE_MIN_SIGMA_FRACTION * float(noise.underlying[0])
    assert facts["sigma"][0] == pytest.approx(SURE_MIN_SIGMA_FRACTION * float(noise.underlying[0]))

    def score(lam: float) -> float:
        return float(psnr(as_stored(tv_denoise(noisy, lam, tol=1e-3)[0], np.uint8), _to_tensor(clean))[0])

    _, best = golden_max(score, 0.5 * facts["weight"][0], 3 * facts["weight"][0], rel_tol=0.01)
    assert score(facts["weight"][0]) > best - 0.25


@pytest.mark.parametrize("name, sigma", [("page", 2), ("page", 5), ("coins", 5)])
def test_auto_weight_improves_a_gray_photo_with_light_noise(name, sigma):
    # texture once read as noise of sigma ~10 on these gray photos, and the weight it set left them 0.9-7.5 dB worse
    # than their noisy inputs
    clean = getattr(skimage.data, name)()
    height, width = clean.shape
    clean = clean[(height - 160) // 2:(height - 160) // 2 + 160, (width - 256) // 2:(width - 256) // 2 + 256]
    noisy = _to_tensor(noisy_copy(clean, sigma, seed=sigma))
    auto, _ = tv_denoise(noisy, "auto")
    reference = _to_tensor(clean)
    assert float(psnr(as_stored(auto, np.uint8), reference)[0]) > float(psnr(noisy, reference)[0]) + 0.3


def test_auto_weight_follows_the_noise_level(retina):
    weights = []
    for sigma in (10, 30):
        _, facts = tv_denoise(_to_tensor(noisy_copy(retina, sigma)), "auto", max_iter=5)
        assert facts["sigma"][0] == pytest.approx(sigma / 255, rel=0.1)
        weights.append(facts["weight"][0])
    assert weights[1] > 2 * weights[0]


@pytest.mark.parametrize("dims", [(1, 2), (2,), (1,), ()])
def test_the_duality_gap_in_row_blocks_equals_the_whole_image_one(dims):
    from denoise_cli.methods.operators import duality_gap_terms, sum_of_group_norms
    generator = torch.Generator().manual_seed(0)
    u = torch.rand(2, 3, 37, 29, generator=generator)
    p = torch.rand(2, 3, 2, 37, 29, generator=generator) - 0.5
    lam = torch.tensor([0.1, 0.3])
    g = gradient(u).double()
    whole = lam.double() * (sum_of_group_norms(g, dims) - (g * p.double()).flatten(1).sum(dim=1))
    # float32 terms summed in float64
    assert torch.allclose(sum(duality_gap_terms(u, p, lam, dims, rows=8)), whole, rtol=1e-6, atol=1e-9)
    candidate = u + 0.01 * torch.rand(u.shape, generator=generator)
    g = gradient(candidate).double()
    whole = 0.5 * (candidate - u).double().pow(2).flatten(1).sum(dim=1) + lam.double() * (
        sum_of_group_norms(g, dims) - (g * p.double()).flatten(1).sum(dim=1))
    in_blocks = sum(duality_gap_terms(u, p, lam, dims, candidate=candidate, rows=8))
    assert torch.allclose(in_blocks, whole, rtol=1e-6, atol=1e-9)
    # in bands of rows (the solver's threads), the bands' terms add up to the whole
    bands = [sum(duality_gap_terms(u, p, lam, dims, candidate=candidate, rows=8, rows_between=span))
             for span in ((0, 13), (13, 14), (14, 37))]
    assert torch.allclose(sum(bands), whole, rtol=1e-6, atol=1e-9)


def test_the_solver_runs_its_bands_on_single_threaded_torch_and_gives_the_threads_back():
    """The solver sweeps one band of rows per torch thread on threads of its own, with torch single-threaded inside;
    afterwards torch has its threads again, and the result is as close to the one-band result as both bounds allow."""
    from denoise_cli.methods.operators import group_dims
    from denoise_cli.methods.rof import solve_rof
    f = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(1))
    previous = torch.get_num_threads()
    try:
        results = {}
        for threads in (1, 3):
            torch.set_num_threads(threads)
            results[threads], _, facts = solve_rof(f, torch.tensor([0.1]), group_dims("isotropic", "coupled"), 500,
                                                   1e-4, 10)
            assert torch.get_num_threads() == threads
            assert facts["converged"]
        assert float((results[1] - results[3]).pow(2).mean().sqrt()) <= 2e-4  # each within 1e-4 of the exact one
        # solves overlapping on threads of their own (as in `serve`): the last to end gives the threads back
        torch.set_num_threads(2)
        with ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda seed: solve_rof(torch.rand(1, 3, 64 + seed, 48), torch.tensor([0.1]),
                                                 group_dims("isotropic", "coupled"), 500, 1e-4, 10), range(6)))
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("dims", [(1, 2), (2,), (1,), ()])
def test_the_projection_puts_every_group_in_the_unit_ball(dims):
    from denoise_cli.methods.operators import project_onto_dual_ball
    g = 2 * torch.randn(2, 3, 2, 9, 7, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    norms = torch.linalg.vector_norm(g, dim=dims, keepdim=True) if dims else g.abs()
    assert torch.allclose(project_onto_dual_ball(g.clone(), dims), g / norms.clamp_min(1.0), atol=1e-12)


def test_one_solver_sweep_in_row_blocks_is_one_whole_image_fista_step():
    """The fused sweep (momentum of the last step, dual step, projection, restart test, average) done a few rows at
    a time, in one to three bands of rows on threads of their own, equals the whole-image formulas, for every
    row-block boundary case (first, middle, last, one-row blocks), every norm group, one weight or one per image."""
    from denoise_cli.methods.rof import RowBands, _sweep
    torch.manual_seed(0)
    f = torch.rand(2, 3, 150, 9)

    def feasible_dual(dims):
        g = zero_dual(f)
        g[:, :, 0, :-1] = torch.randn(2, 3, 149, 9)
        g[:, :, 1, :, :-1] = torch.randn(2, 3, 150, 8)
        return g / group_norms(g, dims).clamp_min(1.0)

    for dims in ((1, 2), (2,), (1,), ()):
        p, back = feasible_dual(dims), feasible_dual(dims) - feasible_dual(dims)
        for lam in (torch.tensor([0.2, 0.2]), torch.tensor([0.1, 0.3])):
            lam4 = lam.view(2, 1, 1, 1)
            step = 0.625 if lam[0] == lam[1] else (1 / (8 * lam)).view(2, 1, 1, 1, 1)
            q = p - 0.4 * back
            image = f + lam4 * divergence(q)
            new = q + (1 / (8 * lam)).view(2, 1, 1, 1, 1) * gradient(image)
            new = new / group_norms(new, dims).clamp_min(1.0)
            uphill = float(((q - new) * (new - p)).sum()) > 0
            average = torch.rand(2, 3, 150, 9)
            for rows, count in ((1, 1), (2, 2), (5, 1), (10, 3), (128, 2), (7, 3), (256, 3)):
                buffers = [zero_dual(f).copy_(x) for x in (p, back)]
                mixed = average.clone()
                windows = [zero_dual(f[:, :, :rows + 2]) for _ in range(count)]
                with RowBands(f.shape[-2], count) as bands:
                    assert bands.count == count
                    went_uphill = _sweep(f, lam4, step, dims, *buffers, windows, 0.4, mixed, 0.25, rows, bands)
                assert torch.allclose(buffers[1], new, atol=1e-6)  # the new iterate in out
                assert torch.allclose(buffers[0], p - new, atol=1e-6)  # p - p_new in p
                assert torch.allclose(mixed, 0.75 * average + 0.25 * image, atol=1e-6)
                assert went_uphill == uphill


def test_the_longer_default_step_still_converges_fast_on_a_checkerboard():
    """The default dual step, 8/7 of FISTA's textbook 1/(8 lambda), on the image whose highest frequency makes the
    textbook step tight: a checkerboard at a large weight certifies in no more iterations than the textbook
    step needs (240 iterations against 260; a step of 1/(6 lambda), at the edge of stability, takes 568)."""
    from denoise_cli.methods.operators import group_dims
    from denoise_cli.methods.rof import STEP_DIVISOR, TEXTBOOK_STEP_DIVISOR, solve_rof
    board = torch.from_numpy(np.indices((128, 128)).sum(0) % 2).float()[None, None]
    iterations = {}
    for divisor in (TEXTBOOK_STEP_DIVISOR, STEP_DIVISOR):
        _, _, facts = solve_rof(board, torch.tensor([0.5]), group_dims("isotropic", "separate"), 3000, 5e-4, 10,
                                step_divisor=divisor)
        assert facts["converged"]
        iterations[divisor] = facts["iterations"]
    assert STEP_DIVISOR < TEXTBOOK_STEP_DIVISOR and iterations[STEP_DIVISOR] <= iterations[TEXTBOOK_STEP_DIVISOR]


def test_the_check_schedule_follows_the_bound_and_stays_within_its_limits():
    from denoise_cli.methods.rof import _iterations_to_next_check
    assert _iterations_to_next_check(None, (10, 1e-2), 1e-3, 10) == 10
    # bound ~ 1/iteration: from 5e-3 at 20 it reaches 1e-3 at 100, beyond the longest step of 20
    assert _iterations_to_next_check((10, 1e-2), (20, 5e-3), 1e-3, 10) == 20
    assert _iterations_to_next_check((10, 2.5e-3), (20, 1.25e-3), 1e-3, 10) == 5  # 1/iteration: 1e-3 at 25
    # a bound that barely moves (its power law would overflow a float) or grows: the longest or the usual step
    assert _iterations_to_next_check((10, 1e-2), (20, 1e-2 * (1 - 1e-15)), 1e-3, 10) == 20
    assert _iterations_to_next_check((10, 1e-2), (20, 2e-2), 1e-3, 10) == 10
