"""Batches at scale: the installed command shared by concurrent processes, a folder over worker processes, and one
large image, each side by side with the way it ran before (busy-waiting OpenMP threads, one image at a time).

    python benchmarks/concurrency.py [--kodak DIR] [--repeats 2]

Rows:
- one `denoise tv` alone and two at once, on the quick-start sample (384x384) and on Kodak photos (768x512), with the
  default wait policy (passive) and with OMP_WAIT_POLICY=ACTIVE (threads that spin while they wait; before, the
  OpenMP default spun for a while before sleeping, and collapsed the same way, 4.5x in the issue);
- a folder of the 24 Kodak images as 256x256 centre crops with sigma-25 noise, `--weight auto`: `--jobs 2`,
  `--jobs 1`, and `OMP_NUM_THREADS=1 --jobs 1` (one image at a time on one thread);
- one 2048x2048 RGB image (four Kodak photos tiled) alone, passive and active.
Times are wall seconds of the whole command (start-up included), the best of --repeats runs.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from common import DEFAULT_KODAK, kodak_paths, print_table

DENOISE = shutil.which("denoise", path=str(Path(sys.executable).parent)) or "denoise"
SAMPLES = Path(__file__).resolve().parents[1] / "sample_images"


def _timed(commands: list, env: dict) -> float:
    """Wall seconds until every command (started together) has finished."""
    started = time.perf_counter()
    processes = [subprocess.Popen(command, env=dict(os.environ, **env), stderr=subprocess.DEVNULL)
                 for command in commands]
    for process in processes:
        if process.wait() != 0:
            raise SystemExit(f"failed: {' '.join(map(str, process.args))}")
    return time.perf_counter() - started


def _best(commands_of, env: dict, repeats: int) -> float:
    return min(_timed(commands_of(run), env) for run in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kodak", type=Path, default=DEFAULT_KODAK)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    paths = kodak_paths(args.kodak, range(1, 25))
    work = Path(tempfile.mkdtemp(prefix="denoise-concurrency-"))
    try:
        folder = work / "crops"
        folder.mkdir()
        rng = np.random.default_rng(0)
        for path in paths:
            image = np.asarray(Image.open(path)).astype(float)
            h, w = image.shape[:2]
            crop = image[(h - 256) // 2:(h + 256) // 2, (w - 256) // 2:(w + 256) // 2]
            noisy = np.clip(np.rint(crop + rng.normal(0, 25, crop.shape)), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(folder / path.name)
        tiles = [np.asarray(Image.open(p))[:500, :500] for p in paths[:4]]
        square = np.concatenate([np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0)
        big = np.tile(square, (3, 3, 1))[:2048, :2048]
        Image.fromarray(big.astype(np.uint8)).save(work / "big.png")

        def tv(source, out, *extra):
            return [DENOISE, "tv", str(source), "-o" if Path(source).suffix else "--output-dir", str(out), "-q",
                    "--overwrite", *extra]

        rows = []
        sample = SAMPLES / "retina.noisy.png"
        for label, first, second in (("the 384^2 quick-start sample", sample, sample),
                                     ("a 768x512 Kodak photo each", paths[0], paths[1])):
            for policy in ("PASSIVE", "ACTIVE"):
                env = {"OMP_WAIT_POLICY": policy}
                alone = _best(lambda run: [tv(first, work / "a.png")], env, args.repeats)
                pair = _best(lambda run: [tv(first, work / "a.png"), tv(second, work / "b.png")], env,
                             args.repeats)
                rows.append([f"two at once / one alone, {label} ({policy.lower()})", f"{pair:.2f} / {alone:.2f}",
                             f"{pair / alone:.2f}x"])
        serial = _best(lambda run: [tv(folder, work / "o1", "--jobs", "1")], {"OMP_NUM_THREADS": "1"},
                       args.repeats)
        for label, extra in (("--jobs 2", ["--jobs", "2"]), ("--jobs 1 (2 threads)", ["--jobs", "1"]),
                             ("--jobs auto", [])):
            seconds = _best(lambda run: [tv(folder, work / f"o{run}", *extra)], {}, args.repeats)
            rows.append([f"24 crops 256^2, {label} vs one thread one at a time", f"{seconds:.2f} / {serial:.2f}",
                         f"{100 * seconds / serial:.0f} %"])
        for policy in ("PASSIVE", "ACTIVE"):
            seconds = _best(lambda run: [tv(work / "big.png", work / "big.out.png")], {"OMP_WAIT_POLICY": policy},
                            args.repeats)
            rows.append([f"one 2048^2 RGB image ({policy.lower()})", f"{seconds:.2f}", ""])
        print_table(["case", "seconds", "ratio"], rows)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
