"""TV speed: time to reach RMSE <= 0.1/255 from the converged solution, ours against scikit-image.

Image: a 2x2 mosaic of four whole Kodak photos (kodim13-16, 500x500 each) resized to 1024x1024 (bicubic), with
Gaussian noise sigma 25, stored as 8-bit; lambda from our auto rule. The converged solution is ours with a certified
RMSE bound of ``--reference-tol`` (default 1e-4 = 0.026/255; float32 cannot certify much below 3e-5). For each solver the fewest iterations that
reach RMSE <= 0.1/255 are found (doubling, then bisection to 5%; 10% for scikit-image, whose runs are long), and the
run with that count is timed (best of ``--repeat``). scikit-image's denoise_tv_chambolle solves the per-channel
(separate, isotropic) problem; ours is timed in that mode and in the default coupled mode.

    python benchmarks/tv_speed.py [--kodak FOLDER] [--size 1024] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from skimage.restoration import denoise_tv_chambolle

from common import DEFAULT_KODAK, kodak_paths, load_crop, noisy, print_table
from denoise_cli.methods.tv import auto_weight, tv_denoise

TARGET = 0.1 / 255


def fewest_iterations(rmse_after, start: int = 8, limit: int = 20000, precision: float = 0.05) -> int:
    """The smallest n with rmse_after(n) <= TARGET, to within ``precision``."""
    high = start
    while rmse_after(high) > TARGET:
        high *= 2
        if high > limit:
            raise SystemExit(f"did not reach the target in {limit} iterations")
    low = high // 2 if high > start else 0
    while high - low > max(1, int(high * precision)):
        middle = (low + high) // 2
        if rmse_after(middle) <= TARGET:
            high = middle
        else:
            low = middle
    return high


def timed(function, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--reference-tol", type=float, default=1e-4)
    args = parser.parse_args()
    torch.set_num_threads(2)
    tiles = [load_crop(p, None) for p in kodak_paths(args.kodak, [13, 14, 15, 16])]
    mosaic = torch.cat([torch.cat(tiles[:2], dim=3), torch.cat(tiles[2:], dim=3)], dim=2)
    clean = F.interpolate(mosaic, size=(args.size, args.size), mode="bicubic", align_corners=False).clamp(0, 1)
    x = noisy(clean, "gaussian:25", seed=0)
    weight = float(auto_weight(x, "isotropic", "separate")[0][0])
    device = torch.device(args.device)
    x_dev = x.to(device)
    rows = []

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for channels in ("separate", "coupled"):
        reference, facts = tv_denoise(x_dev, weight, "isotropic", channels, tol=args.reference_tol,
                                       max_iter=20000)
        assert facts["converged"], facts

        def ours(n):
            u, _ = tv_denoise(x_dev, weight, "isotropic", channels, tol=0, max_iter=n, check_every=n)
            sync()
            return u

        n = fewest_iterations(lambda k: float((ours(k) - reference).pow(2).mean().sqrt()))
        rows.append([f"denoise tv ({channels})", str(device), n, timed(lambda: ours(n), args.repeat)])
        if channels == "separate":
            f = x[0].permute(1, 2, 0).double().numpy()
            ref_np = reference[0].permute(1, 2, 0).cpu().double().numpy()

            def chambolle(k):
                return denoise_tv_chambolle(f, weight=weight, eps=0.0, max_num_iter=k, channel_axis=-1)

            m = fewest_iterations(lambda k: float(np.sqrt(((chambolle(k) - ref_np) ** 2).mean())), start=256,
                                  precision=0.1)
            rows.append(["skimage denoise_tv_chambolle (separate)", "cpu", m, timed(lambda: chambolle(m), 1)])
    peer = next(r[3] for r in rows if r[0].startswith("skimage"))
    for row in rows:
        row.append(peer / row[3])
    print(f"{args.size}x{args.size} RGB, sigma 25, lambda {weight:.4f}, target RMSE 0.1/255 from the converged "
          f"solution; torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print_table(["solver", "device", "iterations", "seconds", "speed-up vs skimage"], rows)


if __name__ == "__main__":
    main()
