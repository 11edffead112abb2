"""Calibrate ``--weight auto`` for `denoise deblur`: lambda = a sqrt(C) sigma_hat^2 + b, scanned as multiples k of
the rule in the package (deconvolution.auto_weight).

Protocol: Kodak24 images 1-12 (calibration set; 13-24 are for the check in deblur_quality.py), 256x256 centre crops
blurred with the light from outside the frame (no wrap-around), by a Gaussian (sigma 1.6) and a 9-pixel motion at
30 degrees, plus Gaussian noise of sigma 1, 5 and 15 on the 0-255 scale, stored as 8-bit; sigma_hat from
denoise_cli.methods.deconvolution.deblur_noise_level. Every case is solved for each k of a geometric grid; the table
gives the mean PSNR per k and noise level, and each level's best k.

    python benchmarks/calibrate_deblur_weight.py [--kodak FOLDER] [--images 1,3,5,7,9,11]
"""
from __future__ import annotations

import argparse
import time


from common import DEFAULT_KODAK, blur_valid, kodak_paths, load_crop, noisy, print_table
from denoise_cli.core.metrics import psnr
from denoise_cli.methods.deconvolution import auto_weight, deblur_noise_level, tv_deconvolve
from denoise_cli.methods.psf import parse_psf

BLURS = ("gaussian:1.6", "motion:9,30")
SIGMAS = (1, 5, 15)
SLOPES = [0.25 * 1.5 ** i for i in range(7)]  # 0.25 .. 2.85 x the rule


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    parser.add_argument("--images", default="1,2,3,4,5,6,7,8,9,10,11,12")
    args = parser.parse_args()
    numbers = [int(n) for n in args.images.split(",")]
    if any(n > 12 for n in numbers):
        raise SystemExit("calibrate on Kodak 1-12 only; 13-24 are the held-out check")
    started = time.perf_counter()
    scores = {(sigma, slope): [] for sigma in SIGMAS for slope in SLOPES}
    for number, path in zip(numbers, kodak_paths(args.kodak, numbers)):
        clean = load_crop(path, None)
        for spec in BLURS:
            psf = parse_psf(spec)
            blurred, sharp = blur_valid(clean, psf, 256)
            for sigma in SIGMAS:
                observed = noisy(blurred, f"gaussian:{sigma}", seed=number)
                sigma_hat = float(deblur_noise_level(observed)[0])
                for slope in SLOPES:
                    weight = slope * auto_weight(sigma_hat, observed.shape[1])
                    restored, _ = tv_deconvolve(observed, psf, weight)
                    scores[(sigma, slope)].append(float(psnr(restored, sharp)[0]))
        print(f"kodim{number:02d} done ({time.perf_counter() - started:.0f} s)", flush=True)
    rows = [[f"{slope:.3f}"] + [sum(scores[(s, slope)]) / len(scores[(s, slope)]) for s in SIGMAS]
            for slope in SLOPES]
    print_table(["k"] + [f"sigma {s}" for s in SIGMAS], rows)
    for sigma in SIGMAS:
        best = max(SLOPES, key=lambda k: sum(scores[(sigma, k)]))
        print(f"sigma {sigma}: best k {best:.3f}")


if __name__ == "__main__":
    main()
