"""`denoise deblur` quality on colour photos: ``--weight auto`` against the best weight, and the origin's scenario.

1. Held-out check of ``--weight auto`` (calibrated on Kodak 1-12, see calibrate_deblur_weight.py): Kodak 13-24,
   256x256 centre crops, blurred with the light from outside the frame by a Gaussian (sigma 1.6) and a 9-pixel
   motion at 30 degrees, Gaussian noise sigma 1, 5, 15 (0-255 scale), stored as 8-bit; the known PSF is given.
   Auto against the best of the multiples 0.125-4 x the auto weight of each case.
2. The origin's scenario: a 3-pixel horizontal motion and Gaussian noise of variance 0.01 (sigma 25.5 on the 0-255
   scale), on the same crops: the input, our non-blind TV and adaptive TV with the known PSF, our blind estimate
   (``--psf-size 7``), and the origin's Chan-Wong scheme (``--method chan-wong --psf-size 7``), all at the defaults.

    python benchmarks/deblur_quality.py [--kodak FOLDER] [--images 13-24] [--parts 1,2]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from common import DEFAULT_KODAK, blur_valid, kodak_paths, load_crop, noisy, parse_numbers, print_table
from denoise_cli.core.metrics import psnr
from denoise_cli.methods.deblur import deblur
from denoise_cli.methods.deconvolution import tv_deconvolve
from denoise_cli.methods.psf import parse_psf

BLURS = ("gaussian:1.6", "motion:9,30")
SIGMAS = (1, 5, 15)
MULTIPLES = (0.125, 0.25, 0.5, 0.71, 1.0, 1.41, 2.0, 4.0)


def weight_check(paths: list) -> None:
    rows = []
    for spec in BLURS:
        psf = parse_psf(spec)
        for sigma in SIGMAS:
            gaps, auto_scores, inputs = [], [], []
            for number, path in paths:
                blurred, sharp = blur_valid(load_crop(path, None), psf, 256)
                observed = noisy(blurred, f"gaussian:{sigma}", seed=number)
                restored, facts = tv_deconvolve(observed, psf, "auto")
                auto = float(psnr(restored, sharp)[0])
                best = auto
                for multiple in MULTIPLES:
                    if multiple != 1.0:
                        other, _ = tv_deconvolve(observed, psf, multiple * facts["weight"][0])
                        best = max(best, float(psnr(other, sharp)[0]))
                gaps.append(best - auto)
                auto_scores.append(auto)
                inputs.append(float(psnr(observed, sharp)[0]))
            rows.append([spec, sigma, np.mean(inputs), np.mean(auto_scores), np.mean(gaps), max(gaps)])
            print(rows[-1], flush=True)
    print_table(["blur", "sigma", "input dB", "auto dB", "auto short of best (mean)", "worst image"], rows)


def origin_scenario(paths: list) -> None:
    psf = parse_psf("motion:3")
    runs = {"input": None, "TV, known PSF": dict(psf="motion:3"),
            "adaptive TV, known PSF": dict(psf="motion:3", regularizer="adaptive"),
            "blind (--psf-size 7)": dict(psf="auto", psf_size=7),
            "Chan-Wong (origin)": dict(psf="auto", psf_size=7, method="chan-wong")}
    scores = {name: [] for name in runs}
    seconds = {name: [] for name in runs}
    for number, path in paths:
        blurred, sharp = blur_valid(load_crop(path, None), psf, 256)
        observed = noisy(blurred, "gaussian:25.5", seed=number)
        for name, settings in runs.items():
            started = time.perf_counter()
            result = observed if settings is None else deblur(observed, **settings)[0]
            seconds[name].append(time.perf_counter() - started)
            scores[name].append(float(psnr(result, sharp)[0]))
    print_table(["method", "mean PSNR dB", "worst dB", "mean s"],
                [[name, np.mean(scores[name]), min(scores[name]), np.mean(seconds[name])] for name in runs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    parser.add_argument("--images", default="13-24")
    parser.add_argument("--parts", default="1,2")
    args = parser.parse_args()
    numbers = parse_numbers(args.images)
    paths = list(zip(numbers, kodak_paths(args.kodak, numbers)))
    if "1" in args.parts.split(","):
        weight_check(paths)
    if "2" in args.parts.split(","):
        origin_scenario(paths)


if __name__ == "__main__":
    main()
