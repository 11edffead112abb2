"""What the commands print on a terminal: progress bars and per-image lines of a batch, and score tables."""
from __future__ import annotations

import json
import os
import sys
from typing import Optional

import click
from tqdm import tqdm

from ..batch.jobs import Job
from ..batch.runner import Events
from ..methods.deblur import kernel_dropped

#: What the command line and the web page say of an image whose blind kernel was dropped (its result rang).
PSF_REJECTED = ("the blur found could not be undone without ringing: wrote the image denoised, not deblurred "
                "(give the blur with --psf to deblur by it)")


class TerminalEvents(Events):
    """Progress bars on stderr (only on a terminal), one line per failure and per dropped blind kernel; -v adds a
    line per image.

    The second bar shows the current image's phase (its own count of steps: SURE solves while the weight is chosen,
    the percent of the way to the certified tolerance on a log scale while TV solves, optimiser steps while ZS-N2N
    fits); a new phase starts a new bar.
    """

    def __init__(self, quiet: bool, verbose: int, total: int, method: str = ""):
        self.quiet, self.verbose = quiet, verbose
        show = not quiet and sys.stderr.isatty()
        self.images = tqdm(total=total, desc=f"{method} images".strip(), unit="img", disable=not show or total < 2,
                           position=0, file=sys.stderr)
        self.steps: Optional[tqdm] = None
        self.name, self.phase = "", None
        self.show = show

    def started(self, index: int, total: int, job: Job) -> None:
        self.name, self.phase = os.path.basename(job.source), None

    def progress(self, done: int, steps: int, facts: dict) -> None:
        if not self.show:
            return
        phase = facts.get("phase", "working")
        if self.steps is None or phase != self.phase:
            if self.steps is not None:
                self.steps.close()
            unit = "%" if phase == "solving" else "step"
            self.steps = tqdm(total=steps, desc=f"{self.name}: {phase}", unit=unit, leave=False, position=1,
                              file=sys.stderr)
            self.phase = phase
        self.steps.total = steps
        self.steps.n = done
        shown = {k: f"{v:.3g}" for k, v in facts.items() if isinstance(v, (int, float))}
        self.steps.set_postfix(shown, refresh=True)

    def finished(self, record: dict) -> None:
        if self.steps is not None:
            self.steps.close()
            self.steps = None
        self.images.update(1)
        if record["status"] == "failed":
            tqdm.write(f"denoise: {record['error']}", file=sys.stderr)
            return
        if self.quiet:
            return
        if record["status"] == "done" and kernel_dropped(record["facts"]):
            tqdm.write(f"denoise: {record['input']}: {PSF_REJECTED}", file=sys.stderr)
        if self.verbose:
            tqdm.write(describe(record), file=sys.stderr)

    def close(self) -> None:
        self.images.close()


def describe_finish(facts: dict) -> str:
    """zsn2n's finish of the network's estimate: which steps ran, and in what time."""
    steps = [label for key, label in (("refined", "refine"), ("residual_restored", "residual"), ("unclipped", "unclip"))
             if facts[key][0]]
    return f"finish {facts['finish_seconds']:.2f}s ({'+'.join(steps) or 'nothing to do'})"


def describe(record: dict) -> str:
    parts = [f"{record['input']} -> {record['output']}: {record['status']}", f"{record['seconds']:.2f}s"]
    for key, label in (("iterations", "iterations"), ("sigma_estimate", "sigma (0-255)"), ("weight", "weight")):
        if isinstance(record.get(key), (int, float)):
            parts.append(f"{label} {record[key]:.4g}")
    if "mode" in record["facts"]:  # zsn2n: the paper's procedure or the default, its final pass and refinement
        flips = record["facts"].get("flips", 1)
        parts.append(f"mode {record['facts']['mode']}, {record['facts']['precision']} fit"
                     + (f" (mean of {flips} flipped passes)" if flips > 1 else ""))
        if "finish_seconds" in record["facts"]:
            parts.append(describe_finish(record["facts"]))
    if "rmse_bound" in record["facts"]:
        tol = record["facts"].get("tol")
        parts.append(f"rmse bound {record['facts']['rmse_bound'][0]:.2g}" + (f" (tol {tol:.2g})" if tol else ""))
    if "psf_shape" in record["facts"]:
        height, width = record["facts"]["psf_shape"][0]
        found = record["facts"].get("psf_seconds")
        if kernel_dropped(record["facts"]):
            parts.append(f"psf found in {found[0]:.2f}s but not used (undoing it rang): {width}x{height}")
        else:
            parts.append(f"psf {width}x{height}" + (f" found in {found[0]:.2f}s" if found else ""))
    for key, label in (("weight_seconds", "weight search"), ("solve_seconds", "solve")):
        if key in record["facts"]:  # one number (tv) or one per image (deblur)
            seconds = record["facts"][key]
            parts.append(f"{label} {seconds[0] if isinstance(seconds, list) else seconds:.2f}s")
    for tag in ("in", "out"):
        if record.get(f"ssim_{tag}") is not None:
            value = record[f"psnr_{tag}"]
            shown = "inf" if value is None else f"{value:.2f}"
            parts.append(f"{tag}: PSNR {shown} dB SSIM {record[f'ssim_{tag}']:.4f}")
    return ", ".join(parts)


def print_scores(result: dict, as_json: bool, as_csv: bool, folders: bool) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=2, allow_nan=False))
        return
    rows = result["pairs"] if folders else [result]
    if as_csv:
        click.echo("a,b,ssim,psnr,ms_ssim")
        for row in rows:
            click.echo(",".join(_csv_cell(row[k]) for k in ("a", "b", "ssim", "psnr", "ms_ssim")))
        if folders:
            mean = result["mean"]
            click.echo(",".join(["MEAN", ""] + [_csv_cell(mean[k]) for k in ("ssim", "psnr", "ms_ssim")]))
        return
    if not folders:
        click.echo(f"{result['ssim']:.10f}")
        return
    for row in rows:
        click.echo(f"{row['relative']}\t{row['ssim']:.10f}")
    if result["mean"]["ssim"] is not None:
        click.echo(f"mean\t{result['mean']['ssim']:.10f}")


def _csv_cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.10g}" if isinstance(value, float) else str(value)
