"""ZS-N2N following the paper's protocol: PSNR/SSIM and run time of --exact, the default, and TV as a baseline.

The default's row ("fast") is followed by rows for the same fit finished less: "fast, not unclipped" (the guided
refinement without the clipping correction) and "fast, network only" (neither). The fit is
``zsn2n_denoise(refine=False, unclip=False)``, then ``finish_estimate`` as the default applies it (a test holds the
two paths equal); each row is timed with only its own steps.

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
from denoise_cli.methods.zsn2n import finish_estimate, zsn2n_denoise

PAPER = {"gaussian:25": {"zsn2n": 29.07, "bm3d": 29.02}, "gaussian:50": {"zsn2n": 24.81, "bm3d": 25.51},
         "poisson:50": {"zsn2n": 29.45}}


def timed(function) -> tuple:
    """(function(), its wall time in seconds)."""
    started = time.perf_counter()
    result = function()
    return result, time.perf_counter() - started


def default_and_less_finished(x: torch.Tensor, seed: int, **settings) -> dict:
    """The default's result, the same without the clipping correction, and the network-only estimate, from one fit,
    each with its seconds."""
    plain, fit_seconds = timed(lambda: zsn2n_denoise(x, refine=False, unclip=False, seed=seed, **settings)[0])
    finished, finish_seconds = timed(lambda: finish_estimate(x, plain)[0])
    refined, refine_seconds = timed(lambda: finish_estimate(x, plain, unclip=False)[0])
    return {"": (finished, fit_seconds + finish_seconds), ", not unclipped": (refined, fit_seconds + refine_seconds),
            ", network only": (plain, fit_seconds)}


METHODS = {
    "exact": lambda x, seed, **settings: {"": timed(lambda: zsn2n_denoise(x, exact=True, seed=seed, **settings)[0])},
    "fast": default_and_less_finished,
    "tv": lambda x, seed, **settings: {"": timed(lambda: tv_denoise(x, "auto", **settings)[0])},
}


def run_method(spec: str, x: torch.Tensor, seed: int) -> dict:
    """``name`` or ``name:key=value;...`` (numbers as numbers) applied to x: {row suffix: (result, seconds)}."""
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
    scores: dict = {}
    numbers = parse_numbers(args.images)
    for number, path in zip(numbers, kodak_paths(args.kodak, numbers)):
        clean = load_crop(path)
        for spec in args.noise.split(","):
            x = noisy(clean, spec, seed=number).to(device)
            for method in args.methods.split(","):
                for suffix, (result, seconds) in run_method(method, x, number).items():
                    out = as_stored(result.cpu(), np.uint8)
                    entry = (float(psnr(out, clean)[0]), float(ssim(out, clean).ssim[0]), seconds)
                    scores.setdefault((spec, method + suffix), []).append(entry)
                    print(f"kodim{number:02d} {spec} {method}{suffix}: {entry[0]:.2f} dB, SSIM {entry[1]:.4f}, "
                          f"{seconds:.1f}s", flush=True)
    rows = []
    for spec in args.noise.split(","):
        for name in (name for (noise, name) in scores if noise == spec):
            entries = scores[(spec, name)]
            rows.append([spec, name, statistics.mean(e[0] for e in entries), statistics.mean(e[1] for e in entries),
                         statistics.mean(e[2] for e in entries), len(entries)])
        for paper_method, value in PAPER.get(spec, {}).items():
            rows.append([spec, f"paper: {paper_method} (Kodak24)", value, "", "", ""])
    print(f"256x256 centre crops of Kodak {args.images}, device {device}, torch {torch.__version__}")
    print_table(["noise", "method", "PSNR dB", "SSIM", "seconds/image", "images"], rows)
    for spec in args.noise.split(","):
        if (spec, "exact") in scores and (spec, "fast") in scores:
            pairs = list(zip(scores[(spec, "fast")], scores[(spec, "exact")]))
            gains = [fast[0] - exact[0] for fast, exact in pairs]
            ratio = sum(exact[2] for _, exact in pairs) / sum(fast[2] for fast, _ in pairs)
            print(f"{spec}: default - exact {statistics.mean(gains):+.2f} dB on average, worst image "
                  f"{min(gains):+.2f} dB; exact takes {ratio:.1f}x the default's time")


if __name__ == "__main__":
    main()
