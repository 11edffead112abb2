"""The noise estimate (`--weight auto`'s first step) against scikit-image's, and what it does to `denoise tv`.

Protocol: Kodak24 256x256 centre crops (13-24 by default: 1-12 chose the flat-patch reading's settings), in colour
and in gray (the channel mean), seeded Gaussian noise of each sigma (0-255 scale), stored as 8-bit. The truth is
the added sigma with the 8-bit rounding's own noise (sqrt(sigma^2 + 1/12)); the film grain of the photos is not in
it, so at sigma 1-2 every estimate reads somewhat high. Each estimate's error is |log(estimate / truth)|, averaged
over the images (0.1 is 10 %). The peer is scikit-image's estimate_sigma (wavelet median absolute deviation,
Donoho & Johnstone), averaged over channels for colour. With ``--tv``: the PSNR of `denoise tv --weight auto`
(in-process, defaults) on the gray crops against the noisy input and the best lambda of a 24-point grid, and how
many outputs are worse than their inputs.

    python benchmarks/noise_estimate.py [--kodak FOLDER] [--images 13-24] [--sigmas 1,2,5,10,25,50] [--tv]
"""
from __future__ import annotations

import argparse
import math
import statistics

import numpy as np
import torch
from skimage.restoration import estimate_sigma

from common import DEFAULT_KODAK, kodak_paths, load_crop, noisy, parse_numbers, print_table, stored_psnr
from denoise_cli.methods.noise_level import estimate_noise
from denoise_cli.methods.tv import tv_denoise

#: The best lambda of --tv is the best of this grid ([0, 1] units).
WEIGHT_GRID = np.geomspace(1e-3, 0.3, 24)


def peer_sigma(x: torch.Tensor) -> float:
    """scikit-image's estimate of one image (1, C, H, W), averaged over channels."""
    image = x[0].permute(1, 2, 0).double().numpy()
    return float(estimate_sigma(image, channel_axis=-1, average_sigmas=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    parser.add_argument("--images", default="13-24")
    parser.add_argument("--sigmas", default="1,2,5,10,25,50")
    parser.add_argument("--tv", action="store_true", help="also denoise the gray crops with tv --weight auto")
    args = parser.parse_args()
    numbers = parse_numbers(args.images)
    sigmas = [float(value) for value in args.sigmas.split(",")]
    torch.set_num_threads(2)
    errors: dict = {}  # (colour mode, sigma, estimator) -> [|log error|]
    denoised: dict = {}  # sigma -> [(input, auto, best)]
    for number, path in zip(numbers, kodak_paths(args.kodak, numbers)):
        colour = load_crop(path)
        for mode, clean in (("colour", colour), ("gray", colour.mean(dim=1, keepdim=True))):
            for sigma in sigmas:
                x = noisy(clean, f"gaussian:{sigma}", seed=1000 * number + round(10 * sigma))
                truth = math.hypot(sigma, math.sqrt(1 / 12)) / 255
                ours = float(estimate_noise(x).underlying[0])
                for name, value in (("ours", ours), ("scikit-image", peer_sigma(x))):
                    errors.setdefault((mode, sigma, name), []).append(abs(math.log(max(value, 1e-6) / truth)))
                if args.tv and mode == "gray":
                    auto = stored_psnr(tv_denoise(x, "auto")[0], clean)
                    best = max(stored_psnr(tv_denoise(x, float(weight))[0], clean) for weight in WEIGHT_GRID)
                    denoised.setdefault(sigma, []).append((stored_psnr(x, clean), auto, best))
        print(f"kodim{number:02d} done", flush=True)
    print(f"Kodak {args.images}, 256x256 centre crops, 8-bit: mean |log(estimate / truth)| over "
          f"{len(numbers)} images")
    rows = []
    for mode in ("colour", "gray"):
        for sigma in sigmas:
            ours, peer = (statistics.mean(errors[(mode, sigma, name)]) for name in ("ours", "scikit-image"))
            worst = max(errors[(mode, sigma, "ours")])
            rows.append([mode, sigma, ours, worst, peer])
    print_table(["image", "sigma", "ours", "ours worst", "scikit-image"], rows)
    if args.tv:
        print("\ndenoise tv --weight auto on the gray crops, mean PSNR (dB)")
        rows = [[sigma, statistics.mean(i for i, _, _ in cases), statistics.mean(a for _, a, _ in cases),
                 statistics.mean(b for _, _, b in cases), sum(a < i for i, a, _ in cases)]
                for sigma, cases in denoised.items()]
        print_table(["sigma", "input", "auto", "best lambda", "auto worse than input"], rows)


if __name__ == "__main__":
    main()
