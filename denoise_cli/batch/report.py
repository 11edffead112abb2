"""Run reports: one row per image and a summary, as strict JSON or as CSV (chosen by the file's extension).

JSON is strict: a PSNR of identical images is null with its ``*_identical`` flag set, never Infinity. The CSV has one
column per field, each parameter as ``param.NAME`` and ``param.NAME.source``, booleans as ``true``/``false``, and a
last row (input ``MEAN``) holding the mean of each score and of the seconds, nothing else. The summary says how many
images were scored, which inputs were not (no reference found), and, for an interrupted run, which were not
processed.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path
from typing import Sequence

from ..core.errors import UsageError, plain_reason
from ..core.imageio import write_bytes_atomic
from .jobs import write_refusal

SCORE_FIELDS = ("psnr_in", "ssim_in", "psnr_out", "ssim_out")
ROW_FIELDS = ("input", "output", "reference", "method", "status", "error", "device", "noise", "seconds",
              "iterations", "sigma_estimate", "weight") + SCORE_FIELDS + ("psnr_in_identical", "psnr_out_identical")
REPORT_SUFFIXES = (".json", ".csv")


def summarize(records: Sequence[dict], seconds: float, not_processed: Sequence[str] = (),
              interrupted: bool = False) -> dict:
    """Counts by status, total time, the mean of each score over the images that have it, which done images had no
    reference (so are not in the means), and for an interrupted run the inputs not processed."""
    summary: dict = {status: sum(1 for r in records if r["status"] == status)
                     for status in ("done", "skipped", "failed")}
    summary["images"] = len(records) + len(not_processed)
    summary["seconds"] = round(seconds, 3)
    for key in SCORE_FIELDS:
        values = [r[key] for r in records if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]
        summary[f"mean_{key}"] = sum(values) / len(values) if values else None
    summary["scored"] = sum(1 for r in records if r["status"] == "done" and r.get("reference"))
    summary["unscored"] = [r["input"] for r in records if r["status"] == "done" and not r.get("reference")]
    summary["interrupted"] = interrupted
    summary["not_processed"] = list(not_processed)
    return summary


def write_report(path: str, records: Sequence[dict], summary: dict) -> None:
    """Write the report to ``path`` (.json or .csv), atomically."""
    if Path(path).suffix.lower() == ".json":
        text = json.dumps({"images": list(records), "summary": summary}, indent=2, allow_nan=False, default=str)
    else:
        text = _csv_text(records, summary)
    write_bytes_atomic(path, text.encode("utf-8"))


def merge_reports(paths: Sequence[str]) -> tuple[list, dict]:
    """The records of several JSON reports (the shards of one batch, ``--shard I/N``) in the order given, and their
    summary: counts and means over all images, seconds the sum of the shards' (work done, not wall time)."""
    records: list = []
    seconds = 0.0
    interrupted, not_processed = False, []
    for path in paths:
        if Path(path).suffix.lower() != ".json":
            raise UsageError(f"report {path}: only JSON reports can be merged (they keep every field)")
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            records += data["images"]
            summary = data["summary"]
        except OSError as exc:
            raise UsageError(f"report {path}: cannot read ({plain_reason(exc)})") from None
        except (ValueError, KeyError, TypeError):
            raise UsageError(f"report {path}: not a denoise JSON report") from None
        seconds += float(summary.get("seconds") or 0.0)
        interrupted = interrupted or bool(summary.get("interrupted"))
        not_processed += list(summary.get("not_processed") or [])
    return records, summarize(records, seconds, not_processed, interrupted)


def check_report_path(path: str, inputs: Sequence[str], replace: bool) -> None:
    """Before any work: refuse a report name we could not or must not write (wrong extension, an input, an existing
    file unless ``replace``, a folder, a place we cannot write to). Missing folders are created when it is written."""
    target = Path(path)
    if target.suffix.lower() not in REPORT_SUFFIXES:
        raise UsageError(f"report {path}: use a .json or .csv file name")
    refusal = write_refusal(path, inputs, replace)
    if refusal:
        raise UsageError(f"report {path} {refusal}")
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"report {path}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"report {path}: cannot write in {parent} (permission denied)")


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
        writer.writerow({key: _csv_value(value) for key, value in row.items()})
    timed = [r["seconds"] for r in records if isinstance(r.get("seconds"), (int, float))]
    means = {"input": "MEAN", "seconds": round(sum(timed) / len(timed), 4) if timed else None}
    means.update({key: summary[f"mean_{key}"] for key in SCORE_FIELDS})
    writer.writerow({key: _csv_value(value) for key, value in means.items()})
    return buffer.getvalue()


def _csv_value(value):
    """Booleans as JSON spells them; everything else as csv writes it (None is an empty cell)."""
    return ("true" if value else "false") if isinstance(value, bool) else value
