"""Peak memory (RSS) of `denoise zsn2n` and `denoise tv` on a 24-megapixel RGB photo (6000x4000).

Makes the image from a Kodak photo (resized, plus Gaussian noise sigma 25), then runs each command in a child process
and reads its peak RSS from the OS. Memory does not depend on the number of steps, so ``--iterations`` (default 200)
for ZS-N2N and 5 iterations for TV keep the runs short; ZS-N2N needs enough steps for its estimate to pass the
photon-noise test, or its refinement is left out (the last column says which ran).

    python benchmarks/memory_24mp.py [--kodak FOLDER] [--iterations 200]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from common import DEFAULT_KODAK, kodak_paths, print_table

#: Run argv[1:] and print its peak resident set size in KiB (a fresh parent, so no other child's peak mixes in).
PEAK_OF_CHILD = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    denoise = shutil.which("denoise") or str(Path(sys.executable).parent / "denoise")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photo = np.asarray(Image.open(kodak_paths(args.kodak, [21])[0]).resize((6000, 4000), Image.BICUBIC))
        rng = np.random.default_rng(0)
        noisy = np.clip(np.rint(photo + rng.normal(0, 25, photo.shape)), 0, 255).astype(np.uint8)
        source = Path(tmp) / "big.png"
        Image.fromarray(noisy).save(source, compress_level=1)
        del photo, noisy
        for command in (["zsn2n", "--iterations", str(args.iterations)], ["tv", "--max-iter", "5"]):
            started = time.perf_counter()
            report = Path(tmp) / f"{command[0]}.json"
            argv = [denoise, *command, str(source), "-o", str(Path(tmp) / f"{command[0]}.png"), "-q",
                    "--report", str(report)]
            peak_kib = int(subprocess.run([sys.executable, "-c", PEAK_OF_CHILD, *argv], check=True,
                                          capture_output=True, text=True).stdout)
            rows.append([" ".join(command), "6000x4000 RGB 8-bit", f"{peak_kib / 2**20:.2f} GiB",
                         time.perf_counter() - started, _finish(json.loads(report.read_text()))])
            print(rows[-1], flush=True)
    print_table(["command", "image", "peak RSS", "seconds", "zsn2n finish"], rows)


def _finish(report: dict) -> str:
    """Which of zsn2n's finishing steps ran (memory counts the refinement only where it ran: too few steps can leave
    it out) and their time."""
    facts = report["images"][0]["facts"]
    if "finish_seconds" not in facts:
        return ""
    steps = [name for name in ("refined", "unclipped") if facts[name][0]]
    return f"{facts['finish_seconds']:.1f} s ({', '.join(steps) or 'neither step'}; share {facts['signal_share'][0]})"


if __name__ == "__main__":
    main()
