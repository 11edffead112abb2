"""``python -m denoise_cli`` and the installed ``denoise`` command.

The command's modules (torch among them) are imported here, under a Ctrl-C handler of their own that prints one line
and exits 130 at once, instead of a KeyboardInterrupt raised inside an import, where it prints a traceback or can be
swallowed by a library's catch-all ``except`` (the suspected cause of two runs in a loaded test suite that went on
as if nothing was pressed). Nothing has been written yet, so there is nothing to unwind.
"""
import gc
import os
import signal
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
    previous = signal.signal(signal.SIGINT, _interrupted_while_loading)
    gc.disable()
    from .interfaces.main import run as run_command
    gc.freeze()
    gc.enable()
    signal.signal(signal.SIGINT, previous)
    run_command()


def _interrupted_while_loading(signum, frame) -> None:
    sys.stderr.write("\ndenoise: interrupted\n")
    sys.stderr.flush()
    os._exit(130)


if __name__ == "__main__":
    run()
