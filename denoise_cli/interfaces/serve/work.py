"""The web page's jobs: uploads saved under names the server makes, run by the CLI's runner in a bounded queue, and
their results kept for a while in a private folder.

One web job is one upload: several images (with optional references), one method and its settings. Worker threads
(``workers``) take jobs from a queue of ``queue_size``; a full queue refuses new jobs (the page shows "busy").
Everything a job writes lives in its own folder under the server's temporary folder, which is deleted
``keep_seconds`` after the job ends, and entirely when the server stops.
"""
from __future__ import annotations

import queue
import secrets
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from ...batch.jobs import Job, output_path
from ...batch.report import summarize
from ...batch.runner import Events, RunOptions, run_batch
from ...core import imageio
from ...core.imageio import Image
from ...methods import METHODS
from ...methods.deblur import kernel_dropped
from ..terminal import PSF_REJECTED


@dataclass
class Upload:
    """One uploaded image: its bytes decoded once (checked) and the name the user knows it by (display only)."""

    name: str
    data: bytes
    image: Image
    reference: Optional[bytes] = None


@dataclass
class WebJob:
    """A job's state as the page sees it; ``folder`` holds in/, ref/, out/ and report.json."""

    id: str
    method: str
    settings: dict
    seed: int
    names: list
    folder: Path
    status: str = "queued"
    progress: list = field(default_factory=list)  # per image: {"phase", "done", "total"}
    records: list = field(default_factory=list)
    summary: Optional[dict] = None
    ended: Optional[float] = None

    def view(self) -> dict:
        images = []
        for index, name in enumerate(self.names):
            record = self.records[index] if index < len(self.records) else None
            entry = {"name": name, "status": record["status"] if record else (
                "running" if self.status == "running" and index == len(self.records) else "queued"),
                     "progress": self.progress[index]}
            if record:
                entry.update({key: record.get(key) for key in (
                    "error", "seconds", "iterations", "weight", "sigma_estimate", "psnr_in", "ssim_in", "psnr_out",
                    "ssim_out")})
                if record["error"]:  # the CLI's words, less the server's private path
                    entry["error"] = record["error"].replace(str(self.folder / "in") + "/", "")
                if kernel_dropped(record["facts"]):
                    entry["notice"] = PSF_REJECTED
            images.append(entry)
        return {"id": self.id, "method": self.method, "status": self.status, "images": images,
                "summary": self.summary}


class ServerStopping(Exception):
    """Raised from a job's progress callback when the server stops: the job ends at its next step."""


class _Progress(Events):
    def __init__(self, job: WebJob, stopping: threading.Event):
        self.job, self.index, self.stopping = job, 0, stopping

    def started(self, index: int, total: int, item: Job) -> None:
        self.index = index

    def progress(self, done: int, steps: int, facts: dict) -> None:
        if self.stopping.is_set():
            raise ServerStopping("the server stopped")
        self.job.progress[self.index] = {"phase": facts.get("phase", "working"), "done": done, "total": steps}

    def finished(self, record: dict) -> None:
        self.job.records.append(record)


class JobQueue:
    """Bounded queue of web jobs, ``workers`` threads running them, and the expiry of their results."""

    def __init__(self, root: Path, device: torch.device, workers: int, queue_size: int, keep_seconds: float):
        self.root, self.device, self.keep_seconds = root, device, keep_seconds
        self.jobs: dict = {}
        self.lock = threading.Lock()
        self.pending: queue.Queue = queue.Queue(maxsize=queue_size)
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        self.threads.append(threading.Thread(target=self._expire, daemon=True))
        for thread in self.threads:
            thread.start()

    def submit(self, method: str, settings: dict, seed: int, uploads: list) -> Optional[WebJob]:
        """Save the uploads and queue the job; None when the queue is full (nothing saved)."""
        if self.pending.full():
            return None
        job_id = secrets.token_urlsafe(18)
        folder = self.root / job_id
        job = WebJob(job_id, method, settings, seed, [u.name for u in uploads], folder,
                     progress=[{"phase": "queued", "done": 0, "total": 0} for _ in uploads])
        for sub in ("in", "ref", "out"):
            (folder / sub).mkdir(parents=True)
        for index, upload in enumerate(uploads):
            suffix = next(ext for ext, fmt in imageio.FORMATS.items() if fmt == upload.image.format)
            imageio.write_bytes_atomic(folder / "in" / f"{index:04d}{suffix}", upload.data)
            if upload.reference is not None:
                imageio.write_bytes_atomic(folder / "ref" / f"{index:04d}{suffix}", upload.reference)
        with self.lock:
            self.jobs[job_id] = job
        try:
            self.pending.put_nowait(job)
        except queue.Full:  # another request took the last place meanwhile
            with self.lock:
                del self.jobs[job_id]
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return job

    def get(self, job_id: str) -> Optional[WebJob]:
        with self.lock:
            return self.jobs.get(job_id)

    def stop(self) -> None:
        """End the running jobs at their next step, wait for the threads, delete every upload and result."""
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def _work(self) -> None:
        while not self.stopping.is_set():
            try:
                job = self.pending.get(timeout=0.5)
            except queue.Empty:
                continue
            self._run(job)

    def _run(self, job: WebJob) -> None:
        job.status = "running"
        method = METHODS[job.method]
        inputs = sorted((job.folder / "in").iterdir())
        jobs = []
        for source in inputs:
            reference = job.folder / "ref" / source.name
            jobs.append(Job(str(source), Path(source.name), output=str(job.folder / "out" / source.name),
                            reference=str(reference) if reference.exists() else None))
        params = {name: {"value": value, "source": "page"} for name, value in job.settings.items()}
        started = time.perf_counter()
        records = run_batch(jobs, method, job.settings, RunOptions(device=self.device, seed=job.seed),
                            _Progress(job, self.stopping), params)
        for record, name in zip(records, job.names):
            download = output_path(Job(name, Path(name)), None, None, method.suffix)  # NAME.denoised.EXT, as the CLI
            record.update(input=name, output=download, reference=(
                "uploaded" if record["reference"] else None))
        job.records = records
        job.summary = summarize(records, time.perf_counter() - started)
        job.status, job.ended = "done", time.time()

    def _expire(self) -> None:
        while not self.stopping.wait(timeout=min(5.0, max(self.keep_seconds / 4, 0.05))):
            now = time.time()
            with self.lock:
                expired = [j for j in self.jobs.values() if j.ended and now - j.ended > self.keep_seconds]
                for job in expired:
                    del self.jobs[job.id]
            for job in expired:
                shutil.rmtree(job.folder, ignore_errors=True)
