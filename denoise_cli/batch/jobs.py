"""Planning a batch: inputs (files, folders, globs, stdin) -> jobs, each with its output path and its reference.

Usable from Python without click::

    from denoise_cli.batch.jobs import plan_jobs
    jobs = plan_jobs(["photos/"], output_dir="clean/", suffix=".denoised")
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..core import imageio
from ..core.errors import UsageError
from ..core.imageio import STDIO

#: Stem endings of this tool's outputs, ignored when an input is paired with its reference.
OUTPUT_MARKERS = (".denoised", ".noisy")


@dataclass
class Job:
    """One input image. relative: its path below the folder it was found in (or its name), used to mirror the tree
    under an output folder and to pair it with a reference."""

    source: str
    relative: Path
    output: Optional[str] = None
    reference: Optional[str] = None


def expand_inputs(inputs: Sequence[str], skip_suffix: Optional[str] = None) -> list[Job]:
    """Files, folders (recursive, image extensions only, hidden entries and names ending in ``skip_suffix`` -- the
    command's own outputs -- skipped), glob patterns, and ``-`` for stdin. A path that does not exist is kept, so that
    it fails visibly as its own job."""
    jobs: list[Job] = []
    for item in inputs:
        path = Path(item)
        if item == STDIO:
            jobs.append(Job(STDIO, Path("stdin")))
        elif path.is_dir():
            jobs.extend(Job(str(found), found.relative_to(path)) for found in scan_folder(path, skip_suffix))
        elif not path.exists() and glob.has_magic(item):
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
            jobs.extend(Job(str(m), Path(m.name)) for m in matches)
            if not matches:
                jobs.append(Job(item, Path(path.name)))
        else:
            jobs.append(Job(item, Path(path.name)))
    return jobs


def scan_folder(folder: Path, skip_suffix: Optional[str] = None) -> list[Path]:
    """Image files below ``folder``, sorted; hidden entries and stems ending in ``skip_suffix`` skipped."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            candidate = Path(root) / name
            if (name.startswith(".") or candidate.suffix.lower() not in imageio.FORMATS
                    or skip_suffix and candidate.stem.endswith(skip_suffix)):
                continue
            found.append(candidate)
    return found


def output_path(job: Job, output: Optional[str], output_dir: Optional[str], suffix: str) -> str:
    """Where the result of ``job`` goes: ``output``; else ``output_dir``/relative; else NAME<suffix>.EXT beside
    the input; stdin's result goes to stdout unless told otherwise."""
    if output:
        return output
    if job.source == STDIO:
        if output_dir:
            raise UsageError("stdin input needs -o FILE (or -o - for stdout), not --output-dir")
        return STDIO
    if output_dir:
        return str(Path(output_dir) / job.relative)
    source = Path(job.source)
    return str(source.with_name(source.stem + suffix + source.suffix))


def _reference_for(job: Job, reference: Optional[str], single: bool) -> Optional[str]:
    """The reference of ``job``: the file itself for a single input; else, in the reference folder, the file with the
    input's stem less a ``.noisy``/``.denoised`` marker, then the one at the same relative path, then any with the same
    stem (any image extension). The input itself is never its own reference."""
    if reference is None:
        return None
    ref = Path(reference)
    if not ref.is_dir():
        if not single:
            raise UsageError(f"--reference {reference}: give a folder when there are several inputs")
        return reference
    folder = ref / job.relative.parent
    stem = job.relative.stem
    bare = next((stem[: -len(m)] for m in OUTPUT_MARKERS if stem.endswith(m)), None)
    candidates = [folder / (bare + s) for s in imageio.FORMATS] if bare else []
    candidates.append(ref / job.relative)
    candidates += [folder / (stem + s) for s in imageio.FORMATS]
    for candidate in candidates:
        if candidate.is_file() and not same_file(candidate, job.source):
            return str(candidate)
    return None


def same_file(path: Path, source: str) -> bool:
    return source != STDIO and Path(source).exists() and path.samefile(source)


def plan_jobs(inputs: Sequence[str], output: Optional[str] = None, output_dir: Optional[str] = None,
              reference: Optional[str] = None, suffix: str = ".denoised") -> list[Job]:
    """Expand the inputs and give each job its output and reference. Raises UsageError for a usage problem."""
    if output and output_dir:
        raise UsageError("give either -o/--output or --output-dir, not both")
    jobs = expand_inputs(inputs, skip_suffix=suffix)
    if not jobs:
        raise UsageError("no input images found")
    if output and len(jobs) > 1:
        raise UsageError(f"-o names one output but there are {len(jobs)} inputs; use --output-dir DIR")
    for job in jobs:
        job.output = output_path(job, output, output_dir, suffix)
        job.reference = _reference_for(job, reference, single=len(jobs) == 1)
    return jobs
