"""Wall time and peak memory of `denoise deblur` with a known PSF on a 12-megapixel RGB photo (4000x3000).

Makes the photo from Kodak images, blurs it by the PSF (scipy, with the light from outside the frame) and adds
Gaussian noise, then runs the installed command in a child process at its defaults (``--weight auto``) and
reads its peak RSS from the OS. Also gives the PSNR against the sharp photo. With ``--blind`` the photo is blurred by
``--psf`` as before but the command runs with ``--psf auto`` (the kernel estimated on the centre window), and the
table adds the estimate's own time from the command's report.

The photo (``--photo``): ``tiles`` (the default) lays the 500x500 Kodak photos side by side at their own resolution
(the second round mirrored, the third upside down), so its pixels are as sharp as the scans; ``upscaled`` is Kodak 21
resized 6-8x by bicubic interpolation, the photo of the rows before 2026-12-04 (d). The interpolation is itself a
blur: a blind estimate counts it as blur (with motion:9,30 the kernel found spans about 15 x 22 pixels, the true one
7 x 9), and the deconvolution is then judged against the soft photo.

    python benchmarks/deblur_large.py [--kodak FOLDER] [--psf gaussian:1.5] [--size 4000x3000] [--device cpu]
    python benchmarks/deblur_large.py --psf motion:9,30 --blind [--photo upscaled]
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
import scipy.signal
from PIL import Image

from common import DEFAULT_KODAK, kodak_paths, print_table
from denoise_cli.methods.psf import parse_psf

#: Run argv[1:] and print its peak resident set size in KiB.
PEAK_OF_CHILD = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
                 "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    parser.add_argument("--psf", default="gaussian:1.5")
    parser.add_argument("--size", default="4000x3000")
    parser.add_argument("--sigma", type=float, default=2.0, help="noise sigma, 0-255 scale")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--blind", action="store_true", help="run the command with --psf auto")
    parser.add_argument("--photo", choices=("tiles", "upscaled"), default="tiles",
                        help="Kodak photos side by side at their own resolution, or Kodak 21 upscaled")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    denoise = shutil.which("denoise") or str(Path(sys.executable).parent / "denoise")
    kernel = parse_psf(args.psf).numpy()
    kh, kw = kernel.shape
    with tempfile.TemporaryDirectory() as tmp:
        sharp = make_photo(args.kodak, args.photo, width + kw - 1, height + kh - 1)
        blurred = np.stack([scipy.signal.fftconvolve(sharp[..., c], kernel, mode="valid") for c in range(3)], -1)
        top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
        sharp = sharp[top:top + height, left:left + width]
        rng = np.random.default_rng(0)
        observed = np.clip(np.rint(blurred * 255 + rng.normal(0, args.sigma, blurred.shape)), 0, 255).astype(np.uint8)
        source, output, report = Path(tmp) / "big.png", Path(tmp) / "out.png", Path(tmp) / "report.json"
        Image.fromarray(observed).save(source, compress_level=1)
        del blurred
        psf = "auto" if args.blind else args.psf
        argv = [denoise, "deblur", str(source), "--psf", psf, "-o", str(output), "-q", "--device", args.device,
                "--report", str(report)]
        started = time.perf_counter()
        peak_kib = int(subprocess.run([sys.executable, "-c", PEAK_OF_CHILD, *argv], check=True,
                                      capture_output=True, text=True).stdout)
        seconds = time.perf_counter() - started
        restored = np.asarray(Image.open(output), dtype=np.float32) / 255
        scores = [10 * np.log10(1 / np.mean((image - sharp) ** 2)) for image in (observed / 255.0, restored)]
        kernel_seconds = json.loads(report.read_text())["images"][0]["facts"].get("psf_seconds", [""])[0]
    print_table(["command", "blurred by", "image", "seconds (end to end)", "of which the kernel estimate", "peak RSS",
                 "PSNR in", "PSNR out"],
                [[f"deblur --psf {psf}", args.psf, f"{width}x{height} RGB 8-bit, {args.photo}", seconds, kernel_seconds,
                  f"{peak_kib / 2**20:.2f} GiB", scores[0], scores[1]]])


def make_photo(kodak: Path, kind: str, width: int, height: int) -> np.ndarray:
    """A sharp (height, width, 3) float32 RGB photo in [0, 1]: Kodak 1-24 tiled at their own resolution (rows of
    tiles left to right; the second round mirrored left-right, the third upside down), or Kodak 21 upscaled (bicubic)."""
    if kind == "upscaled":
        photo = Image.open(kodak_paths(kodak, [21])[0]).resize((width, height), Image.BICUBIC)
        return np.asarray(photo, dtype=np.float32) / 255
    tiles = [np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255
             for path in kodak_paths(kodak, range(1, 25))]
    tile_h, tile_w = tiles[0].shape[:2]
    rows, columns = -(-height // tile_h), -(-width // tile_w)
    if rows * columns > 3 * len(tiles):
        raise SystemExit(f"{width}x{height} needs more than three rounds of the {len(tiles)} Kodak photos")
    tiles += [tile[:, ::-1] for tile in tiles] + [tile[::-1] for tile in tiles]
    grid = [np.concatenate(tiles[row * columns:(row + 1) * columns], axis=1) for row in range(rows)]
    return np.ascontiguousarray(np.concatenate(grid, axis=0)[:height, :width])


if __name__ == "__main__":
    main()
