"""Calibrate ``--weight auto`` for `denoise deblur`: lambda = a sqrt(C) sigma_hat^2 + AUTO_WEIGHT_FLOOR, the noise
coefficient a chosen on the calibration split.

Protocol: Kodak24 images 1-12 (calibration set; 13-24 are for the check in deblur_quality.py), 256x256 centre crops
blurred with the light from outside the frame (no wrap-around), by a Gaussian (sigma 1.6) and a 9-pixel motion at
30 degrees, plus Gaussian noise of sigma 1, 5 and 15 on the 0-255 scale, stored as 8-bit; sigma_hat from
denoise_cli.methods.deconvolution.deblur_noise_level. Every case is solved at MULTIPLES x the weight the package
gives it now; a candidate rule's PSNR on a case is read off that curve (linear in log lambda). For each candidate a
the table gives how far the rule falls short of each case's best weight: the mean, the worst case, and how many
cases are more than 0.3 dB short. The floor stays as it is: it sets the weight at low noise, where the Levin set
of real captures fixes it (lower floors lose there, see the constant's comment). The chosen a is the one with the
lowest mean shortfall among those whose worst case is no worse than the package's rule. The last line gives the
same figures for the package's whole ``--weight auto`` (tv_deconvolve at "auto": the rule lowered by its SURE
search, against the same curves).

    python benchmarks/calibrate_deblur_weight.py [--kodak FOLDER] [--images 1-12]
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

from common import DEFAULT_KODAK, blur_valid, kodak_paths, load_crop, noisy, parse_numbers, print_table
from denoise_cli.core.metrics import psnr
from denoise_cli.methods.deconvolution import AUTO_WEIGHT_NOISE, auto_weight, deblur_noise_level, tv_deconvolve
from denoise_cli.methods.psf import parse_psf

BLURS = ("gaussian:1.6", "motion:9,30")
SIGMAS = (1, 5, 15)
MULTIPLES = (0.1, 0.15, 0.25, 0.35, 0.5, 0.6, 0.71, 0.85, 1.0, 1.2, 1.41, 2.0)  # low noise wants <0.25x
CANDIDATES = np.round(np.arange(3.0, 6.01, 0.25), 2)  # noise coefficients a


def shortfall(weights: list, scores: list, weight: float) -> float:
    """dB between the best score of a case and its score at ``weight`` (interpolated in log lambda, clamped to the
    measured range)."""
    logs = np.log(weights)
    at = float(np.clip(math.log(weight), logs[0], logs[-1]))
    return max(scores) - float(np.interp(at, logs, scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    parser.add_argument("--images", default="1-12")
    args = parser.parse_args()
    numbers = parse_numbers(args.images)
    if any(n > 12 for n in numbers):
        raise SystemExit("calibrate on Kodak 1-12 only; 13-24 are the held-out check")
    started = time.perf_counter()
    cases = []  # (sigma_hat, channels, weights, scores)
    searched = []  # the package's auto weight: its shortfall from the case's best
    for number, path in zip(numbers, kodak_paths(args.kodak, numbers)):
        clean = load_crop(path, None)
        for spec in BLURS:
            psf = parse_psf(spec)
            blurred, sharp = blur_valid(clean, psf, 256)
            for sigma in SIGMAS:
                observed = noisy(blurred, f"gaussian:{sigma}", seed=number)
                sigma_hat = float(deblur_noise_level(observed)[0])
                weights = [multiple * auto_weight(sigma_hat, observed.shape[1]) for multiple in MULTIPLES]
                scores = [float(psnr(tv_deconvolve(observed, psf, weight)[0], sharp)[0]) for weight in weights]
                cases.append((sigma_hat, observed.shape[1], weights, scores))
                searched.append(max(scores) - float(psnr(tv_deconvolve(observed, psf, "auto")[0], sharp)[0]))
        print(f"kodim{number:02d} done ({time.perf_counter() - started:.0f} s)", flush=True)

    def shortfalls(a: float) -> np.ndarray:
        return np.array([shortfall(weights, scores, auto_weight(sigma_hat, channels, a))
                         for sigma_hat, channels, weights, scores in cases])

    rows = []
    for a in sorted({*CANDIDATES, AUTO_WEIGHT_NOISE}):
        short = shortfalls(a)
        rows.append([a, short.mean(), short.max(), int((short > 0.3).sum())])
    print_table(["a", "mean dB short of best", "worst case", f"cases > 0.3 dB (of {len(cases)})"], rows)
    current_worst = next(row[2] for row in rows if row[0] == AUTO_WEIGHT_NOISE)
    chosen = min((row for row in rows if row[2] <= current_worst), key=lambda row: row[1])
    print(f"package a = {AUTO_WEIGHT_NOISE}; chosen a = {chosen[0]} (lowest mean shortfall whose worst case is at "
          f"most the package rule's {current_worst:.3f} dB)")
    searched = np.array(searched)
    print(f"package --weight auto (the rule and its SURE search): {searched.mean():.3f} dB short on average, worst "
          f"{searched.max():.3f}, {int((searched > 0.3).sum())} of {len(searched)} cases over 0.3 dB")


if __name__ == "__main__":
    main()
