"""ZS-N2N following the paper's protocol: PSNR/SSIM and run time of --exact, the default, and TV as a baseline.

Protocol (Mansour & Heckel 2023): 256x256 centre crops of Kodak24, Gaussian sigma 25 and 50 (0-255 scale) and Poisson
with peak 50, noisy images stored as 8-bit (as a user's files are); scores on the outputs stored as 8-bit. The paper's
Kodak24 figures are printed beside ours for orientation (they were measured on all 24 images, with unquantised noise).

    python benchmarks/zsn2n_benchmark.py [--kodak FOLDER] [--images 1-24] [--noise gaussian:25,gaussian:50,poisson:50]
                                         [--device cpu|cuda] [--methods exact,fast,tv]

A method may carry settings for zsn2n_denoise to try a variant beside the others: ``fast:iterations=1000;learning_rate=2e-3``.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from common import DEFAULT_KODAK, kodak_paths, load_crop, noisy, parse_numbers, print_table
from denoise_cli.core.imageio import as_stored
from denoise_cli.core.metrics import psnr, ssim
from denoise_cli.methods.tv import tv_denoise
from denoise_cli.methods.zsn2n import zsn2n_denoise

PAPER = {"gaussian:25": {"zsn2n": 29.07, "bm3d": 29.02}, "gaussian:50": {"zsn2n": 24.81, "bm3d": 25.51}}
METHODS = {
    "exact": lambda x, seed, **settings: zsn2n_denoise(x, exact=True, seed=seed, **settings)[0],
    "fast": lambda x, seed, **settings: zsn2n_denoise(x, seed=seed, **settings)[0],
    "tv": lambda x, seed, **settings: tv_denoise(x, "auto", **settings)[0],
}


def run_method(spec: str, x: torch.Tensor, seed: int) -> torch.Tensor:
    """``name`` or ``name:key=value;...`` (numbers as numbers) applied to x."""
    name, _, extra = spec.partition(":")
    settings = {}
    for item in filter(None, extra.split(";")):
        key, _, value = item.partition("=")
        settings[key] = float(value) if "." in value or "e" in value else int(value)
    return METHODS[name](x, seed, **settings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    parser.add_argument("--images", default="1-24")
    parser.add_argument("--noise", default="gaussian:25,gaussian:50,poisson:50")
    parser.add_argument("--methods", default="exact,fast,tv",
                        help="comma-separated; a variant as fast:iterations=1000;learning_rate=2e-3")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(2)
    device = torch.device(args.device)
    methods = args.methods.split(",")
    scores: dict = {}
    numbers = parse_numbers(args.images)
    for number, path in zip(numbers, kodak_paths(args.kodak, numbers)):
        clean = load_crop(path)
        for spec in args.noise.split(","):
            x = noisy(clean, spec, seed=number).to(device)
            for name in methods:
                started = time.perf_counter()
                out = as_stored(run_method(name, x, number).cpu(), np.uint8)
                seconds = time.perf_counter() - started
                entry = (float(psnr(out, clean)[0]), float(ssim(out, clean).ssim[0]), seconds)
                scores.setdefault((spec, name), []).append(entry)
                print(f"kodim{number:02d} {spec} {name}: {entry[0]:.2f} dB, SSIM {entry[1]:.4f}, {seconds:.1f}s",
                      flush=True)
    rows = []
    for spec in args.noise.split(","):
        for name in methods:
            entries = scores[(spec, name)]
            rows.append([spec, name, statistics.mean(e[0] for e in entries), statistics.mean(e[1] for e in entries),
                         statistics.mean(e[2] for e in entries), len(entries)])
        for paper_method, value in PAPER.get(spec, {}).items():
            rows.append([spec, f"paper: {paper_method} (Kodak24)", value, "", "", ""])
    print(f"256x256 centre crops of Kodak {args.images}, device {device}, torch {torch.__version__}")
    print_table(["noise", "method", "PSNR dB", "SSIM", "seconds/image", "images"], rows)


if __name__ == "__main__":
    main()
