"""Every command's accelerator path against the CPU, end to end: one short run for a session that is lent a GPU.

Runs the installed command on small real images, once with ``--device cpu`` and once with ``--device DEVICE``, at
the defaults: ``tv`` (1024^2 RGB Kodak 13-16 mosaic, sigma 25), ``zsn2n`` (Kodak 13 256^2 crop, sigma 25: the
paper's protocol for one image), ``deblur`` with a known PSF (the centre 448^2 of Kodak 14, motion 9 at 30 degrees,
sigma 2) and blind (``--psf auto --psf-size 15``, not the default 31, to keep the run short; the same image).
Prints per task and device the wall time (interpreter start-up included), the PSNR against the clean image, and the
PSNR between the CPU's and the device's outputs (ZS-N2N's fit is random on any device: judge it by the PSNR against
the clean image).

    python benchmarks/device_check.py --device cuda [--tasks tv,zsn2n,deblur,blind] [--kodak FOLDER]
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from common import DEFAULT_KODAK, blur_valid, kodak_mosaic, kodak_paths, load_crop, noisy, print_table, save_png
from denoise_cli.core.metrics import psnr
from denoise_cli.methods.psf import parse_psf

TASKS = ("tv", "zsn2n", "deblur", "blind")
MOTION = "motion:9,30"


def inputs(kodak: Path, task: str) -> tuple[torch.Tensor, torch.Tensor, list]:
    """(clean, degraded, the command's arguments after the input) of one task; images (1, C, H, W) in [0, 1]."""
    if task == "tv":
        clean = kodak_mosaic(kodak, [13, 14, 15, 16], 1024)
        return clean, noisy(clean, "gaussian:25", seed=0), ["tv"]
    if task == "zsn2n":
        clean = load_crop(kodak_paths(kodak, [13])[0])
        return clean, noisy(clean, "gaussian:25", seed=13), ["zsn2n"]
    blurred, clean = blur_valid(load_crop(kodak_paths(kodak, [14])[0], None), parse_psf(MOTION), 448)
    psf = ["--psf", MOTION] if task == "deblur" else ["--psf", "auto", "--psf-size", "15"]
    return clean, noisy(blurred, "gaussian:2", seed=14), ["deblur", *psf]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tasks", default=",".join(TASKS))
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    args = parser.parse_args()
    denoise = shutil.which("denoise") or str(Path(sys.executable).parent / "denoise")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for task in args.tasks.split(","):
            clean, degraded, command = inputs(Path(args.kodak), task)
            source = Path(folder) / f"{task}.png"
            save_png(degraded, source)
            outputs = {}
            for device in ("cpu", args.device):
                target = Path(folder) / f"{task}.{device.replace(':', '_')}.png"
                started = time.perf_counter()
                subprocess.run([denoise, *command[:1], str(source), *command[1:], "-o", str(target), "--overwrite",
                                "--device", device, "-q"], check=True)
                seconds = time.perf_counter() - started
                outputs[device] = load_crop(target, None)
                rows.append([task, device, seconds, float(psnr(outputs[device], clean)),
                             float(psnr(outputs[device], outputs["cpu"])) if device != "cpu" else "-"])
    print(f"torch {torch.__version__}; {args.device}: "
          f"{torch.cuda.get_device_name() if args.device.startswith('cuda') else args.device}")
    print_table(["task", "device", "seconds", "PSNR vs clean dB", "PSNR vs CPU output dB"], rows)


if __name__ == "__main__":
    main()
