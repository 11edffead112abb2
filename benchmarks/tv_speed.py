"""TV speed at the settings a user runs: `denoise tv` end to end against scikit-image's `denoise_tv_chambolle` run
to the same accuracy.

Image: a 2x2 mosaic of four whole Kodak photos (``--images``, default kodim13-16; the weight rule was calibrated on
1-12, and the solver's stopping check was developed on 13-16, so 17-20 are held out from both) resized
to SIZE x SIZE (bicubic), Gaussian noise sigma 25, written as an 8-bit PNG. Both solvers get the same lambda (our
auto rule for the problem, passed as ``--weight``); everything else is at its default (``--tol auto``: a certified
RMSE of a quarter of an 8-bit level).

The converged solution is our solver in float64 to a certified RMSE of 1e-5 (0.0026/255). Rows:
- ``denoise tv noisy.png -o out.png --weight W --channels separate`` (scikit-image's problem) and the default coupled
  mode: wall time of the installed command (best of ``--repeat``), its iteration count from its report, and its
  accuracy: the same solve in-process (same iterations) against the converged solution before rounding, and the
  share of the 8-bit output's values that differ from the rounded converged solution.
- scikit-image: a script that reads the PNG with Pillow, runs ``denoise_tv_chambolle(weight=W, eps=0,
  max_num_iter=M, channel_axis=-1)`` and writes the PNG, M the fewest iterations that reach RMSE <= 0.1/255 (found
  in-process by doubling, then bisection to 10%); and the same script at scikit-image's defaults (eps 2e-4, at most
  200 iterations), which is what its users get.
Every command's time is its best of ``--repeat`` runs. The speed-up is the time of scikit-image run to 0.1/255 over
ours, end to end.

    python benchmarks/tv_speed.py [--kodak FOLDER] [--size 1024] [--repeat 2]
"""
from __future__ import annotations

import argparse
import functools
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from skimage.restoration import denoise_tv_chambolle

from common import DEFAULT_KODAK, kodak_mosaic, noisy, parse_numbers, print_table, save_png
from denoise_cli.core.imageio import as_stored
from denoise_cli.methods.operators import group_dims
from denoise_cli.methods.rof import solve_rof
from denoise_cli.methods.tv import auto_weight, tv_denoise

TARGET = 0.1 / 255
#: The peer as a user runs it: read, denoise, write. argv: input, output, weight, iterations ("default": its own
#: stopping rule and cap).
CHAMBOLLE_SCRIPT = """
import sys
import numpy as np
from PIL import Image
from skimage.restoration import denoise_tv_chambolle
source, target, weight, iterations = sys.argv[1:]
f = np.asarray(Image.open(source), dtype=np.float64) / 255
stop = {} if iterations == "default" else {"eps": 0.0, "max_num_iter": int(iterations)}
u = denoise_tv_chambolle(f, weight=float(weight), channel_axis=-1, **stop)
Image.fromarray(np.rint(np.clip(u, 0, 1) * 255).astype(np.uint8)).save(target)
"""


def fewest_iterations(rmse_after, start: int, limit: int = 20000, precision: float = 0.1) -> int:
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


def wall_time(argv: list, repeat: int) -> float:
    """Best wall time of a command, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - started)
    return best


def rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).pow(2).mean().sqrt())


def changed_levels(result: torch.Tensor, converged: torch.Tensor) -> float:
    """Percent of the 8-bit values of ``result`` that differ from those of the converged solution."""
    return 100.0 * float((as_stored(result, np.uint8) != as_stored(converged.float(), np.uint8)).double().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kodak", default=DEFAULT_KODAK)
    parser.add_argument("--images", default="13-16", help="four Kodak numbers for the 2x2 mosaic (e.g. 17-20)")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    numbers = parse_numbers(args.images)
    if len(numbers) != 4:
        raise SystemExit(f"--images needs four Kodak numbers, got {numbers}")
    clean = kodak_mosaic(args.kodak, numbers, args.size)
    x = noisy(clean, "gaussian:25", seed=0)
    denoise = str(Path(sys.executable).with_name("denoise"))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        source, target, report = (str(Path(folder) / name) for name in ("noisy.png", "out.png", "report.json"))
        save_png(x, source)
        for channels in ("separate", "coupled"):
            weight = float(auto_weight(x, "isotropic", channels)[0][0])
            converged, _, facts = solve_rof(x.double(), torch.tensor([weight], dtype=torch.float64),
                                            group_dims("isotropic", channels), 20000, 1e-5, 50, None)
            assert facts["converged"], facts
            argv = [denoise, "tv", source, "-o", target, "--overwrite", "--weight", repr(weight),
                    "--channels", channels, "--report", report, "-q"]
            seconds = wall_time(argv, args.repeat)
            iterations = json.loads(Path(report).read_text())["images"][0]["iterations"]
            ours, facts = tv_denoise(x, weight, "isotropic", channels, output_step=1 / 255)
            assert facts["iterations"] == iterations, (facts["iterations"], iterations)
            rows.append([f"denoise tv --channels {channels} (default stop)", weight, iterations, seconds,
                         rmse(ours, converged) * 255, changed_levels(ours, converged)])
            if channels != "separate":
                continue
            f = x[0].permute(1, 2, 0).double().numpy()
            converged_np = converged[0].permute(1, 2, 0).numpy()

            @functools.lru_cache(maxsize=None)  # the search's last run is the one the table reports
            def chambolle(count: int) -> np.ndarray:
                return denoise_tv_chambolle(f, weight=weight, eps=0.0, max_num_iter=count, channel_axis=-1)

            count = fewest_iterations(lambda k: float(np.sqrt(((chambolle(k) - converged_np) ** 2).mean())), 64)
            for label, setting in ((f"{count} (to 0.1/255)", str(count)), ("defaults", "default")):
                result = chambolle(count) if setting != "default" else denoise_tv_chambolle(
                    f, weight=weight, channel_axis=-1)
                result = torch.from_numpy(result).permute(2, 0, 1)[None]
                seconds = wall_time([sys.executable, "-c", CHAMBOLLE_SCRIPT, source, target, repr(weight), setting],
                                    args.repeat)
                rows.append([f"skimage denoise_tv_chambolle (separate), iterations {label}", weight,
                             count if setting != "default" else "eps 2e-4", seconds,
                             rmse(result, converged) * 255, changed_levels(result, converged)])
    peer = next(row[3] for row in rows if "to 0.1/255" in row[0])
    for row in rows:
        row.append(peer / row[3])
    print(f"{args.size}x{args.size} RGB 8-bit PNG, Kodak {args.images} mosaic, sigma 25; end to end (read, solve, "
          f"write, interpreter start-up); torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print_table(["command", "weight", "iterations", "seconds", "RMSE from converged (/255)",
                 "8-bit values changed %", "speed-up vs skimage to 0.1/255"], rows)


if __name__ == "__main__":
    main()
