"""Calibrate ``--weight auto`` for `denoise tv`: lambda = k * sigma_hat, one slope k per norm/channel mode.

Protocol: Kodak24 images 1-12 (calibration set; 13-24 are kept for the check in tv_quality.py), 256x256 centre
crops, Gaussian sigma 15, 25 and 50 on the 0-255 scale, noisy images stored as 8-bit, sigma_hat from
denoise_cli.methods.noise_level.estimate_sigma. Every case is solved for lambda = k * sigma_hat over a geometric grid of k (ratio
1.1, 0.5 to 1.73); k is the grid value with the best mean PSNR over all cases, refined by a parabola through it and its
neighbours. The table also gives, per sigma, the median of each case's best k (does one slope fit every noise level?).

    python benchmarks/calibrate_tv_weight.py [--kodak FOLDER]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import DEFAULT_KODAK, add_modes_option, kodak_paths, load_crop, noisy, print_table
from denoise_cli.core.metrics import psnr
from denoise_cli.methods.noise_level import estimate_sigma
from denoise_cli.methods.tv import tv_denoise

SIGMAS = (15, 25, 50)
MODES = [(n, c) for n in ("isotropic", "anisotropic") for c in ("coupled", "separate")]
TOL = 3e-3  # certified RMSE bound of each solve; the true error is ~30x smaller, far below a PSNR's 2nd decimal
RATIO = 1.1
SLOPES = [0.5 * RATIO ** i for i in range(14)]  # 0.5 .. 1.73


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    parser.add_argument("--images", default="1-12", help="Kodak numbers, e.g. 1-12")
    add_modes_option(parser, MODES)
    args = parser.parse_args()
    modes = [tuple(mode.split("/")) for mode in args.modes.split(",")]
    first, last = map(int, args.images.split("-"))
    torch.set_num_threads(2)
    cases = []
    for number, path in zip(range(first, last + 1), kodak_paths(args.kodak, range(first, last + 1))):
        clean = load_crop(path)
        for sigma in SIGMAS:
            x = noisy(clean, f"gaussian:{sigma}", seed=1000 * number + sigma)
            cases.append((f"kodim{number:02d}", sigma, clean, x, float(estimate_sigma(x)[0])))
    rows = []
    for norm, channels in modes:
        started = time.perf_counter()
        table = [[float(psnr(tv_denoise(case[3], k * case[4], norm, channels, tol=TOL)[0], case[2])[0])
                  for k in SLOPES] for case in cases]  # table[case][slope]
        means = [statistics.mean(column) for column in zip(*table)]
        slope = _parabola_peak(SLOPES, means)
        best_k = [SLOPES[max(range(len(SLOPES)), key=row.__getitem__)] for row in table]
        per_sigma = [statistics.median(k for k, case in zip(best_k, cases) if case[1] == s) for s in SIGMAS]
        at_grid_best = max(means)
        best_each = statistics.mean(max(row) for row in table)
        rows.append([norm, channels, slope, at_grid_best, best_each, best_each - at_grid_best, *per_sigma,
                     time.perf_counter() - started])
        print(f"{norm} {channels}: k = {slope:.3f}", flush=True)
    print(f"Kodak {args.images}, 256x256 centre crops, Gaussian sigma {SIGMAS}, {len(cases)} cases per mode")
    print_table(["norm", "channels", "k", "PSNR one k", "PSNR best k each", "loss dB",
                 *(f"median best k, s={s}" for s in SIGMAS), "seconds"], rows)


def _parabola_peak(xs: list, ys: list) -> float:
    """The peak of the parabola through the best grid point and its neighbours, in log(x)."""
    i = max(range(len(ys)), key=ys.__getitem__)
    if i in (0, len(ys) - 1):
        return xs[i]
    a, b, c = ys[i - 1], ys[i], ys[i + 1]
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return xs[i] * RATIO ** offset


if __name__ == "__main__":
    main()
