"""The ``denoise`` command: parse, call the library, print. No image maths here.

Exit codes: 0 all done; 1 one or more files failed (the batch still ran to the end); 2 usage error; 130 interrupted.
"""
from __future__ import annotations

import enum
import os
import sys
import time
from importlib import metadata
from typing import Optional

import click
import numpy as np

from ..batch.compare import check_map_path, compare_files, compare_folders
from ..batch.engines import Task, choose_engine, run_on_engine
from ..batch.jobs import plan_jobs, write_refusal
from ..batch.report import check_report_path, merge_reports, summarize, write_report
from ..batch.runner import RunOptions, run_batch
from ..core.device import resolve_device, resolve_threads, set_threads
from ..core.errors import DenoiseError, UsageError, plain_reason
from ..core.psf_files import check_psf_path, write_psf_file
from ..core.imageio import STDIO
from ..methods import METHODS, Method
from ..methods.zsn2n import PRECISIONS
from .config import Defaults, load_defaults
from .options import (NO_PSF, AutoOr, FiniteFloat, NoiseType, PsfSpec, batch_options, device_option,
                      experiment_options, solver_options)
from .terminal import TerminalEvents, print_scores


class ExitStatus(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1
    USAGE = 2
    INTERRUPTED = 130


def _version() -> str:
    try:
        return metadata.version("denoise-cli")
    except metadata.PackageNotFoundError:
        return "unknown"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "auto_envvar_prefix": "DENOISE",
                               "max_content_width": 110})
@click.version_option(_version(), "--version", prog_name="denoise")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), envvar="DENOISE_CONFIG",
              help="JSON file of defaults (sections: common, tv, zsn2n, deblur, noise, ssim, serve).")
@click.pass_context
def cli(ctx: click.Context, config_file: Optional[str]) -> None:
    """Denoise images (total variation, Zero-Shot Noise2Noise), deblur them, and score them (SSIM, PSNR).

    Precedence of settings: flag > environment variable (DENOISE_TV_WEIGHT, DENOISE_DEVICE, ...) > --config FILE >
    the built-in config.json.
    """
    defaults = load_defaults(cli, config_file)
    ctx.default_map = defaults.default_map
    ctx.obj = defaults


# ----------------------------------------------------------------------------------------------------- batch runs
def _params(ctx: click.Context, names) -> dict:
    defaults: Defaults = ctx.find_root().obj
    return {name: {"value": _plain(ctx.params[name]), "source": defaults.source(ctx, name)} for name in names}


def _plain(value):
    return str(value) if hasattr(value, "kind") else value


def run_method(ctx: click.Context, method: Method, settings: dict, side_output: Optional["PsfOutput"] = None,
               **options) -> None:
    """Plan (every file the run will write is checked here, before any work), run, report, exit with the status.
    ``side_output`` checks the planned jobs, then writes its file from the records."""
    device = resolve_device(options["device"])
    jobs = plan_jobs(options["inputs"], options["output"], options["output_dir"], options["reference"],
                     method.suffix, save_noisy=options.get("save_noisy", False), overwrite=options["overwrite"],
                     skip_existing=options["skip_existing"])
    if options["shard"]:
        index, count = options["shard"]
        jobs = jobs[index - 1::count]
    if side_output is not None:
        side_output.check(jobs)
    if any(job.output == STDIO for job in jobs) and sys.stdout.isatty():
        raise UsageError("refusing to write image bytes to the terminal: redirect stdout (> out.png) or give -o FILE")
    report_path = options["report"]
    if report_path:  # a resumed run (--skip-existing) rewrites its own report
        check_report_path(report_path, [job.source for job in jobs], options["overwrite"] or options["skip_existing"])
    run_options = RunOptions(device=device, seed=options["seed"], add_noise=options.get("add_noise"))
    quiet, verbose = options["quiet"], options["verbose"]
    names = list(settings) + [name for name in ("add_noise", "add", "device", "seed") if name in ctx.params]
    params = _params(ctx, dict.fromkeys(names))
    threads = resolve_threads(options["threads"])
    engine = choose_engine(options["jobs"], options["engine"], options["scheduler"], jobs, device, threads)
    per_worker = engine.threads_per_worker(threads) if engine else threads
    if verbose and not quiet:
        shares = f"{per_worker} thread(s)" if per_worker else "their own threads"
        where = f"{engine.workers} worker process(es) x {shares}" if engine else f"{threads} thread(s)"
        click.echo(f"denoise {method.name}: {len(jobs)} image(s) on {device}, {where}", err=True)
    events = TerminalEvents(quiet, verbose, len(jobs), method.name)
    started = time.perf_counter()

    def finish(records: list, interrupted: bool = False) -> tuple[dict, bool]:
        """The summary, and whether the report (if asked for) was written."""
        finished = {record["input"] for record in records}
        not_processed = [job.source for job in jobs if job.source not in finished] if interrupted else []
        summary = summarize(records, time.perf_counter() - started, not_processed, interrupted)
        if not report_path:
            return summary, True
        try:
            write_report(report_path, records, summary)
        except OSError as exc:
            click.echo(f"denoise: report {report_path}: cannot write ({plain_reason(exc)})", err=True)
            return summary, False
        return summary, True

    def interrupted(done: list) -> None:
        finish(done, interrupted=True)

    try:
        if engine is None:
            set_threads(threads)
            records = run_batch(jobs, method, settings, run_options, events, params, on_interrupt=interrupted)
        else:
            task = Task(method, settings, run_options, params, per_worker)
            records = run_on_engine(jobs, engine, task, events, on_interrupt=interrupted)
    finally:
        events.close()
        if engine is not None:
            engine.close()
    side_outputs_written = side_output.write(records) if side_output is not None else True
    summary, reported = finish(records)
    if not quiet:
        if summary["unscored"] and options["reference"]:
            click.echo(f"denoise: {len(summary['unscored'])} of {summary['done']} image(s) had no reference in "
                       f"{options['reference']} and are left out of the means: "
                       f"{', '.join(summary['unscored'][:3])}{', ...' if len(summary['unscored']) > 3 else ''}",
                       err=True)
        click.echo(f"denoise {method.name}: {summary['done']} done, {summary['skipped']} skipped, "
                   f"{summary['failed']} failed in {summary['seconds']:.1f}s", err=True)
    ctx.exit(ExitStatus.ERROR if summary["failed"] or not reported or not side_outputs_written
             else ExitStatus.SUCCESS)


@cli.command()
@click.option("--weight", type=AutoOr(float, 0), show_default=True,
              help="TV weight lambda for images in [0, 1] (as scikit-image's); 'auto' sets it from the estimated "
                   "noise sigma.")
@click.option("--norm", type=click.Choice(["isotropic", "anisotropic"]), show_default=True)
@click.option("--channels", type=click.Choice(["coupled", "separate"]), show_default=True,
              help="coupled: one gradient magnitude across colour channels (no colour fringes).")
@solver_options("Stop when the certified RMSE bound from the exact solution is below this ([0, 1] units); 'auto': "
                "a quarter of one level of the output file (1/1020 for 8-bit), at least 5e-4.", tol_auto=True)
@experiment_options
@batch_options
@click.pass_context
def tv(ctx: click.Context, weight, norm, channels, max_iter, tol, **options) -> None:
    """Total-variation denoising (ROF), solved to a certified tolerance."""
    settings = {"weight": weight, "norm": norm, "channels": channels, "max_iter": max_iter, "tol": tol}
    run_method(ctx, METHODS["tv"], settings, **options)


@cli.command()
@click.option("--iterations", type=AutoOr(int, 1), show_default=True,
              help="Optimiser steps; 'auto' is the paper's 2000 with --exact, fewer cheaper ones otherwise.")
@click.option("--learning-rate", type=FiniteFloat(min=0, min_open=True), show_default=True)
@click.option("--step-size", type=AutoOr(int, 1), show_default=True,
              help="StepLR period (steps); 'auto' is 3/4 of the steps (the paper's 1500 of 2000).")
@click.option("--gamma", type=FiniteFloat(min=0, min_open=True), show_default=True, help="StepLR factor.")
@click.option("--channels", type=click.IntRange(min=1), show_default=True, help="Network width.")
@click.option("--exact", is_flag=True,
              help="The paper's procedure step for step (slower; no refinement, no unclipping).")
@click.option("--refine/--no-refine", show_default=True,
              help="Refine the network's estimate with a non-local average of the noisy image matched on it.")
@click.option("--unclip/--no-unclip", show_default=True,
              help="Undo the bias that clipping the noisy image at black and white leaves in the estimate.")
@click.option("--precision", type=click.Choice(PRECISIONS), show_default=True,
              help="Arithmetic of the network's fit: 'auto' is bfloat16 where the CPU or GPU computes it in hardware "
                   "(AVX-512 BF16, AMX, CUDA Ampere+), else float32. --exact always fits in float32.")
@experiment_options
@batch_options
@click.pass_context
def zsn2n(ctx: click.Context, iterations, learning_rate, step_size, gamma, channels, exact, refine, unclip,
          precision, **options) -> None:
    """Zero-Shot Noise2Noise: fit a tiny network on each noisy image."""
    settings = {"iterations": iterations, "learning_rate": learning_rate, "step_size": step_size, "gamma": gamma,
                "channels": channels, "exact": exact, "refine": refine, "unclip": unclip, "precision": precision,
                "seed": options["seed"]}
    run_method(ctx, METHODS["zsn2n"], settings, **options)


@cli.command()
@click.option("--psf", type=PsfSpec(),
              help="The blur (required): 'auto' (found from the image; not used, and the image only denoised, when "
                   "undoing it rings), gaussian:SIGMA, motion:LENGTH[,ANGLE], box:N, disk:R, or a file (PNG/TIFF of "
                   "any depth, .npy); normalised to sum 1.")
@click.option("--psf-size", type=click.IntRange(min=3), show_default=True,
              help="With --psf auto: the largest blur expected, in pixels (rounded up to odd).")
@click.option("--save-psf", type=click.Path(dir_okay=False),
              help="Write the PSF used or found (.npy, .tif, or .png scaled to its peak); one input image.")
@click.option("--weight", type=AutoOr(float, 0), show_default=True,
              help="TV weight lambda for images in [0, 1]; 'auto' sets it from the estimated noise sigma.")
@click.option("--regularizer", type=click.Choice(["tv", "adaptive"]), show_default=True,
              help="tv: colour-coupled total variation; adaptive: TV at edges, quadratic in flat areas.")
@click.option("--method", type=click.Choice(["tv", "chan-wong"]), show_default=True,
              help="chan-wong: the origin's Chan-Wong alternating scheme (a baseline; needs --psf auto).")
@solver_options("Stop when the RMS change per iteration is below this ([0, 1] units).")
@batch_options
@click.pass_context
def deblur(ctx: click.Context, psf, psf_size, save_psf, weight, regularizer, method, max_iter, tol,
           **options) -> None:
    """Undo a blur: total-variation deconvolution with a known PSF, or blind (--psf auto). Borders do not ring."""
    if psf is None:  # no default: a blind estimate can fail on some photos, so the user asks for it
        raise UsageError(NO_PSF)
    if method == "chan-wong" and psf != "auto":
        raise UsageError("--method chan-wong estimates the PSF itself: use it with --psf auto")
    settings = {"psf": psf, "psf_size": psf_size, "weight": weight, "regularizer": regularizer, "method": method,
                "max_iter": max_iter, "tol": tol}
    side_output = PsfOutput(save_psf, options["overwrite"]) if save_psf else None
    run_method(ctx, METHODS["deblur"], settings, side_output=side_output, **options)


class PsfOutput:
    """``--save-psf FILE``: the PSF of a run's only image, written once the image is done."""

    def __init__(self, path: str, overwrite: bool):
        self.path, self.overwrite = path, overwrite

    def check(self, jobs: list) -> None:
        """Raise UsageError, before any work, unless the run has one image and the file may be written."""
        if len(jobs) != 1:
            raise UsageError(f"--save-psf {self.path}: needs exactly one input image, got {len(jobs)}")
        try:
            check_psf_path(self.path)
        except DenoiseError as exc:
            raise UsageError(f"--save-psf {exc}") from None
        refusal = write_refusal(self.path, [jobs[0].source, jobs[0].output], self.overwrite)
        if refusal:
            raise UsageError(f"--save-psf {self.path}: {refusal}")

    def write(self, records: list) -> bool:
        """Write the PSF; False (and one line on stderr) if it cannot be. Nothing when the image failed."""
        if not records or records[0]["status"] != "done":
            return True
        try:
            write_psf_file(self.path, np.array(records[0]["facts"]["psf"][0]))
        except (OSError, DenoiseError) as exc:
            click.echo(f"denoise: --save-psf {self.path}: cannot write ({plain_reason(exc)})", err=True)
            return False
        return True


@cli.command()
@click.option("--add", "add", type=NoiseType(), show_default=True, help="The noise to add.")
@batch_options
@click.pass_context
def noise(ctx: click.Context, add, **options) -> None:
    """Write noisy copies (NAME.noisy.EXT) of clean images, seeded by --seed."""
    options["add_noise"] = add
    run_method(ctx, METHODS["noise"], {}, **options)


@cli.command()
@click.option("--host", type=str, show_default=True,
              help="Address to listen on; anything but 127.0.0.1/localhost is reachable from other machines.")
@click.option("--port", type=click.IntRange(0, 65535), show_default=True, help="Port (0: any free one).")
@click.option("--max-bytes", type=click.IntRange(min=1), show_default=True, help="Largest upload (a request).")
@click.option("--max-pixels", type=click.IntRange(min=1), show_default=True, help="Largest image, in pixels.")
@click.option("--workers", type=click.IntRange(min=1), show_default=True, help="Jobs run at once.")
@click.option("--queue-size", type=click.IntRange(min=1), show_default=True,
              help="Jobs waiting at most; more are refused as busy (HTTP 503).")
@click.option("--keep-seconds", type=FiniteFloat(min=0, min_open=True), show_default=True,
              help="How long results stay after a job ends.")
@device_option
@click.pass_context
def serve(ctx: click.Context, host, port, max_bytes, max_pixels, workers, queue_size, keep_seconds, device) -> None:
    """A local web page: upload images, denoise, compare, download."""
    from .serve.server import run_server  # Flask loads only for this command

    defaults: Defaults = ctx.find_root().obj
    config = {"max_bytes": max_bytes, "max_pixels": max_pixels, "workers": workers, "queue_size": queue_size,
              "keep_seconds": keep_seconds, "device": resolve_device(device)}
    run_server(host, port, config, cli.commands, defaults.default_map)


@cli.group()
def report() -> None:
    """Work with run reports."""


@report.command("merge")
@click.argument("reports", nargs=-1, required=True, type=click.Path(dir_okay=False), metavar="REPORT.json...")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The merged report: "
              "PATH.json or PATH.csv.")
@click.option("--overwrite", is_flag=True, envvar="DENOISE_OVERWRITE", help="Replace an existing output.")
def merge(reports, output, overwrite) -> None:
    """Merge the JSON reports of a batch run in shards (--shard I/N) into one, rows in the order given."""
    check_report_path(output, list(reports), overwrite)
    records, summary = merge_reports(reports)
    write_report(output, records, summary)


# ---------------------------------------------------------------------------------------------------------- score

@cli.command("ssim")
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("--json", "json_output", is_flag=True, help="Print ssim, psnr, ms_ssim and the settings as JSON.")
@click.option("--csv", "csv_output", is_flag=True, help="Print CSV rows (folders: one per pair, then the mean).")
@click.option("--map", "map_output", type=click.Path(dir_okay=False),
              help="Write the SSIM map (valid region; float TIFF unclipped, else clipped to [0, 1]).")
@click.option("--overwrite", is_flag=True, envvar="DENOISE_OVERWRITE", help="Replace an existing --map file.")
@device_option
@click.pass_context
def ssim_command(ctx: click.Context, a, b, json_output, csv_output, map_output, overwrite, device) -> None:
    """Score B against A: SSIM (Wang 2004), PSNR, MS-SSIM.

    Prints the SSIM alone unless --json or --csv. Two folders are paired by relative path, one row per pair and the
    mean.
    """
    as_json, as_csv, map_path = json_output, csv_output, map_output
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    torch_device = resolve_device(device)
    folders = os.path.isdir(a) and os.path.isdir(b)
    if map_path and folders:
        raise click.UsageError("--map works on a pair of files, not folders")
    if map_path:
        check_map_path(map_path, [a, b], overwrite)
    if folders:
        result = compare_folders(a, b, torch_device, all_scores=as_json or as_csv)
        for problem in result["errors"]:
            click.echo(f"denoise: {problem}", err=True)
        print_scores(result, as_json, as_csv, folders=True)
        ctx.exit(ExitStatus.ERROR if result["errors"] else ExitStatus.SUCCESS)
    result = compare_files(a, b, torch_device, map_path, all_scores=as_json or as_csv)
    print_scores(result, as_json, as_csv, folders=False)
