"""TV quality on images not used for calibration: ``--weight auto`` against the best lambda, and colour coupling
against scikit-image's per-channel TV at its best lambda.

Protocol: Kodak24 images 13-24 (1-12 calibrated the rule), 256x256 centre crops, Gaussian sigma 15, 25, 50 on the
0-255 scale, noisy images stored as 8-bit, all PSNRs on the output stored as 8-bit. The best lambda of each case is
found by golden-section search to 0.5% (a grid as fine as that) between 0.4x and 2.5x the auto lambda. Every solve
stops at a certified RMSE bound of 1e-3 (the true error is 3-10x smaller; no effect on a PSNR's 2nd decimal).
scikit-image's denoise_tv_chambolle runs with channel_axis=-1 (per channel), eps=1e-5, over 0.005-0.5.

    python benchmarks/tv_quality.py [--kodak FOLDER] [--images 13-24] [--modes ...] [--skip-peer]

--skip-peer leaves out scikit-image's best-lambda search (most of the run time) to measure --weight auto alone.
"""
from __future__ import annotations

import argparse
import math
import statistics

import torch
from skimage.restoration import denoise_tv_chambolle

from common import (DEFAULT_KODAK, add_modes_option, golden_max, kodak_paths, load_crop, noisy, print_table,
                    stored_psnr)
from denoise_cli.methods.tv import tv_denoise

SIGMAS = (15, 25, 50)
TOL = 1e-3
MODES = [("isotropic", "coupled"), ("isotropic", "separate"), ("anisotropic", "coupled"),
         ("anisotropic", "separate")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    parser.add_argument("--images", default="13-24")
    add_modes_option(parser, MODES)
    parser.add_argument("--skip-peer", action="store_true", help="no scikit-image comparison (much faster)")
    args = parser.parse_args()
    modes = [tuple(mode.split("/")) for mode in args.modes.split(",")]
    first, last = map(int, args.images.split("-"))
    torch.set_num_threads(2)
    results = {}  # (mode or "skimage", sigma) -> list of (auto psnr, best psnr)
    for number, path in zip(range(first, last + 1), kodak_paths(args.kodak, range(first, last + 1))):
        clean = load_crop(path)
        for sigma in SIGMAS:
            x = noisy(clean, f"gaussian:{sigma}", seed=1000 * number + sigma)
            for norm, channels in modes:
                auto, facts = tv_denoise(x, "auto", norm, channels, tol=TOL)
                weight = facts["weight"][0]
                _, best = golden_max(lambda w: stored_psnr(tv_denoise(x, w, norm, channels, tol=TOL)[0], clean),
                                     0.4 * weight, 2.5 * weight, rel_tol=0.005)
                results.setdefault(((norm, channels), sigma), []).append((stored_psnr(auto, clean), best))
            if args.skip_peer:
                continue
            f = x[0].permute(1, 2, 0).double().numpy()

            def chambolle(w):
                u = denoise_tv_chambolle(f, weight=w, eps=1e-5, max_num_iter=2000, channel_axis=-1)
                return stored_psnr(torch.from_numpy(u).permute(2, 0, 1)[None].float(), clean)

            _, best = golden_max(chambolle, 0.005, 0.5, rel_tol=0.005)
            results.setdefault(("skimage", sigma), []).append((best, best))
        print(f"kodim{number:02d} done", flush=True)
    rows = []
    for sigma in SIGMAS:
        peer = math.nan if args.skip_peer else statistics.mean(b for _, b in results[("skimage", sigma)])
        for mode in modes:
            pairs = results[(mode, sigma)]
            auto = statistics.mean(a for a, _ in pairs)
            best = statistics.mean(b for _, b in pairs)
            worst_gap = max(b - a for a, b in pairs)
            rows.append([sigma, *mode, auto, best, best - auto, worst_gap, auto - peer])
        if not args.skip_peer:
            rows.append([sigma, "skimage", "per channel", "", peer, "", "", ""])
    print(f"Kodak {args.images}, 256x256 centre crops, mean PSNR (dB) over {last - first + 1} images per sigma")
    print_table(["sigma", "norm", "channels", "auto", "best lambda", "best - auto", "worst case",
                 "auto - skimage best"], rows)


if __name__ == "__main__":
    main()
