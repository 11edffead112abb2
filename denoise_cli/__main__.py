"""``python -m denoise_cli`` and the installed ``denoise`` command.

The command's modules (torch among them) are imported here, inside the handler for Ctrl-C, so that an interrupt
in the first second prints one line and exits 130 instead of a traceback from the middle of an import.
"""
import gc
import os
import sys


def run() -> None:
    # torch's OpenMP threads spin while they wait for work; when other processes hold the cores (two `denoise` at
    # once, a shell loop with xargs -P) the spinning threads starve the working ones and a run takes 10-40x longer.
    # Passive waiting costs a single run little (benchmarks/concurrency.py) and keeps shared use from collapsing.
    # It must be set before torch loads its OpenMP runtime; a user's own setting wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Importing torch makes a quarter of a million long-lived objects, and the cyclic garbage collector would walk
    # them over and over: as they appear, and again in every full collection after. Pause it for the imports, then
    # freeze what exists (frozen objects are left out of later collections): `denoise ssim` on a 4K pair goes from
    # 1.5-1.8 s to 1.4 s.
    try:
        gc.disable()
        from .interfaces.main import run as run_command
        gc.freeze()
        gc.enable()
    except KeyboardInterrupt:
        sys.stderr.write("\ndenoise: interrupted\n")
        sys.stderr.flush()
        os._exit(130)
    run_command()


if __name__ == "__main__":
    run()
