"""Zero-Shot Noise2Noise (Mansour & Heckel, CVPR 2023): a tiny network fitted on the one noisy image.

The network predicts the noise: conv 3x3 C->W, LeakyReLU(0.2), conv 3x3 W->W, LeakyReLU(0.2), conv 1x1 W->C
(W = 48 in the paper); the denoised image is x - f(x). It is fitted with the pair downsampler D (2x2 blocks: the mean
of the diagonal pixels is sub-image D1, of the anti-diagonal pixels D2) and the loss

    residual     1/2 (mse(D1 - f(D1), D2) + mse(D2 - f(D2), D1))
    consistency  1/2 (mse(D1 - f(D1), D1(x - f(x))) + mse(D2 - f(D2), D2(x - f(x))))

with Adam (lr 1e-3) for 2000 steps and StepLR(1500, 0.5), as in the paper's notebook (``exact=True``).

The default mode computes the same two terms more cheaply: D1 and D2 go through the network as one batch, and the
consistency term is evaluated on a random crop of x (aligned to the 2x2 grid) the size of a half-image, instead of
on all of x, which took two thirds of the work; and it takes FAST_ITERATIONS steps (the learning rate halved after
three quarters of them, as in the paper's schedule), which the benchmark shows reach the paper's quality; its final
network's estimate is the mean of the passes over the four flips of the image (FLIPS), and it is then refined by a
non-local average of the noisy image whose matches are found on that estimate (:mod:`.guided_average`, ``refine``;
0.2-2.5 dB on the calibration crops under Gaussian noise, 0.16-2.67 dB under Poisson noise, a few seconds per
256x256 image; README.md gives the held-out figures); under light noise, what stands out of the residual's noise
(texture the network took out with it) is put back (:mod:`.dct_shrinkage`); last, the bias that the clipping of the
noisy data at 0 and 1 leaves near black and white is undone (:mod:`.clipping`, ``unclip``; with a Poisson-Gaussian
noise model where the noise is mostly photon noise, MAX_SIGNAL_SHARE). Large images are fitted on random crops, so
memory stays bounded; the final pass runs tile by tile with a 2-pixel halo, which the 5x5 receptive field makes
exactly equal to a pass over the whole image (no seams). The default's fit runs in ``channels_last`` layout and,
where the CPU or GPU does bfloat16 in hardware, in bfloat16 (:data:`PRECISIONS`); on the CPU a small image's fit
computes the network in bands of rows on threads of our own (:class:`BandedNetwork`).
"""
from __future__ import annotations

import contextlib
import time
from typing import Callable, ContextManager, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from ..core.device import computes_bf16_natively
from .base import ProgressCallback
from .dct_shrinkage import dct_hard_threshold
from .guided_average import guided_average
from . import clipping
from .noise_level import PATCH, estimate_noise, fit_noise_variance
from .threads import TorchThreadPool

Steps = Union[int, str]  # a count, or "auto"
#: The paper's schedule (its notebook): 2000 Adam steps, the learning rate halved after 1500.
PAPER_ITERATIONS = 2000
#: The default mode's steps for "auto": its cheaper steps match the paper's fit in fewer of them
#: (benchmarks/zsn2n_benchmark.py; README.md gives the figures).
FAST_ITERATIONS = 1200
#: StepLR's period for "auto", as a fraction of the steps (the paper's 1500 of 2000).
STEP_FRACTION = 0.75
#: Largest crop side fitted per step in the default mode (bounded memory and time on large images).
FIT_CROP = 512
#: Tile side for the final pass; the halo is the network's receptive-field radius.
INFERENCE_TILE = 1024
RECEPTIVE_RADIUS = 2
#: The default's fit on the CPU runs in bands of rows (:class:`BandedNetwork`) where the fitted image (its crop of
#: at most FIT_CROP) has at most this many pixels; larger ones on torch's own threads.
BANDED_MAX_PIXELS = 320 * 320
#: The final pass: one plain pass (the paper's, ``exact``), or the default's mean over the four flips of the image
#: (none, left-right, up-down, both). The fitted network is not flip-invariant, so the four estimates' errors partly
#: cancel: +0.05 to +0.20 dB on Kodak 1, 4 and 7 crops at sigma 25 and 50 (five cases, the calibration split), for
#: three more inference passes. The eight rotations and flips gained about as much on average but lost 0.12 dB on
#: Kodak 7 at sigma 25, so the rotations are left out.
NO_FLIP = ((),)
FLIPS = ((), (-1,), (-2,), (-2, -1))
#: Where more than this share of the noise variance grows with the signal (photon noise,
#: :func:`noise_level.fit_noise_variance`), the clipping correction uses the fitted model (variance a v + b) instead
#: of one sigma. Measured shares: Gaussian sigma 25 and 50 on Kodak 1, 3, 8, 12 and the samples 0-0.36; Poisson peak
#: 10 and 50 on Kodak 1, 3, 8 and the samples 0.53-1. The refinement runs on photon noise too, with one sigma for the
#: image. (It was left out before, on a measurement of -0.7 / -0.15 / -0.2 dB on Kodak 1, 3, 8 that the code of
#: 2026-12-03 does not reproduce; the noise estimate it uses has changed since.) On the 256^2 crops of Kodak 1, 3, 8, 12
#: at Poisson peak 50 the default gained +0.17 / +2.29 / +1.20 / +1.16 dB with it, on Kodak 1 and 3 at peak 10
#: +0.52 / +2.83 dB; weights set by the model's variance at each patch's level did 0.12 and 0.02 dB worse there.
MAX_SIGNAL_SHARE = 0.45
#: Under light noise the network also takes out fine texture, and the default fell below its noisy input (Kodak 13,
#: 256^2, sigma 2: 31.45 dB against 42.03): below this sigma ([0, 1] units) the refined estimate gets back what
#: stands out of its residual by more than RESIDUAL_THRESHOLD sigma in 8x8 DCT blocks. Chosen on Kodak 1-11 (256^2,
#: colour, one seeded fit per case; a /tmp script): at 2.5 sigma +1.92 / +0.29 / -0.18 / -0.47 dB on average at
#: sigma 2 / 5 / 10 / 15 (worst case +0.11 / -0.10 / -0.57 / -1.05); 2.7 and 3 sigma gained less where it gained
#: (+1.80 and +1.63 at sigma 2) and lost less where it lost.
RESIDUAL_MAX_SIGMA, RESIDUAL_THRESHOLD = 7 / 255, 2.5
#: The default's fit: "auto" computes the network in bfloat16 (autocast; the loss and the weights stay float32) where
#: the device does bfloat16 in hardware (:func:`computes_bf16_natively`), else in float32. ``exact`` always fits in
#: float32. The final pass and the finish run in float32 either way.
PRECISIONS = ("auto", "float32", "bfloat16")


class ZSN2N(nn.Module):
    """The ZS-N2N noise predictor: (N, C, H, W) -> predicted noise of the same shape."""

    def __init__(self, channels: int = 3, width: int = 48):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.conv3 = nn.Conv2d(width, channels, 1)
        # In place: the same values and gradients as the paper's (with a positive slope the output's sign is the
        # input's), one activation fewer in memory; on a 2-core CPU a bfloat16 fit step 12 % faster on 256^2, 5 %
        # on 512^2.
        self.act = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))


def pair_downsample(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, C, H, W) with even H, W -> D1, D2 each (N, C, H/2, W/2): means of the diagonal and anti-diagonal pixels of
    each 2x2 block."""
    if x.shape[-2] % 2 or x.shape[-1] % 2:
        raise ValueError(f"pair_downsample needs even height and width, got {tuple(x.shape[-2:])}")
    d1 = (x[..., 0::2, 0::2] + x[..., 1::2, 1::2]) / 2
    d2 = (x[..., 0::2, 1::2] + x[..., 1::2, 0::2]) / 2
    return d1, d2


def pad_to_even(x: torch.Tensor) -> torch.Tensor:
    """Reflect-pad (N, C, H, W) by one row/column where H/W is odd (a side of one pixel is replicated)."""
    h, w = x.shape[-2:]
    pad = (0, w % 2, 0, h % 2)
    if not any(pad):
        return x
    return F.pad(x, pad, mode="reflect" if min(h, w) > 1 else "replicate")


def zsn2n_loss(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The paper's loss on (N, C, H, W), H and W even: (total, residual, consistency)."""
    d1, d2 = pair_downsample(x)
    pred1 = d1 - model(d1)
    pred2 = d2 - model(d2)
    residual = 0.5 * (F.mse_loss(pred1, d2) + F.mse_loss(pred2, d1))
    full1, full2 = pair_downsample(x - model(x))
    consistency = 0.5 * (F.mse_loss(pred1, full1) + F.mse_loss(pred2, full2))
    return residual + consistency, residual, consistency


def fast_loss(model: nn.Module, x: torch.Tensor, generator: torch.Generator,
              network: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """The same two terms with half the network work: D1 and D2 as one batch, the consistency term on a random
    grid-aligned crop of half the height and width of ``x``. ``network`` computes ``model`` (default: ``model``
    itself; a :class:`BandedNetwork` in bands of rows)."""
    network = network or model
    n = x.shape[0]
    d1, d2 = pair_downsample(x)
    pairs = torch.cat([d1, d2])
    preds = pairs - network(pairs)
    pred1, pred2 = preds[:n], preds[n:]
    residual = 0.5 * (F.mse_loss(pred1, d2) + F.mse_loss(pred2, d1))
    h, w = d1.shape[-2:]
    ch, cw = max(h // 2, 1), max(w // 2, 1)
    top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
    crop = x[..., 2 * top:2 * (top + ch), 2 * left:2 * (left + cw)]
    full1, full2 = pair_downsample(crop - network(crop))
    window = (Ellipsis, slice(top, top + ch), slice(left, left + cw))
    consistency = 0.5 * (F.mse_loss(pred1[window], full1) + F.mse_loss(pred2[window], full2))
    return residual + consistency


class BandedNetwork:
    """``model`` computed in bands of rows, each band (with a halo of RECEPTIVE_RADIUS rows, so the result is the
    whole pass's) on a thread of ``pool`` with torch single-threaded; :meth:`backward` then puts the bands'
    parameter gradients together.

    Under the command's passive OpenMP waiting (``__main__``) a small fit pays for waking torch's threads at each
    operation: on a 2-core Xeon a bfloat16 step on a 256^2 image took 18.3 ms on two OpenMP threads as on one,
    13.0 ms in two bands on two threads of ours (a 128^2 image: 9.1 against 4.4 ms). From about 384^2 on the bands
    gained nothing (320^2: 24.1 against 21.0 ms; 384^2: 32.6 / 32.0; 512^2: 50.9 / 59.9): see BANDED_MAX_PIXELS.
    """

    def __init__(self, model: nn.Module, pool: TorchThreadPool, context: Callable[[], ContextManager]):
        self.model, self.pool, self.context = model, pool, context
        self._passes: list[tuple[list[torch.Tensor], torch.Tensor, list[tuple[int, int]]]] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """model(x) for (N, C, H, W), as a tensor that collects its gradient for :meth:`backward`."""
        height = x.shape[-2]
        edges = [round(height * i / self.pool.count) for i in range(self.pool.count + 1)]
        bands = [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]

        def forward(band: tuple[int, int]) -> torch.Tensor:
            start, stop = band
            low, high = max(start - RECEPTIVE_RADIUS, 0), min(stop + RECEPTIVE_RADIUS, height)
            with self.context():
                return self.model(x[..., low:high, :])[..., start - low:stop - low, :]

        outputs = self.pool.map(forward, bands)
        joined = torch.cat([output.detach() for output in outputs], dim=-2).requires_grad_()
        self._passes.append((outputs, joined, bands))
        return joined

    def backward(self, loss: torch.Tensor) -> None:
        """Set each parameter's ``grad`` to d loss / d parameter through the passes since the last call."""
        loss.backward()
        parameters = list(self.model.parameters())
        pieces = [(output, joined.grad[..., start:stop, :]) for outputs, joined, bands in self._passes
                  for output, (start, stop) in zip(outputs, bands)]
        gradients = self.pool.map(lambda piece: torch.autograd.grad(piece[0], parameters, piece[1]), pieces)
        for parameter, *parts in zip(parameters, *gradients):
            parameter.grad = torch.stack(parts).sum(dim=0)
        self._passes.clear()


def _random_crop(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A random even-aligned crop of at most size x size of (N, C, H, W) (H, W even)."""
    h, w = x.shape[-2:]
    ch, cw = min(size, h), min(size, w)
    top = 2 * int(torch.randint(0, (h - ch) // 2 + 1, (1,), generator=generator))
    left = 2 * int(torch.randint(0, (w - cw) // 2 + 1, (1,), generator=generator))
    return x[..., top:top + ch, left:left + cw]


@torch.no_grad()
def apply_denoiser(model: nn.Module, x: torch.Tensor, tile: int = INFERENCE_TILE,
                   flips: tuple = NO_FLIP) -> torch.Tensor:
    """x - model(x) averaged over ``flips`` (each the dimensions by which the input is flipped before the pass and
    the output flipped back; ``((),)``: one plain pass), tile by tile with a halo, equal to the whole-image pass.
    Not clipped: like every method, values outside [0, 1] are kept (a float file keeps them; an integer file clips
    when it is written)."""
    out = torch.empty_like(x)
    h, w = x.shape[-2:]
    r = RECEPTIVE_RADIUS
    for top in range(0, h, tile):
        for left in range(0, w, tile):
            t0, l0 = max(top - r, 0), max(left - r, 0)
            t1, l1 = min(top + tile + r, h), min(left + tile + r, w)
            result = _flip_average(model, x[..., t0:t1, l0:l1], flips)
            out[..., top:top + tile, left:left + tile] = result[..., top - t0:top - t0 + tile,
                                                                left - l0:left - l0 + tile]
    return out


def _flip_average(model: nn.Module, block: torch.Tensor, flips: tuple) -> torch.Tensor:
    """The mean over ``flips`` of block - model(block) computed on the flipped block and flipped back (a flip of a
    block with its halo is the flip of the whole image's pass there: the zero padding stays at the image's edges)."""
    total = None
    for dims in flips:
        flipped = block.flip(dims) if dims else block
        result = flipped - model(flipped)
        result = result.flip(dims) if dims else result
        total = result if total is None else total.add_(result)
    return total / len(flips)


def schedule(iterations: Steps, step_size: Steps, exact: bool) -> tuple[int, int]:
    """The (steps, StepLR period) to run: "auto" steps are the paper's 2000 with ``exact``, else FAST_ITERATIONS;
    an "auto" period is STEP_FRACTION of the steps."""
    steps = (PAPER_ITERATIONS if exact else FAST_ITERATIONS) if iterations == "auto" else int(iterations)
    period = max(1, round(STEP_FRACTION * steps)) if step_size == "auto" else int(step_size)
    if steps < 1 or period < 1:
        raise ValueError("iterations and step_size must be at least 1")
    return steps, period


def zsn2n_denoise(x: torch.Tensor, iterations: Steps = "auto", learning_rate: float = 1e-3,
                  step_size: Steps = "auto", gamma: float = 0.5, channels: int = 48, exact: bool = False,
                  refine: bool = True, unclip: bool = True, precision: str = "auto", seed: Optional[int] = None,
                  progress: Optional[ProgressCallback] = None) -> tuple[torch.Tensor, dict]:
    """Denoise each image of (N, C, H, W) in [0, 1] with its own freshly fitted ZS-N2N network.

    iterations, learning_rate, step_size, gamma: Adam and StepLR settings; "auto" steps and period give the paper's
    2000 and 1500 with ``exact`` (see ``schedule``). channels: the network width. exact: the paper's procedure step
    for step (whole image, three passes a step, nothing after the network); otherwise the faster default (see the
    module docstring), whose estimate is then finished (:func:`finish_estimate`, images of at least 7x7 pixels):
    refine, its guided non-local average; unclip, its correction of the bias clipping leaves near 0 and 1.
    precision: the arithmetic of the default's fit (:data:`PRECISIONS`; ``exact`` fits in float32). seed: makes the
    fit deterministic on the CPU. Returns the denoised batch and facts: final_loss per image, iterations, step_size,
    mode ("exact", or "fast" with "+refine" and "+unclip" as asked), precision (of the fit), flips (passes averaged
    in the final pass), seconds, and when a finish ran: per image signal_share (the noise's signal-dependent share),
    refined, residual_restored and unclipped (whether each step ran) and sigma (the noise level, in [0, 1] units);
    finish_seconds in all.
    """
    if x.dim() != 4:
        raise ValueError(f"expected (N, C, H, W), got shape {tuple(x.shape)}")
    iterations, step_size = schedule(iterations, step_size, exact)
    fit_dtype = resolve_precision(precision, exact, x.device)
    started = time.perf_counter()
    flips = NO_FLIP if exact else FLIPS
    finishing = not exact and min(x.shape[-2:]) >= PATCH
    refine, unclip = refine and finishing, unclip and finishing
    outputs, losses, finishes = [], [], []
    for index in range(x.shape[0]):
        image = x[index:index + 1].float()
        model, loss = _fit(image, iterations, learning_rate, step_size, gamma, channels, exact, fit_dtype, seed,
                           progress)
        estimate = apply_denoiser(model, image, flips=flips)
        if refine or unclip:
            estimate, finish = finish_estimate(image, estimate, progress, refine, unclip)
            finishes.append(finish)
        outputs.append(estimate)
        losses.append(loss)
    facts = {"final_loss": losses, "iterations": iterations, "step_size": step_size,
             "mode": "exact" if exact else "fast" + "+refine" * refine + "+unclip" * unclip,
             "precision": str(fit_dtype).removeprefix("torch."), "flips": len(flips),
             "seconds": round(time.perf_counter() - started, 3)}
    if finishes:
        facts.update({key: [one[key] for one in finishes]
                      for key in ("signal_share", "refined", "residual_restored", "unclipped", "sigma")})
        facts["finish_seconds"] = round(sum(one["seconds"] for one in finishes), 3)
    return torch.cat(outputs).to(x.dtype), facts


def finish_estimate(image: torch.Tensor, estimate: torch.Tensor, progress: Optional[ProgressCallback] = None,
                    refine: bool = True, unclip: bool = True, restore: bool = True) -> tuple[torch.Tensor, dict]:
    """The default's finish of one image's (1, C, H, W) network estimate: the guided refinement (``refine``), then the
    clipping correction (``unclip``; left out where the noisy image has values outside [0, 1], which were not
    clipped). With ``refine`` and ``restore``, under light noise (sigma under RESIDUAL_MAX_SIGMA) the signal left in
    the residual (noisy - refined) is put back (:func:`.dct_shrinkage.dct_hard_threshold` at RESIDUAL_THRESHOLD
    sigma). Returns the result and its facts (signal_share, refined, residual_restored, unclipped, sigma, seconds)."""
    started = time.perf_counter()
    variance = fit_noise_variance(image, estimate)[0]
    noise = estimate_noise(image)
    photon = variance.signal_share > MAX_SIGNAL_SHARE
    sigma = float(noise.effective[0])
    restore = refine and restore and sigma < RESIDUAL_MAX_SIGMA
    if refine:
        estimate = guided_average(image, estimate, noise.effective, progress)
    if restore:  # light noise: the texture the network took out stands out of the residual's noise
        estimate = estimate + dct_hard_threshold(image - estimate, sigma, RESIDUAL_THRESHOLD)
    unclipped = unclip and bool(image.min() >= 0) and bool(image.max() <= 1)
    if unclipped:  # photon noise by its fitted model, Gaussian noise by its sigma before clipping
        slope, offset = (variance.slope, variance.offset) if photon else (0.0, float(noise.underlying[0]) ** 2)
        estimate = clipping.unclip(estimate, slope, offset)
    facts = {"signal_share": round(variance.signal_share, 4), "refined": refine, "residual_restored": restore,
             "unclipped": unclipped, "sigma": sigma, "seconds": time.perf_counter() - started}
    return estimate, facts


def resolve_precision(precision: str, exact: bool, device: torch.device) -> torch.dtype:
    """The dtype the network computes in while it is fitted (see :data:`PRECISIONS`)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if exact or precision == "float32" or (precision == "auto" and not computes_bf16_natively(device)):
        return torch.float32
    return torch.bfloat16


def _fit(image: torch.Tensor, iterations: int, learning_rate: float, step_size: int, gamma: float, width: int,
         exact: bool, dtype: torch.dtype, seed: Optional[int],
         progress: Optional[ProgressCallback]) -> tuple[nn.Module, float]:
    """Fit a fresh network on ``image`` (1, C, H, W); the default's fit runs in ``channels_last`` layout on the CPU
    and CUDA and under autocast to ``dtype`` when that is not float32, and on the CPU, for an image of at most
    BANDED_MAX_PIXELS, in bands of rows (:class:`BandedNetwork`). Returns the network (eval mode) and its last loss."""
    generator = torch.Generator().manual_seed(seed if seed is not None else int(torch.seed() % 2**63))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**62, (1,), generator=generator)))
        model = ZSN2N(image.shape[1], width).to(image.device)
    padded = pad_to_even(image)
    if not exact and image.device.type in ("cpu", "cuda"):
        model = model.to(memory_format=torch.channels_last)
        padded = padded.contiguous(memory_format=torch.channels_last)

    def autocast() -> ContextManager:
        return torch.autocast(image.device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()

    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    loss = torch.zeros(())
    report_every = max(1, iterations // 100)
    fitted_pixels = min(padded.shape[-2], FIT_CROP) * min(padded.shape[-1], FIT_CROP)
    banded = not exact and fitted_pixels <= BANDED_MAX_PIXELS
    with TorchThreadPool(TorchThreadPool.threads(image.device) if banded else 1, "zsn2n-band") as pool:
        network = BandedNetwork(model, pool, autocast) if pool.count > 1 else None
        for step in range(1, iterations + 1):
            optimizer.zero_grad(set_to_none=True)
            if exact:
                loss = zsn2n_loss(model, padded)[0]
            else:
                with autocast():
                    loss = fast_loss(model, _random_crop(padded, FIT_CROP, generator), generator, network)
            if network is None:
                loss.backward()
            else:
                network.backward(loss)
            optimizer.step()
            scheduler.step()
            if progress is not None and (step % report_every == 0 or step == iterations):
                progress(step, iterations, {"phase": "fitting", "loss": float(loss.detach())})
    model.eval()
    return model, float(loss.detach())
