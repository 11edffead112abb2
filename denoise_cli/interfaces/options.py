"""The click pieces the commands share: option types (``auto`` or a number, a noise spec) and option groups."""
from __future__ import annotations

import math

import click

from ..core.device import DEVICE_CHOICES
from ..core.errors import DenoiseError
from ..core.noise import parse_noise
from ..methods.psf import parse_psf


class AutoOr(click.ParamType):
    """``auto`` or a number of ``kind`` (int or float) no smaller than ``minimum``."""

    def __init__(self, kind: type, minimum: float):
        self.kind, self.minimum = kind, minimum
        self.name = f"auto|{'INTEGER' if kind is int else 'NUMBER'}"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        number = self._number(value)
        if number is not None and not math.isfinite(number):
            self.fail(f"must be 'auto' or a finite number, got {value!r}", param, ctx)
        if number is None:
            what = "an integer" if self.kind is int else "a number"
            self.fail(f"{value!r} is neither 'auto' nor {what}", param, ctx)
        if number < self.minimum:
            self.fail(f"must be 'auto' or at least {self.minimum:g}, got {value!r}", param, ctx)
        return number

    def _number(self, value):
        if isinstance(value, bool):
            return None
        if self.kind is int:
            if isinstance(value, int):
                return value
            return int(value) if isinstance(value, str) and value.strip().isdigit() else None
        try:
            return float(value)
        except (TypeError, ValueError):
            return None


class FiniteFloat(click.FloatRange):
    """A float range that also refuses nan and infinity (click's FloatRange lets nan through every bound)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"must be a finite number, got {value!r}", param, ctx)
        return number


#: Seeds are 0 .. 2^63 - 1: the runner adds a 32-bit hash of each image's path, and torch takes 64 bits.
SEED_RANGE = click.IntRange(0, 2 ** 63 - 1)


class Shard(click.ParamType):
    """``I/N``: the I-th (1-based) of N deterministic slices of the input list, for job arrays."""

    name = "I/N"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        index, _, count = str(value).partition("/")
        if not (index.strip().isdigit() and count.strip().isdigit()) or not 1 <= int(index) <= int(count):
            self.fail(f"expected I/N with 1 <= I <= N, e.g. 2/8, got {value!r}", param, ctx)
        return int(index), int(count)


class NoiseType(click.ParamType):
    """``gaussian:SIGMA`` (0-255 scale) or ``poisson:PEAK``."""

    name = "gaussian:SIGMA|poisson:PEAK"

    def convert(self, value, param, ctx):
        try:
            return parse_noise(value) if isinstance(value, str) else value
        except DenoiseError as exc:
            self.fail(str(exc), param, ctx)


#: ``deblur`` without ``--psf``: it has no default, because a blind estimate can fail on some photos.
NO_PSF = ("deblur needs --psf: the blur as a file or a model (gaussian:SIGMA, motion:LENGTH[,ANGLE], box:N, disk:R), "
          "or 'auto' to estimate it from the image (blind)")


class PsfSpec(click.ParamType):
    """``auto``, a PSF model (``gaussian:SIGMA``, ``motion:L[,DEG]``, ``box:N``, ``disk:R``) or a PSF file, checked
    here (read and normalised once) so that a bad PSF is a usage error before any work; the value stays the text."""

    name = "auto|MODEL:SIZE|FILE"

    def convert(self, value, param, ctx):
        if value == "auto":
            return value
        try:
            parse_psf(str(value))
        except DenoiseError as exc:
            self.fail(str(exc), param, ctx)
        return str(value)


def _common_envvar(name: str) -> str:
    return f"DENOISE_{name.upper()}"


def solver_options(tol_help: str, tol_auto: bool = False):
    """``--max-iter`` and ``--tol`` (what the tolerance measures is the method's: ``tol_help``; ``tol_auto``: it may
    also be ``auto``)."""
    def add(f):
        tol_type = AutoOr(float, 0) if tol_auto else FiniteFloat(min=0)
        f = click.option("--tol", type=tol_type, show_default=True, help=tol_help)(f)
        return click.option("--max-iter", type=click.IntRange(min=1), show_default=True)(f)
    return add


def device_option(f):
    return click.option("--device", type=str, metavar="|".join(DEVICE_CHOICES) + "|cuda:N", show_default=True,
                        envvar=_common_envvar("device"), help="Where to compute; an explicit device that is "
                        "missing is an error.")(f)


def batch_options(f):
    """Options every batch command (tv, zsn2n, noise) shares."""
    options = [
        click.option("-o", "--output", type=str, help="Output file for a single input ('-' for stdout)."),
        click.option("--output-dir", type=click.Path(file_okay=False), help="Write outputs here, mirroring the "
                     "input folders."),
        click.option("--overwrite", is_flag=True, envvar=_common_envvar("overwrite"),
                     help="Replace existing outputs (inputs are never overwritten)."),
        click.option("--skip-existing", is_flag=True, envvar=_common_envvar("skip_existing"),
                     help="Skip inputs whose output exists (resume a batch)."),
        click.option("--reference", type=click.Path(), help="Clean image or folder (paired by relative path or "
                     "stem) for PSNR/SSIM of input and output."),
        click.option("--report", type=click.Path(dir_okay=False), help="Write a report: PATH.json or PATH.csv."),
        click.option("--seed", type=SEED_RANGE, show_default=True, envvar=_common_envvar("seed"),
                     help="Seed for synthetic noise and stochastic methods."),
        device_option,
        click.option("--jobs", type=AutoOr(int, 1), show_default=True, envvar=_common_envvar("jobs"),
                     help="Worker processes over the images; 'auto': one per core for a batch on the CPU, none "
                          "(in this process) for one image or a GPU."),
        click.option("--threads", type=AutoOr(int, 1), show_default=True, envvar=_common_envvar("threads"),
                     help="CPU threads in all ('auto': OMP_NUM_THREADS if set, else every core), shared by the "
                          "workers."),
        click.option("--engine", type=click.Choice(["local", "dask"]), show_default=True,
                     envvar=_common_envvar("engine"), help="local: this machine; dask: a Dask cluster (a new local "
                     "one, or --scheduler's)."),
        click.option("--scheduler", type=str, envvar=_common_envvar("scheduler"), metavar="ADDRESS",
                     help="A running Dask scheduler, e.g. tcp://host:8786 (implies --engine dask)."),
        click.option("--shard", type=Shard(), envvar=_common_envvar("shard"),
                     help="Run only the I-th of N slices of the inputs (job arrays); merge the reports with "
                          "'denoise report merge'."),
        click.option("-q", "--quiet", is_flag=True, envvar=_common_envvar("quiet"),
                     help="Print nothing but errors."),
        click.option("-v", "--verbose", count=True, envvar=_common_envvar("verbose"),
                     help="Print the device and each image's facts."),
    ]
    for option in reversed(options):
        f = option(f)
    return click.argument("inputs", nargs=-1, required=True, metavar="IMAGE...")(f)


def experiment_options(f):
    f = click.option("--save-noisy", is_flag=True, help="With --add-noise: keep the noisy copy (NAME.noisy.EXT).")(f)
    return click.option("--add-noise", type=NoiseType(), help="Treat each input as clean: add this noise (seeded "
                        "by --seed), denoise, and score against the clean image.")(f)
