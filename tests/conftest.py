"""Shared helpers: drive the real ``main()`` in-process or as a subprocess, and make small test images."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from denoise_cli.interfaces.main import main

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_images"

torch.set_num_threads(min(2, torch.get_num_threads()))

# A shell without job control starts its background commands (`pytest ... &`) with SIGINT ignored, and an ignored
# signal stays ignored in every child: the commands the Ctrl-C tests interrupt would never hear it. With a handler
# here, children start with the default action again (handlers are reset at exec; only "ignore" is inherited).
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@dataclass
class Result:
    code: int
    stdout: bytes
    stderr: str


def run_cli(*args: str, stdin: bytes | None = None, env: dict | None = None) -> Result:
    """Run ``denoise ARGS`` in this process through the real entry point (exit codes, error lines and all)."""
    runner = CliRunner()
    with runner.isolation(input=stdin, env=env) as (out, err, _):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        sys.stdout.flush()
        sys.stderr.flush()
        return Result(code, out.getvalue(), err.getvalue().decode())


def run_subprocess(*args: str, stdin: bytes | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m denoise_cli ARGS`` as a separate process."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "denoise_cli", *map(str, args)], input=stdin,
                          capture_output=True, env=env, **kwargs)


def stderr_when_done(process: subprocess.Popen, timeout: float) -> str:
    """The stderr of ``process`` once it ends; past ``timeout`` seconds it is killed, with its process group when it
    leads one (workers left running would slow every later test), and the test fails."""
    try:
        return process.communicate(timeout=timeout)[1].decode()
    except subprocess.TimeoutExpired:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, signal.SIGKILL)
        process.kill()
        try:
            stderr = process.communicate(timeout=10)[1].decode()
        except subprocess.TimeoutExpired:  # its orphaned workers still hold the pipe: give up reading it
            stderr = "(unread: the pipe is held open by processes it left behind)"
        raise AssertionError(f"still running after {timeout} s; stderr: {stderr!r}") from None


def noisy_copy(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    """uint8 image plus Gaussian noise (0-255 scale), clipped and rounded."""
    rng = np.random.default_rng(seed)
    return np.clip(np.rint(clean + rng.normal(0, sigma, clean.shape)), 0, 255).astype(np.uint8)


def save(path: Path, array: np.ndarray, **options) -> Path:
    Image.fromarray(array).save(path, **options)
    return path


@pytest.fixture
def retina() -> np.ndarray:
    """A 96x96 RGB crop of the retina sample (public domain)."""
    return np.asarray(Image.open(SAMPLES / "retina.png"))[150:246, 150:246].copy()


@pytest.fixture
def grass() -> np.ndarray:
    """A 64x80 gray crop of the grass sample (CC0)."""
    return np.asarray(Image.open(SAMPLES / "grass.png"))[:64, :80].copy()
