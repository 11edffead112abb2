"""Calibrate ``--weight auto`` for `denoise tv`: lambda = k * sigma_hat, one slope k per norm/channel mode.

Protocol: Kodak24 images 1-12 (calibration set; 13-24 are kept for the check in tv_quality.py), 256x256 centre
crops, Gaussian sigma 15, 25 and 50 on the 0-255 scale, noisy images stored as 8-bit, sigma_hat from
denoise_cli.noise.estimate_sigma. For every case the PSNR-best lambda is found by golden-section search; then k is the
slope that maximises the mean PSNR of lambda = k * sigma_hat over all cases (a golden-section search on k).

    python benchmarks/calibrate_tv_weight.py [--kodak FOLDER]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from common import DEFAULT_KODAK, golden_max, kodak_paths, load_crop, noisy, print_table
from denoise_cli.metrics import psnr
from denoise_cli.noise import estimate_sigma
from denoise_cli.tv import tv_denoise

SIGMAS = (15, 25, 50)
MODES = [(n, c) for n in ("isotropic", "anisotropic") for c in ("coupled", "separate")]
TOL = 5e-4  # certified RMSE bound of each solve: far below what changes a PSNR in its second decimal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    parser.add_argument("--images", default="1-12", help="Kodak numbers, e.g. 1-12")
    args = parser.parse_args()
    first, last = map(int, args.images.split("-"))
    torch.set_num_threads(2)
    cases = []
    for number, path in zip(range(first, last + 1), kodak_paths(args.kodak, range(first, last + 1))):
        clean = load_crop(path)
        for sigma in SIGMAS:
            x = noisy(clean, f"gaussian:{sigma}", seed=1000 * number + sigma)
            cases.append((f"kodim{number:02d}", sigma, clean, x, float(estimate_sigma(x)[0])))
    rows = []
    for norm, channels in MODES:
        started = time.perf_counter()

        def score(weight, case):
            u, _ = tv_denoise(case[3], weight, norm, channels, tol=TOL)
            return float(psnr(u, case[2])[0])

        best = [golden_max(lambda w: score(w, case), 0.005, 0.5) for case in cases]
        ratios = [w / case[4] for (w, _), case in zip(best, cases)]
        slope, mean_psnr = golden_max(lambda k: statistics.mean(score(k * c[4], c) for c in cases), 0.3, 3.0,
                                      rel_tol=0.02)
        best_mean = statistics.mean(p for _, p in best)
        per_sigma = {s: statistics.median(r for r, c in zip(ratios, cases) if c[1] == s) for s in SIGMAS}
        rows.append([norm, channels, slope, mean_psnr, best_mean, best_mean - mean_psnr,
                     *(per_sigma[s] for s in SIGMAS), time.perf_counter() - started])
    print(f"Kodak {args.images}, 256x256 centre crops, Gaussian sigma {SIGMAS}, {len(cases)} cases per mode")
    print_table(["norm", "channels", "k", "PSNR k*sigma", "PSNR best", "loss dB",
                 *(f"median best/sigma s={s}" for s in SIGMAS), "seconds"], rows)


if __name__ == "__main__":
    main()
