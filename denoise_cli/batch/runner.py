"""Batch runs: jobs -> method -> outputs, with references, synthetic noise, per-file errors and records.

Usable from Python without click::

    from denoise_cli.batch.jobs import plan_jobs
    from denoise_cli.batch.runner import RunOptions, run_batch
    from denoise_cli.methods import METHODS
    jobs = plan_jobs(["photos/"], output_dir="clean/", suffix=".denoised")
    records = run_batch(jobs, METHODS["tv"], {"weight": "auto"}, RunOptions())

A file that fails is recorded (status ``failed`` and the cause) and the batch goes on; outputs are written atomically;
an input is never overwritten; existing outputs are kept unless ``overwrite``.
"""
from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch

from ..core import imageio
from ..core.errors import DenoiseError
from ..core.imageio import STDIO, Image
from .jobs import Job, same_file
from ..methods import Method
from ..core.metrics import WINDOW_SIZE, psnr, ssim
from ..core.noise import NoiseSpec, add_noise

@dataclass
class RunOptions:
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    overwrite: bool = False
    skip_existing: bool = False
    add_noise: Optional[NoiseSpec] = None
    save_noisy: bool = False


class Events:
    """What the runner tells its caller; the CLI overrides these to draw progress bars and print lines."""

    def started(self, index: int, total: int, job: Job) -> None:
        """Image ``index`` (0-based) of ``total`` starts."""

    def progress(self, done: int, steps: int, facts: dict) -> None:
        """A step of the method on the current image."""

    def finished(self, record: dict) -> None:
        """An image is done, skipped or failed; ``record`` is its report row."""


# ------------------------------------------------------------------------------------------------------------- run

def run_batch(jobs: Sequence[Job], method: Method, settings: dict, options: RunOptions,
              events: Optional[Events] = None, params: Optional[dict] = None,
              on_interrupt: Optional[Callable[[list], None]] = None) -> list[dict]:
    """Run ``method`` with ``settings`` on every job and return one record per job.

    ``params`` (name -> {"value", "source"}) goes into each record as is (default: the settings, source unknown).
    On Ctrl-C the records so far are passed to ``on_interrupt`` and KeyboardInterrupt is raised again; the file being
    written is never left half-written.
    """
    events = events or Events()
    params = params if params is not None else {k: {"value": v, "source": "argument"} for k, v in settings.items()}
    records: list[dict] = []
    written: dict = {}
    try:
        for index, job in enumerate(jobs):
            events.started(index, len(jobs), job)
            record = _run_job(job, method, settings, options, events, params, written)
            records.append(record)
            events.finished(record)
    except KeyboardInterrupt:
        if on_interrupt is not None:
            on_interrupt(records)
        raise
    return records


def _new_record(job: Job, method: Method, options: RunOptions, params: dict) -> dict:
    return {
        "input": job.source, "output": job.output, "reference": job.reference, "method": method.name,
        "params": params, "device": str(options.device), "noise": str(options.add_noise or "") or None,
        "seconds": None, "iterations": None, "sigma_estimate": None, "weight": None,
        "psnr_in": None, "ssim_in": None, "psnr_out": None, "ssim_out": None,
        "psnr_in_identical": False, "psnr_out_identical": False,
        "status": "done", "error": None, "facts": {},
    }


def _run_job(job: Job, method: Method, settings: dict, options: RunOptions, events: Events, params: dict,
             written: dict) -> dict:
    record = _new_record(job, method, options, params)
    started = time.perf_counter()
    try:
        if not _check_output(job, options, written):
            record["status"] = "skipped"
            return record
        image = imageio.read_image(job.source)
        clean = image
        if options.add_noise is not None:
            image = _noisy_copy(image, job, options)
            if options.save_noisy:
                _write_once(_noisy_path(job), image, options, written)
        reference = imageio.read_image(job.reference) if job.reference else (
            clean if options.add_noise is not None else None)
        if reference is not None:
            _check_same_shape(image, reference, job)
        result, facts = _denoise(image, method, settings, options, events)
        output = image.with_pixels(result)
        _write_once(job.output, output, options, written)
        record["facts"] = facts
        for key in ("iterations", "weight"):
            record[key] = _single(facts.get(key))
        record["sigma_estimate"] = _single(facts.get("sigma"))
        if reference is not None:
            record.update(_scores(image, output, reference))
    except DenoiseError as exc:
        record.update(status="failed", error=str(exc))
    except (OSError, RuntimeError, ValueError) as exc:  # e.g. disk full, out of memory: this file fails, not the batch
        record.update(status="failed", error=f"{job.source}: {type(exc).__name__}: {exc}".splitlines()[0])
    record["seconds"] = round(time.perf_counter() - started, 4)
    return record


def _single(value):
    """Facts are per image of a batch; the runner denoises one image at a time."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def _check_output(job: Job, options: RunOptions, written: dict) -> bool:
    """False to skip the job; raise DenoiseError where writing would lose something."""
    if job.output == STDIO:
        return True
    target = Path(job.output)
    if target.exists() and same_file(target, job.source):
        raise DenoiseError(f"{job.source}: the output would overwrite the input")
    key = os.path.abspath(target)
    if key in written:
        raise DenoiseError(f"{job.source}: output {job.output} was already written by {written[key]} in this run")
    if target.exists():
        if options.skip_existing:
            return False
        if not options.overwrite:
            raise DenoiseError(f"{job.source}: output {job.output} exists (use --overwrite or --skip-existing)")
    imageio.format_for_path(job.output)
    return True


def _write_once(path: str, image: Image, options: RunOptions, written: dict) -> None:
    imageio.write_image(path, image)
    if path != STDIO:
        written[os.path.abspath(path)] = path


def _noisy_path(job: Job) -> str:
    if job.output == STDIO:
        raise DenoiseError("--save-noisy needs an output file, not stdout")
    out = Path(job.output)
    stem = out.stem
    if stem.endswith(".denoised"):
        stem = stem[: -len(".denoised")]
    return str(out.with_name(stem + ".noisy" + out.suffix))


def _noisy_copy(image: Image, job: Job, options: RunOptions) -> Image:
    """The image plus seeded noise, quantised as its file type would store it. The seed mixes in the relative path,
    so each image of a batch gets its own noise and a rerun gets the same."""
    generator = torch.Generator().manual_seed(options.seed + zlib.crc32(str(job.relative).encode()))
    noisy = add_noise(image.pixels, options.add_noise, generator)
    return image.with_pixels(imageio.as_stored(noisy, image.dtype))


def _check_same_shape(image: Image, reference: Image, job: Job) -> None:
    if image.pixels.shape != reference.pixels.shape:
        _, c1, h1, w1 = image.pixels.shape
        _, c2, h2, w2 = reference.pixels.shape
        raise DenoiseError(f"{job.source}: reference {job.reference} differs in size or channels "
                           f"({w1}x{h1}x{c1} vs {w2}x{h2}x{c2})")


def _denoise(image: Image, method: Method, settings: dict, options: RunOptions,
             events: Events) -> tuple[torch.Tensor, dict]:
    torch.manual_seed(options.seed)
    x = image.pixels.to(options.device)
    result, facts = method.function(x, progress=events.progress, **settings)
    return result.detach().to("cpu", torch.float32), facts


def _scores(noisy: Image, output: Image, reference: Image) -> dict:
    """PSNR and SSIM of the input and of the output as stored, against the reference."""
    scores = {}
    stored = imageio.as_stored(output.pixels, output.dtype)
    for tag, pixels in (("in", noisy.pixels), ("out", stored)):
        value = float(psnr(pixels, reference.pixels)[0])
        identical = value == float("inf")
        scores[f"psnr_{tag}"] = None if identical else value
        scores[f"psnr_{tag}_identical"] = identical
        fits_window = min(pixels.shape[-2:]) >= WINDOW_SIZE
        scores[f"ssim_{tag}"] = float(ssim(pixels, reference.pixels).ssim[0]) if fits_window else None
    return scores
