"""Run reports: one row per image and a summary, as strict JSON or as CSV (chosen by the file's extension).

JSON is strict: a PSNR of identical images is null with its ``*_identical`` flag set, never Infinity. The CSV has one
column per field, each parameter as ``param.NAME`` and ``param.NAME.source``, and a last row holding the means.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Sequence

from ..core.errors import DenoiseError, UsageError
from ..core.imageio import write_bytes_atomic

SCORE_FIELDS = ("psnr_in", "ssim_in", "psnr_out", "ssim_out")
ROW_FIELDS = ("input", "output", "reference", "method", "status", "error", "device", "noise", "seconds",
              "iterations", "sigma_estimate", "weight") + SCORE_FIELDS + ("psnr_in_identical", "psnr_out_identical")


def summarize(records: Sequence[dict], seconds: float) -> dict:
    """Counts by status, total time, and the mean of each score over the images that have it."""
    summary = {status: sum(1 for r in records if r["status"] == status) for status in ("done", "skipped", "failed")}
    summary["images"] = len(records)
    summary["seconds"] = round(seconds, 3)
    for key in SCORE_FIELDS:
        values = [r[key] for r in records if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        summary[f"mean_{key}"] = sum(values) / len(values) if values else None
    return summary


def write_report(path: str, records: Sequence[dict], summary: dict) -> None:
    """Write the report to ``path`` (.json or .csv), atomically."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json":
        text = json.dumps({"images": list(records), "summary": summary}, indent=2, allow_nan=False,
                          default=str)
    elif suffix == ".csv":
        text = _csv_text(records, summary)
    else:
        raise DenoiseError(f"report {path}: use a .json or .csv file name")
    write_bytes_atomic(path, text.encode("utf-8"))


def check_report_path(path: str) -> None:
    """Fail early, before any work, on a report name we could not write."""
    if Path(path).suffix.lower() not in (".json", ".csv"):
        raise UsageError(f"report {path}: use a .json or .csv file name")


def _csv_text(records: Sequence[dict], summary: dict) -> str:
    param_names = sorted({name for r in records for name in r.get("params", {})})
    columns = list(ROW_FIELDS)
    for name in param_names:
        columns += [f"param.{name}", f"param.{name}.source"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for record in records:
        row = {key: record.get(key) for key in ROW_FIELDS}
        for name, entry in record.get("params", {}).items():
            row[f"param.{name}"] = entry.get("value")
            row[f"param.{name}.source"] = entry.get("source")
        writer.writerow(row)
    means = {"input": "MEAN", "status": f"done={summary['done']} skipped={summary['skipped']} "
                                        f"failed={summary['failed']}", "seconds": summary["seconds"]}
    means.update({key: summary[f"mean_{key}"] for key in SCORE_FIELDS})
    writer.writerow(means)
    return buffer.getvalue()
