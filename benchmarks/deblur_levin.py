"""`denoise deblur` on the Levin et al. 2009 set (32 real camera-shake captures, 255x255 gray), at its defaults.

For each image: non-blind (the true kernel), blind (``--psf auto --psf-size 31``, not the true size) and the origin's
Chan-Wong scheme (``--method chan-wong``), all with ``--weight auto``. Scores follow the field's conventions
(../shared/data/levin09/SOURCE.md): the kernel is stored rotated by 180 degrees; SSD over the image less 15 pixels
per side after the best shift within +-5 pixels (integer, then quarter pixels); PSNR = 10 log10(225^2 / SSD); the
error ratio is SSD(estimated kernel) / SSD(true kernel), both restored by our non-blind TV. Levin 2007's SSD with the
true kernel is the non-blind reference. Times are in-process per image (2 threads), the import not included. The
table counts the outputs worse than their inputs and, for blind, the kernels found that the ringing check dropped
(:func:`denoise_cli.methods.deblur.rings`: the image is then only denoised).

    python benchmarks/deblur_levin.py [--levin FOLDER] [--modes nonblind,blind,chan-wong] [--images 1-32]
    python benchmarks/deblur_levin.py --held-out 13,16,19,22 --modes nonblind,blind   # Kodak photos instead
    python benchmarks/deblur_levin.py --held-out 13,16,19,22 --contrast 0.3 --modes blind   # faint photos
    python benchmarks/deblur_levin.py --modes blind --eight-bit   # the captures as 8-bit files
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import scipy.io
import scipy.ndimage
import scipy.signal
import torch
from PIL import Image

from common import DEFAULT_KODAK, kodak_paths, parse_numbers, print_table
from denoise_cli.methods.deblur import deblur
from denoise_cli.methods.deconvolution import tv_deconvolve

DEFAULT_LEVIN = Path(__file__).resolve().parents[2] / "shared" / "data" / "levin09"
LEVIN_2007_SSD = np.array([
    [33.2452, 37.8673, 26.1407, 48.3362, 21.0029, 15.8103, 20.6043, 26.1233],
    [48.3678, 51.6701, 42.9596, 72.8446, 27.9074, 20.3612, 39.6822, 40.9937],
    [31.8456, 36.5485, 18.6523, 39.4669, 14.8198, 10.0371, 13.1905, 23.4166],
    [30.0886, 44.1580, 15.3129, 39.8219, 15.4713, 17.9402, 14.8388, 23.1270]])
CROP, MAX_SHIFT = 15, 5


def load(folder: Path, image: int, kernel: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sharp, blurred, convolution kernel) of one capture, float64."""
    data = scipy.io.loadmat(folder / f"im{image:02d}_ker{kernel:02d}.mat")
    return data["x"].astype(np.float64), data["y"].astype(np.float64), np.rot90(data["f"], 2).astype(np.float64)


def load_held_out(kodak: Path, number: int, levin: Path, kernel: int,
                  contrast: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A check on photos nothing was tuned on: the 255x255 gray centre of Kodak ``number`` (its contrast scaled by
    ``contrast`` about mid-grey: 0.5 + contrast (x - 0.5)), blurred by Levin's kernel ``kernel`` with the light from
    outside the frame (scipy, valid part), plus Gaussian noise of 0.5/255, stored as 8-bit: (sharp, blurred,
    convolution kernel)."""
    true_kernel = load(levin, 1, kernel)[2]
    kh, kw = true_kernel.shape
    photo = np.asarray(Image.open(kodak_paths(kodak, [number])[0]).convert("L"), dtype=np.float64) / 255
    if contrast != 1.0:  # (0.5 + (x - 0.5) is not always x in floating point)
        photo = 0.5 + contrast * (photo - 0.5)
    height, width = photo.shape
    top, left = (height - 255) // 2, (width - 255) // 2
    region = photo[top - (kh - 1 - kh // 2): top + 255 + kh // 2, left - (kw - 1 - kw // 2): left + 255 + kw // 2]
    blurred = scipy.signal.convolve2d(region, true_kernel, mode="valid")
    noise = np.random.default_rng(number * 10 + kernel).normal(0, 0.5 / 255, blurred.shape)
    return photo[top:top + 255, left:left + 255], np.rint(np.clip(blurred + noise, 0, 1) * 255) / 255, true_kernel


def ssd_up_to_shift(estimate: np.ndarray, sharp: np.ndarray) -> float:
    """Levin's comp_upto_shift: the least SSD over integer shifts within +-MAX_SHIFT, then quarter-pixel bilinear
    shifts within +-1 of the best, on the image less CROP pixels per side."""
    height, width = sharp.shape
    inner = sharp[CROP:height - CROP, CROP:width - CROP]
    best, best_shift = np.inf, (0, 0)
    for dy in range(-MAX_SHIFT, MAX_SHIFT + 1):
        for dx in range(-MAX_SHIFT, MAX_SHIFT + 1):
            ssd = ((estimate[CROP + dy:height - CROP + dy, CROP + dx:width - CROP + dx] - inner) ** 2).sum()
            if ssd < best:
                best, best_shift = ssd, (dy, dx)
    quarters = np.arange(-1, 1.01, 0.25)
    for fy in quarters:
        for fx in quarters:
            shift = (best_shift[0] + fy, best_shift[1] + fx)
            moved = scipy.ndimage.shift(estimate, (-shift[0], -shift[1]), order=1, mode="nearest")
            best = min(best, ((moved[CROP:height - CROP, CROP:width - CROP] - inner) ** 2).sum())
    return float(best)


def psnr_of(ssd: float) -> float:
    return float(10 * np.log10((255 - 2 * CROP) ** 2 / ssd))


def restore(blurred: np.ndarray, **settings) -> tuple[np.ndarray, dict, float]:
    started = time.perf_counter()
    result, facts = deblur(torch.from_numpy(blurred).float()[None, None], **settings)
    return result[0, 0].double().numpy(), facts, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levin", type=Path, default=DEFAULT_LEVIN)
    parser.add_argument("--modes", default="nonblind,blind,chan-wong")
    parser.add_argument("--images", default="1-32", help="capture numbers 1-32 (image-major), e.g. 1-8 or 3,9")
    parser.add_argument("--psf-size", type=int, default=31)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--held-out", metavar="KODAK_NUMBERS",
                        help="instead of Levin's four scenes, these Kodak photos (e.g. 13,16,19,22) blurred by "
                             "Levin's eight kernels (see load_held_out); no Levin 2007 column then")
    parser.add_argument("--kodak", type=Path, default=DEFAULT_KODAK)
    parser.add_argument("--contrast", type=float, default=1.0,
                        help="with --held-out: the photos' contrast scaled by this about mid-grey (0.3: a faint "
                             "image, see load_held_out)")
    parser.add_argument("--eight-bit", action="store_true",
                        help="round Levin's blurred captures to 8 bits first, as a user's PNG would be (the "
                             "reference with the true kernel is then computed from the rounded capture too)")
    args = parser.parse_args()
    modes = args.modes.split(",")
    numbers = parse_numbers(args.images)
    torch.set_num_threads(args.threads)
    summary = {mode: {"psnr": [], "ratio": [], "seconds": [], "wins": 0, "gain": [], "dropped": 0} for mode in modes}
    for number in numbers:
        image, kernel = (number - 1) // 8 + 1, (number - 1) % 8 + 1
        if args.held_out:
            scenes = parse_numbers(args.held_out)
            sharp, blurred, true_kernel = load_held_out(args.kodak, scenes[(image - 1) % len(scenes)], args.levin,
                                                        kernel, args.contrast)
        else:
            sharp, blurred, true_kernel = load(args.levin, image, kernel)
            if args.eight_bit:
                blurred = np.rint(np.clip(blurred, 0, 1) * 255) / 255
        truth_out, truth_seconds = _nonblind(blurred, true_kernel)
        truth_ssd = ssd_up_to_shift(truth_out, sharp)
        input_psnr = psnr_of(ssd_up_to_shift(blurred, sharp))
        row = [f"im{image}_k{kernel}", f"{input_psnr:.2f}"]
        for mode in modes:
            if mode == "nonblind":
                ssd, seconds = truth_ssd, truth_seconds
                summary[mode]["wins"] += not args.held_out and ssd <= LEVIN_2007_SSD[image - 1, kernel - 1]
            else:
                method = "chan-wong" if mode == "chan-wong" else "tv"
                estimate, facts, seconds = restore(blurred, psf="auto", psf_size=args.psf_size, method=method)
                ssd = ssd_up_to_shift(estimate, sharp)
                if method == "chan-wong":  # its kernel, restored like the others, for the error ratio
                    found = np.array(facts["psf"][0])
                    restored, _ = _nonblind(blurred, found)
                    ratio = ssd_up_to_shift(restored, sharp) / truth_ssd
                else:
                    ratio = ssd / truth_ssd
                    summary[mode]["dropped"] += facts["psf_rejected"][0]
                summary[mode]["ratio"].append(ratio)
                row.append(f"{ratio:.2f}")
            summary[mode]["psnr"].append(psnr_of(ssd))
            summary[mode]["gain"].append(psnr_of(ssd) - input_psnr)
            summary[mode]["seconds"].append(seconds)
            row += [f"{psnr_of(ssd):.2f}", f"{seconds:.2f}"]
        print("  ".join(row), flush=True)
    print()
    table = []
    for mode in modes:
        stats = summary[mode]
        ratios = np.array(stats["ratio"]) if stats["ratio"] else None
        table.append([mode, f"{np.mean(stats['psnr']):.2f}", f"{min(stats['gain']):+.2f}",
                      f"{sum(gain < 0 for gain in stats['gain'])}", f"{stats['dropped']}" if mode == "blind" else "",
                      f"{stats['wins']}/{len(numbers)}" if mode == "nonblind" else "",
                      "" if ratios is None else f"{(ratios <= 1.5).sum()}/{(ratios <= 2).sum()}/{(ratios <= 3).sum()}",
                      f"{np.mean(stats['seconds']):.2f}", f"{np.max(stats['seconds']):.2f}"])
    print_table(["mode", "mean PSNR", "worst gain over input", "worse than input", "blur found dropped",
                 "<= Levin 2007 SSD", "ratio <=1.5/<=2/<=3",
                 "mean s", "max s"], table)
    print(f"\nLevin 2007 (true kernel): {np.mean([psnr_of(s) for s in LEVIN_2007_SSD.ravel()]):.2f} dB mean")


def _nonblind(blurred: np.ndarray, kernel: np.ndarray) -> tuple[np.ndarray, float]:
    """Our non-blind deconvolution with a given kernel (an array), at the defaults."""
    started = time.perf_counter()
    result, _ = tv_deconvolve(torch.from_numpy(blurred).float()[None, None], torch.from_numpy(kernel.copy()))
    return result[0, 0].double().numpy(), time.perf_counter() - started


if __name__ == "__main__":
    main()
