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
from ..core.errors import DenoiseError, UsageError
from ..core.imageio import STDIO

#: Stem endings of this tool's outputs, ignored when an input is paired with its reference.
OUTPUT_MARKERS = (".denoised", ".noisy")


@dataclass
class Job:
    """One input image. relative: its path below the folder it was found in (or its name), used to mirror the tree
    under an output folder and to pair it with a reference. noisy_output: where the noisy copy goes (--save-noisy).
    skip: the output exists and the batch resumes; refusal: why the job must not run (a file it would write is an
    input or exists), found before any work."""

    source: str
    relative: Path
    output: Optional[str] = None
    reference: Optional[str] = None
    noisy_output: Optional[str] = None
    skip: bool = False
    refusal: Optional[str] = None


def expand_inputs(inputs: Sequence[str], skip_suffix: Optional[str] = None,
                  skip_folder: Optional[str] = None) -> list[Job]:
    """Files, folders (recursive, image extensions only; hidden entries, names ending in ``skip_suffix`` -- the
    command's own outputs -- and the output folder ``skip_folder`` skipped), glob patterns (``**`` included; the
    part after the last folder without wildcards is kept as the relative path), and ``-`` for stdin. A path that does
    not exist is kept, so that it fails visibly as its own job."""
    jobs: list[Job] = []
    for item in inputs:
        path = Path(item)
        if item == STDIO:
            jobs.append(Job(STDIO, Path("stdin")))
        elif path.is_dir():
            jobs.extend(Job(str(found), found.relative_to(path))
                        for found in scan_folder(path, skip_suffix, skip_folder))
        elif not path.exists() and glob.has_magic(item):
            base = _glob_base(path)
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
            jobs.extend(Job(str(m), m.relative_to(base)) for m in matches if not _inside(m, skip_folder))
            if not matches:
                jobs.append(Job(item, Path(path.name)))
        else:
            jobs.append(Job(item, Path(path.name)))
    return jobs


def _glob_base(pattern: Path) -> Path:
    """The leading folders of a glob pattern that hold no wildcard: photos/**/*.png -> photos."""
    parts = []
    for part in pattern.parts[:-1]:
        if glob.has_magic(part):
            break
        parts.append(part)
    return Path(*parts) if parts else Path(".")


def _inside(path: Path, folder: Optional[str]) -> bool:
    """True when ``path`` lies in ``folder`` (or is it)."""
    if folder is None:
        return False
    target = os.path.realpath(folder)
    return os.path.commonpath([os.path.realpath(path), target]) == target


def scan_folder(folder: Path, skip_suffix: Optional[str] = None, skip_folder: Optional[str] = None) -> list[Path]:
    """Image files below ``folder``, sorted; hidden entries, stems ending in ``skip_suffix`` and the folder
    ``skip_folder`` (an output folder inside the input folder) skipped."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _inside(Path(root) / d, skip_folder))
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
    if not ref.exists():
        raise UsageError(f"--reference {reference}: no such file or folder")
    if not ref.is_dir():
        if not single:
            raise UsageError(f"--reference {reference}: give a folder when there are several inputs")
        return reference
    folder = ref / job.relative.parent
    stem = job.relative.stem
    bare = bare_stem(stem)
    candidates = [folder / (bare + s) for s in imageio.FORMATS] if bare != stem else []
    candidates.append(ref / job.relative)
    candidates += [folder / (stem + s) for s in imageio.FORMATS]
    for candidate in candidates:
        if candidate.is_file() and not _same_file(candidate, job.source):
            return str(candidate)
    return None


def bare_stem(stem: str) -> str:
    """A file stem less this tool's ``.noisy``/``.denoised`` marker: how an image finds its clean reference."""
    return next((stem[: -len(marker)] for marker in OUTPUT_MARKERS if stem.endswith(marker)), stem)


def _same_file(path: Path, source: str) -> bool:
    return source != STDIO and Path(source).exists() and path.samefile(source)


def plan_jobs(inputs: Sequence[str], output: Optional[str] = None, output_dir: Optional[str] = None,
              reference: Optional[str] = None, suffix: str = ".denoised", save_noisy: bool = False,
              overwrite: bool = False, skip_existing: bool = False) -> list[Job]:
    """Expand the inputs, give each job its output, noisy copy and reference, and decide before any work which jobs
    are skipped (``skip_existing``) or refused (see :func:`protect_files`). Raises UsageError for a usage problem."""
    if output and output_dir:
        raise UsageError("give either -o/--output or --output-dir, not both")
    if overwrite and skip_existing:
        raise UsageError("give either --overwrite or --skip-existing, not both")
    jobs = expand_inputs(inputs, skip_suffix=suffix, skip_folder=output_dir)
    if not jobs:
        raise UsageError("no input images found")
    if output and len(jobs) > 1:
        raise UsageError(f"-o names one output but there are {len(jobs)} inputs; use --output-dir DIR")
    for job in jobs:
        job.output = output_path(job, output, output_dir, suffix)
        job.reference = _reference_for(job, reference, single=len(jobs) == 1)
        if save_noisy:
            job.noisy_output = noisy_path(job)
    protect_files(jobs, overwrite, skip_existing)
    return jobs


def noisy_path(job: Job) -> str:
    """Where --save-noisy puts the noisy copy: the output's name with ``.noisy`` in place of ``.denoised``."""
    if job.output == STDIO:
        raise UsageError("--save-noisy needs an output file, not stdout")
    out = Path(job.output)
    stem = out.stem[: -len(".denoised")] if out.stem.endswith(".denoised") else out.stem
    return str(out.with_name(stem + ".noisy" + out.suffix))


def protect_files(jobs: Sequence[Job], overwrite: bool, skip_existing: bool) -> None:
    """Mark the jobs whose files must not be written, before any work: a file a job writes (output or noisy copy)
    is never an input of the batch, never another job's, and never an existing file unless ``overwrite``; with
    ``skip_existing`` a job whose output exists is skipped instead."""
    inputs = [job.source for job in jobs]
    claimed: dict = {}
    for job in jobs:
        if job.output != STDIO and skip_existing and Path(job.output).exists():
            job.skip = True
            continue
        for target, what in ((job.output, "output"), (job.noisy_output, "noisy copy")):
            if target is None or target == STDIO:
                continue
            job.refusal = _refusal(job, target, what, inputs, claimed, overwrite)
            if job.refusal:
                break
            claimed[_key(target)] = job.source


def _refusal(job: Job, target: str, what: str, inputs: dict, claimed: dict, overwrite: bool) -> Optional[str]:
    if _key(target) in claimed:
        return f"{job.source}: the {what} {target} is also written by {claimed[_key(target)]} in this run"
    reason = write_refusal(target, inputs, overwrite, job.source)
    if reason:
        return f"{job.source}: the {what} {target} {reason}"
    try:
        imageio.format_for_path(target)
    except DenoiseError as exc:
        return str(exc)
    return None


def write_refusal(target: str, inputs, overwrite: bool, source: Optional[str] = None) -> Optional[str]:
    """Why the tool must not write ``target``, in words that follow its name, or None: it is one of ``inputs``
    (paths), a folder, or an existing file while ``overwrite`` is off. ``source``: the input the file is made from."""
    key = _key(target)
    for name in inputs:
        if name != STDIO and _key(name) == key:
            return "would overwrite the input" if name == source else f"would overwrite the input {name}"
    if Path(target).is_dir():
        return "is a folder"
    existing = next((parent for parent in Path(target).parents if parent.exists()), None)
    if existing is not None and not existing.is_dir():
        return f"cannot be made: {existing} is a file, not a folder"
    if Path(target).exists() and not overwrite:
        return "exists (use --overwrite or --skip-existing)" if source else "exists (use --overwrite)"
    return None


def _key(path: str) -> str:
    """One spelling per file: the real path (links and ``..`` resolved), so two names of one file compare equal."""
    return os.path.realpath(path)
