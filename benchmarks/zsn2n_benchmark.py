"""ZS-N2N following the paper's protocol: PSNR/SSIM and run time of --exact, the default, and TV as a baseline.

The default's row ("fast") is followed by rows for the same fit finished less: "fast, residual not restored"
(without what light noise's residual gives back), "fast, not unclipped" (the guided refinement, and the residual,
without the clipping correction) and "fast, network only" (none of them). The fit is
``zsn2n_denoise(refine=False, unclip=False)``, then ``finish_estimate`` as the default applies it (a test holds the
two paths equal); each row is timed with only its own steps.

Protocol (Mansour & Heckel 2023): 256x256 centre crops of Kodak24, Gaussian sigma 25 and 50 (0-255 scale) and Poisson
with peak 50, noisy images stored as 8-bit (as a user's files are); scores on the outputs stored as 8-bit. The paper's
Kodak24 figures are printed beside ours for orientation (they were measured on all 24 images, with unquantised noise).

    python benchmarks/zsn2n_benchmark.py [--kodak FOLDER] [--images 1-24] [--noise gaussian:25,gaussian:50,poisson:50]
                                         [--device cpu|cuda] [--methods exact,fast,tv] [--jobs N] [--threads T]
                                         [--results FILE]

``--jobs N`` scores N (image, noise) cases at once in worker processes (each with T / N CPU threads, at least one):
the all-24 table is 72 cases of --exact and the default (~16 h on a 2-core CPU), and one process fitting a network
this small leaves most of a GPU idle. Cases run side by side share the device, so their seconds are not those of a
run alone; time a few cases with ``--jobs 1`` for the speed comparison. ``--results FILE`` appends every case's
scores as a JSON line when it is done and skips the cases already in FILE, so an interrupted table resumes where it
stopped (the file keeps the device and torch version of each line; the table is printed from all of it).
``--estimates DIR`` keeps the default's network-only estimate of each case (and the fit's seconds) in DIR and reuses
it when the same case, settings and threads come again: the finish (refinement, clipping correction) can then be
changed and re-scored without refitting (the fit is deterministic: seeded by the image, one thread per case).

A method may carry settings for zsn2n_denoise to try a variant beside the others: ``fast:iterations=1000;learning_rate=2e-3``,
``fast:precision=float32``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Optional

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


def default_and_less_finished(x: torch.Tensor, seed: int, estimate: Optional[Path] = None, **settings) -> dict:
    """The default's result, the same without the residual's restoration, without the clipping correction, and the
    network-only estimate, from one fit (read from the file ``estimate`` when it exists, else fitted and saved
    there), each with its seconds."""
    if estimate is not None and estimate.exists():
        plain, fit_seconds = torch.load(estimate)
        plain = plain.to(x.device)
    else:
        plain, fit_seconds = timed(lambda: zsn2n_denoise(x, refine=False, unclip=False, seed=seed, **settings)[0])
        if estimate is not None:
            torch.save((plain.cpu(), fit_seconds), estimate)
    finished, finish_seconds = timed(lambda: finish_estimate(x, plain)[0])
    unrestored, unrestored_seconds = timed(lambda: finish_estimate(x, plain, restore=False)[0])
    refined, refine_seconds = timed(lambda: finish_estimate(x, plain, unclip=False)[0])
    return {"": (finished, fit_seconds + finish_seconds),
            ", residual not restored": (unrestored, fit_seconds + unrestored_seconds),
            ", not unclipped": (refined, fit_seconds + refine_seconds), ", network only": (plain, fit_seconds)}


METHODS = {
    "exact": lambda x, seed, estimate, **settings: {
        "": timed(lambda: zsn2n_denoise(x, exact=True, seed=seed, **settings)[0])},
    "fast": default_and_less_finished,
    "tv": lambda x, seed, estimate, **settings: {"": timed(lambda: tv_denoise(x, "auto", **settings)[0])},
}


def run_method(spec: str, x: torch.Tensor, seed: int, estimate: Optional[Path] = None) -> dict:
    """``name`` or ``name:key=value;...`` (numbers as numbers, else words) applied to x: {row suffix: (result,
    seconds)}; ``estimate``: where the default's network estimate is kept (see --estimates)."""
    name, _, extra = spec.partition(":")
    settings = {}
    for item in filter(None, extra.split(";")):
        key, _, value = item.partition("=")
        settings[key] = _number_or_word(value)
    return METHODS[name](x, seed, estimate, **settings)


def _number_or_word(value: str):
    """'3' -> 3, '2e-3' -> 0.002, 'float32' -> 'float32'."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def score_case(kodak: Path, number: int, spec: str, methods: list, device: str, threads: int,
               estimates: Optional[Path] = None) -> dict:
    """Every method's rows on one (image, noise) case: {"image", "noise", "device", "torch", "rows": {row name:
    [PSNR dB, SSIM, seconds]}}, scored on the output stored as 8-bit."""
    torch.set_num_threads(threads)
    clean = load_crop(kodak_paths(kodak, [number])[0])
    x = noisy(clean, spec, seed=number).to(device)
    rows = {}
    for method in methods:
        estimate = None
        if estimates is not None:
            estimate = estimates / f"kodim{number:02d}_{spec}_{method}_{device}_{threads}t.pt".replace(":", "=")
        for suffix, (result, seconds) in run_method(method, x, number, estimate).items():
            out = as_stored(result.cpu(), np.uint8)
            rows[method + suffix] = [float(psnr(out, clean)[0]), float(ssim(out, clean).ssim[0]), seconds]
    return {"image": number, "noise": spec, "device": device, "torch": torch.__version__, "rows": rows}


def run_cases(args, cases: list, done) -> None:
    """Score ``cases`` [(image, noise)], ``args.jobs`` at a time, handing each result to ``done`` as it finishes."""
    methods = args.methods.split(",")
    threads = max(1, args.threads // args.jobs) if args.device == "cpu" else 1
    work = [(args.kodak, number, spec, methods, args.device, threads, args.estimates) for number, spec in cases]
    if args.jobs == 1:
        for case in work:
            done(score_case(*case))
        return
    # spawn: a forked child would inherit the parent's OpenMP and CUDA state, which neither survives
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in as_completed([pool.submit(score_case, *case) for case in work]):
            done(future.result())


def print_summary(args, results: list) -> None:
    """The table of means per noise and row, the paper's figures beside them, and the default against --exact."""
    scores: dict = {}  # (noise, row name) -> {image: [PSNR, SSIM, seconds]}
    for result in results:
        for name, entry in result["rows"].items():
            scores.setdefault((result["noise"], name), {})[result["image"]] = entry
    rows = []
    for spec in args.noise.split(","):
        for name in (name for (noise, name) in scores if noise == spec):
            entries = list(scores[(spec, name)].values())
            rows.append([spec, name, statistics.mean(e[0] for e in entries), statistics.mean(e[1] for e in entries),
                         statistics.mean(e[2] for e in entries), len(entries)])
        for paper_method, value in PAPER.get(spec, {}).items():
            rows.append([spec, f"paper: {paper_method} (Kodak24)", value, "", "", ""])
    devices = sorted({result["device"] for result in results})
    versions = sorted({result["torch"] for result in results})
    print(f"256x256 centre crops of Kodak {args.images}, device {', '.join(devices)}, torch {', '.join(versions)}, "
          f"{args.jobs} case(s) at a time")
    print_table(["noise", "method", "PSNR dB", "SSIM", "seconds/image", "images"], rows)
    for spec in args.noise.split(","):
        fast, exact = scores.get((spec, "fast"), {}), scores.get((spec, "exact"), {})
        images = sorted(set(fast) & set(exact))
        if images:
            gains = {image: fast[image][0] - exact[image][0] for image in images}
            worst = min(images, key=gains.get)
            ratio = sum(exact[image][2] for image in images) / sum(fast[image][2] for image in images)
            print(f"{spec}: default - exact {statistics.mean(gains.values()):+.2f} dB on average over "
                  f"{len(images)} images, worst kodim{worst:02d} {gains[worst]:+.2f} dB; exact takes {ratio:.1f}x "
                  f"the default's time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    parser.add_argument("--images", default="1-24")
    parser.add_argument("--noise", default="gaussian:25,gaussian:50,poisson:50")
    parser.add_argument("--methods", default="exact,fast,tv",
                        help="comma-separated; a variant as fast:iterations=1000;learning_rate=2e-3")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--jobs", type=int, default=1, help="(image, noise) cases scored at once, in processes")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads in all, shared by the jobs")
    parser.add_argument("--results", type=Path, help="JSON lines: append each case, skip the cases already there")
    parser.add_argument("--estimates", type=Path, help="a folder: keep and reuse the default's network estimates")
    args = parser.parse_args()
    if args.jobs < 1 or args.threads < 1:
        raise SystemExit("--jobs and --threads must be at least 1")
    if args.estimates is not None:
        args.estimates.mkdir(parents=True, exist_ok=True)
    specs = args.noise.split(",")
    wanted = [(number, spec) for number in parse_numbers(args.images) for spec in specs]
    kodak_paths(args.kodak, sorted({number for number, _ in wanted}))  # every image is there, before any work
    earlier = []
    if args.results is not None and args.results.exists():
        earlier = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
        methods, cases = set(args.methods.split(",")), set(wanted)  # done: a case with every method asked for
        earlier = [r for r in earlier if (r["image"], r["noise"]) in cases
                   and methods <= {name.split(",")[0] for name in r["rows"]}]
    finished = {(r["image"], r["noise"]) for r in earlier}
    results = list(earlier)

    def done(result: dict) -> None:
        results.append(result)
        for name, (decibels, similarity, seconds) in result["rows"].items():
            print(f"kodim{result['image']:02d} {result['noise']} {name}: {decibels:.2f} dB, SSIM {similarity:.4f}, "
                  f"{seconds:.1f}s", flush=True)
        if args.results is not None:
            with args.results.open("a") as file:
                file.write(json.dumps(result) + "\n")

    if finished:
        print(f"{len(finished)} of {len(wanted)} cases already in {args.results}", flush=True)
    run_cases(args, [case for case in wanted if case not in finished], done)
    print_summary(args, results)


if __name__ == "__main__":
    main()
