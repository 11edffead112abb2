"""SSIM speed and agreement: ours against scikit-image, in one process, and end to end as commands.

Pairs: a 512x512 and a 3840x2160 RGB image made from Kodak photos (resized up, so the content is photographic),
against a copy with Gaussian noise (sigma 10). In-process: each function on arrays/tensors already in memory (best of
``--repeat``). End to end: `denoise ssim a.png b.png` against `python -c` reading both files with Pillow and calling
scikit-image's structural_similarity (best of ``--repeat`` runs each).

    python benchmarks/ssim_speed.py [--kodak FOLDER] [--repeat 3]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from common import DEFAULT_KODAK, kodak_paths, print_table
from denoise_cli.core.imageio import samples_to_tensor
from denoise_cli.core.metrics import ssim

SKIMAGE_SCRIPT = ("import sys, numpy as np; from PIL import Image; "
                  "from skimage.metrics import structural_similarity as s; "
                  "a = np.asarray(Image.open(sys.argv[1])); b = np.asarray(Image.open(sys.argv[2])); "
                  "print(s(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255, "
                  "channel_axis=-1))")


def make_pair(kodak: Path, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    clean = Image.open(kodak_paths(kodak, [5])[0]).resize((width, height), Image.BICUBIC)
    a = np.asarray(clean)
    rng = np.random.default_rng(0)
    b = np.clip(np.rint(a + rng.normal(0, 10, a.shape)), 0, 255).astype(np.uint8)
    return a, b


def best_time(function, repeat: int):
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - started)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    denoise = shutil.which("denoise") or str(Path(sys.executable).parent / "denoise")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in ((512, 512), (3840, 2160)):
            a, b = make_pair(args.kodak, width, height)
            x, y = samples_to_tensor(a), samples_to_tensor(b)
            ssim(x, y)  # warm-up
            ours_t, ours = best_time(lambda: float(ssim(x, y).ssim[0]), args.repeat)
            ref_t, ref = best_time(lambda: structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                                                 use_sample_covariance=False, data_range=255,
                                                                 channel_axis=-1), args.repeat)
            pa, pb = Path(tmp) / f"a{width}.png", Path(tmp) / f"b{width}.png"
            Image.fromarray(a).save(pa)
            Image.fromarray(b).save(pb)
            cli_t, cli_out = best_time(lambda: subprocess.run([denoise, "ssim", pa, pb], capture_output=True,
                                                              check=True).stdout, args.repeat)
            script_t, _ = best_time(lambda: subprocess.run([sys.executable, "-c", SKIMAGE_SCRIPT, pa, pb],
                                                           capture_output=True, check=True), args.repeat)
            rows.append([f"{width}x{height}", ours, ref, abs(ours - ref), ours_t, ref_t, ref_t / ours_t,
                         cli_t, script_t, script_t / cli_t])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; best of {args.repeat}")
    print_table(["RGB pair", "ours", "skimage", "|diff|", "ours s", "skimage s", "speed-up",
                 "denoise ssim s", "skimage script s", "e2e speed-up"], rows)


if __name__ == "__main__":
    main()
