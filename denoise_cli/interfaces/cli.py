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

from ..batch.compare import compare_files, compare_folders
from ..batch.jobs import plan_jobs
from ..batch.report import check_report_path, summarize, write_report
from ..batch.runner import RunOptions, run_batch
from ..core.device import resolve_device
from ..core.errors import DenoiseError, UsageError
from ..methods import METHODS, Method
from .config import Defaults, load_defaults
from .options import AutoOr, NoiseType, batch_options, device_option, experiment_options
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
              help="JSON file of defaults (sections: common, tv, zsn2n, noise, ssim).")
@click.pass_context
def cli(ctx: click.Context, config_file: Optional[str]) -> None:
    """Denoise images (total variation, Zero-Shot Noise2Noise) and score them (SSIM, PSNR).

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


def run_method(ctx: click.Context, method: Method, settings: dict, **options) -> None:
    """Plan, run, report and exit with the batch's status."""
    report_path = options["report"]
    if report_path:
        check_report_path(report_path)
    device = resolve_device(options["device"])
    jobs = plan_jobs(options["inputs"], options["output"], options["output_dir"], options["reference"],
                     method.suffix)
    run_options = RunOptions(device=device, seed=options["seed"], overwrite=options["overwrite"],
                             skip_existing=options["skip_existing"], add_noise=options.get("add_noise"),
                             save_noisy=options.get("save_noisy", False))
    quiet, verbose = options["quiet"], options["verbose"]
    if verbose and not quiet:
        click.echo(f"denoise {method.name}: {len(jobs)} image(s) on {device}", err=True)
    names = list(settings) + [name for name in ("add_noise", "add", "device", "seed") if name in ctx.params]
    params = _params(ctx, dict.fromkeys(names))
    events = TerminalEvents(quiet, verbose, len(jobs))
    started = time.perf_counter()

    def save(records):
        if report_path:
            write_report(report_path, records, summarize(records, time.perf_counter() - started))

    try:
        records = run_batch(jobs, method, settings, run_options, events, params, on_interrupt=save)
    finally:
        events.close()
    save(records)
    summary = summarize(records, time.perf_counter() - started)
    if not quiet:
        click.echo(f"denoise {method.name}: {summary['done']} done, {summary['skipped']} skipped, "
                   f"{summary['failed']} failed in {summary['seconds']:.1f}s", err=True)
    ctx.exit(ExitStatus.ERROR if summary["failed"] else ExitStatus.SUCCESS)


@cli.command()
@click.option("--weight", type=AutoOr(float, 0), show_default=True,
              help="TV weight lambda for images in [0, 1] (as scikit-image's); 'auto' sets it from the estimated "
                   "noise sigma.")
@click.option("--norm", type=click.Choice(["isotropic", "anisotropic"]), show_default=True)
@click.option("--channels", type=click.Choice(["coupled", "separate"]), show_default=True,
              help="coupled: one gradient magnitude across colour channels (no colour fringes).")
@click.option("--max-iter", type=click.IntRange(min=1), show_default=True)
@click.option("--tol", type=click.FloatRange(min=0), show_default=True,
              help="Stop when the certified RMSE bound from the exact solution is below this ([0, 1] units).")
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
@click.option("--learning-rate", type=click.FloatRange(min=0, min_open=True), show_default=True)
@click.option("--step-size", type=AutoOr(int, 1), show_default=True,
              help="StepLR period (steps); 'auto' is 3/4 of the steps (the paper's 1500 of 2000).")
@click.option("--gamma", type=click.FloatRange(min=0, min_open=True), show_default=True, help="StepLR factor.")
@click.option("--channels", type=click.IntRange(min=1), show_default=True, help="Network width.")
@click.option("--exact", is_flag=True, help="The paper's procedure step for step (slower).")
@experiment_options
@batch_options
@click.pass_context
def zsn2n(ctx: click.Context, iterations, learning_rate, step_size, gamma, channels, exact, **options) -> None:
    """Zero-Shot Noise2Noise: fit a tiny network on each noisy image."""
    settings = {"iterations": iterations, "learning_rate": learning_rate, "step_size": step_size, "gamma": gamma,
                "channels": channels, "exact": exact, "seed": options["seed"]}
    run_method(ctx, METHODS["zsn2n"], settings, **options)


@cli.command()
@click.option("--add", "add", type=NoiseType(), show_default=True, help="The noise to add.")
@batch_options
@click.pass_context
def noise(ctx: click.Context, add, **options) -> None:
    """Write noisy copies (NAME.noisy.EXT) of clean images, seeded by --seed."""
    options["add_noise"] = add
    run_method(ctx, METHODS["noise"], {}, **options)


# ---------------------------------------------------------------------------------------------------------- score

@cli.command("ssim")
@click.argument("a", type=click.Path())
@click.argument("b", type=click.Path())
@click.option("--json", "json_output", is_flag=True, help="Print ssim, psnr, ms_ssim and the settings as JSON.")
@click.option("--csv", "csv_output", is_flag=True, help="Print CSV rows (folders: one per pair, then the mean).")
@click.option("--map", "map_output", type=click.Path(dir_okay=False), help="Write the SSIM map as an image.")
@device_option
@click.pass_context
def ssim_command(ctx: click.Context, a, b, json_output, csv_output, map_output, device) -> None:
    """Score B against A: SSIM (Wang 2004), PSNR, MS-SSIM.

    Prints the SSIM alone unless --json or --csv. Two folders are paired by relative path, one row per pair and the
    mean.
    """
    as_json, as_csv, map_path = json_output, csv_output, map_output
    if as_json and as_csv:
        raise click.UsageError("give --json or --csv, not both")
    torch_device = resolve_device(device)
    if os.path.isdir(a) and os.path.isdir(b):
        if map_path:
            raise click.UsageError("--map works on a pair of files, not folders")
        result = compare_folders(a, b, torch_device, all_scores=as_json or as_csv)
        for problem in result["errors"]:
            click.echo(f"denoise: {problem}", err=True)
        print_scores(result, as_json, as_csv, folders=True)
        ctx.exit(ExitStatus.ERROR if result["errors"] else ExitStatus.SUCCESS)
    result = compare_files(a, b, torch_device, map_path, all_scores=as_json or as_csv)
    print_scores(result, as_json, as_csv, folders=False)

# ----------------------------------------------------------------------------------------------------------- main

def main(argv: Optional[list] = None) -> None:
    """Console entry point: one-line errors, documented exit codes, no tracebacks."""
    try:
        status = cli.main(args=argv, prog_name="denoise", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("denoise: interrupted", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("\ndenoise: interrupted", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UsageError as exc:
        click.echo(f"denoise: {exc}", err=True)
        sys.exit(ExitStatus.USAGE)
    except DenoiseError as exc:
        click.echo(f"denoise: {exc}", err=True)
        sys.exit(ExitStatus.ERROR)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(ExitStatus.ERROR)
    except Exception as exc:  # a bug: still one line, the traceback only on request
        if os.environ.get("DENOISE_DEBUG"):
            raise
        click.echo(f"denoise: internal error: {type(exc).__name__}: {exc}".splitlines()[0]
                   + " (set DENOISE_DEBUG=1 for the traceback)", err=True)
        sys.exit(ExitStatus.ERROR)
    sys.exit(status if isinstance(status, int) else ExitStatus.SUCCESS)


def run() -> None:
    """The installed ``denoise`` command and ``python -m denoise_cli``: :func:`main`, then a fast exit.

    Once the work is done and the output flushed, the process ends with ``os._exit``: tearing down an interpreter
    that has loaded torch takes about 0.5 s (measured), a fifth of a 4K ``denoise ssim``. Every file we write is
    closed and renamed into place before main returns and no thread is left running, so nothing is lost.
    """
    try:
        main()
        code = ExitStatus.SUCCESS
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else ExitStatus.ERROR
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # reader gone, or stream closed after a broken pipe
        code = code or ExitStatus.ERROR
    os._exit(code)
