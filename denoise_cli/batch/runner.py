"""Batch runs: jobs -> method -> outputs, with references, synthetic noise, per-file errors and records.

Usable from Python without click::

    from denoise_cli.batch.jobs import plan_jobs
    from denoise_cli.batch.runner import RunOptions, run_batch
    from denoise_cli.methods import METHODS
    jobs = plan_jobs(["photos/"], output_dir="clean/", suffix=".denoised")
    records = run_batch(jobs, METHODS["tv"], {"weight": "auto"}, RunOptions())

A file that fails is recorded (status ``failed`` and the cause) and the batch goes on; outputs are written atomically;
which files may be written was decided when the jobs were planned.
"""
from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import torch

from ..core import imageio
from ..core.errors import DenoiseError, plain_reason
from ..core.imageio import Image
from ..core.metrics import WINDOW_SIZE, psnr, ssim
from ..core.noise import NoiseSpec, add_noise
from ..methods import Method
from .jobs import Job


@dataclass
class RunOptions:
    """How every job runs: the device, the seed (noise and stochastic methods), and synthetic noise to add first.
    Which files may be written is decided when the jobs are planned (:func:`.jobs.plan_jobs`)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    seed: int = 0
    add_noise: Optional[NoiseSpec] = None


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
    try:
        for index, job in enumerate(jobs):
            events.started(index, len(jobs), job)
            record = run_job(job, method, settings, options, events, params)
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


def run_job(job: Job, method: Method, settings: dict, options: RunOptions, events: Events, params: dict) -> dict:
    record = _new_record(job, method, options, params)
    started = time.perf_counter()
    try:
        if job.skip:
            record["status"] = "skipped"
            return record
        if job.refusal:
            raise DenoiseError(job.refusal)
        image = imageio.read_image(job.source)
        for target in (job.output, job.noisy_output):  # a type the output cannot hold fails now, not after the work
            if target is not None:
                imageio.check_encodable(image, imageio.format_for_path(target, fallback=image.format), target)
        clean = image
        if options.add_noise is not None:
            image = _noisy_copy(image, job, options)
            if job.noisy_output:
                imageio.write_image(job.noisy_output, image)
        reference = imageio.read_image(job.reference) if job.reference else (
            clean if options.add_noise is not None else None)
        if reference is not None:
            _check_same_shape(image, reference, job)
            record["reference"] = job.reference or job.source  # with --add-noise, the clean input itself
        try:
            result, facts = _denoise(image, method, settings, options, events)
        except DenoiseError as exc:  # the method's words, about this file
            raise DenoiseError(f"{job.source}: {exc}") from None
        output = image.with_pixels(result)
        imageio.write_image(job.output, output)
        record.update(_facts_of(facts))
        if reference is not None:
            record.update(_scores(image, output, reference))
    except DenoiseError as exc:
        record.update(status="failed", error=str(exc))
    except Exception as exc:  # e.g. disk full, out of memory: this file fails, not the batch
        record.update(status="failed", error=f"{job.source}: {plain_reason(exc)}")
    record["seconds"] = round(time.perf_counter() - started, 4)
    return record


def failed_record(job: Job, method: Method, options: RunOptions, params: dict, error: str) -> dict:
    """The record of a job that failed outside :func:`run_job` (its worker was lost)."""
    record = _new_record(job, method, options, params)
    record.update(status="failed", error=error)
    return record


def _facts_of(facts: dict) -> dict:
    """The record fields taken from a method's facts: iterations, weight, and the noise sigma on the 0-255 scale
    (the scale of every option), kept out of the raw facts so that one scale is shown."""
    facts = dict(facts)
    sigma = _single(facts.pop("sigma", None))
    return {"facts": facts, "iterations": _single(facts.get("iterations")), "weight": _single(facts.get("weight")),
            "sigma_estimate": None if sigma is None else round(255.0 * sigma, 4)}


def _single(value):
    """Facts are per image of a batch; the runner denoises one image at a time."""
    return value[0] if isinstance(value, list) and len(value) == 1 else value


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
    if method.takes_output_step:
        settings = dict(settings, output_step=imageio.quantisation_step(image.dtype))
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
