"""Where the jobs of a batch run: a pool of worker processes on this machine, or a Dask cluster.

Both are ``concurrent.futures`` executors behind one small interface, :class:`Engine`, so the runner has one code
path for them. A job is plain, picklable data; a worker reads, denoises and writes its output atomically and returns
the job's record; only the caller writes the report. Each worker sets its own share of the threads before it works.
"""
from __future__ import annotations

import os
import signal
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import get_all_start_methods, get_context
from typing import Callable, Optional, Sequence, Union

import torch

from ..core.device import resolve_threads, set_threads
from ..core.errors import UsageError, plain_reason
from ..core.imageio import STDIO
from ..methods import Method
from .jobs import Job
from .runner import Events, RunOptions, failed_record, run_job


@dataclass(frozen=True)
class Task:
    """What every job of a batch shares, sent to the workers with each job."""

    method: Method
    settings: dict
    options: RunOptions
    params: dict
    threads: int  # per worker; 0: what the worker's machine gives it (resolve_threads there)


class WorkerLost(Exception):
    """The process running a job died (killed, or out of memory) and the job could not be finished elsewhere."""


_in_job = False  # in a worker process: is a job running (so a stop request unwinds it, removing partial files)?


def run_in_worker(job: Job, task: Task) -> dict:
    """A worker's whole part of one job: read, denoise, write atomically, return the record."""
    global _in_job
    set_threads(task.threads or resolve_threads("auto"))
    _in_job = True
    try:
        return run_job(job, task.method, task.settings, task.options, Events(), task.params)
    except KeyboardInterrupt:  # stopped by the caller: the partial output was removed while unwinding
        os._exit(130)
    finally:
        _in_job = False


def _stop_worker(signum, frame) -> None:
    if _in_job:
        raise KeyboardInterrupt
    os._exit(130)


def _start_worker() -> None:
    """Workers leave Ctrl-C to the caller, which stops them with SIGTERM; a job in progress then unwinds."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)


class Engine:
    """An executor to submit jobs to, how many jobs to keep in flight, and what to do when a worker is lost."""

    workers: int = 1

    def threads_per_worker(self, total: int) -> int:
        """Each worker's share of this machine's ``total`` threads (0: the worker decides, on its own machine)."""
        return max(1, total // self.workers)

    def submit(self, job: Job, task: Task) -> Future:
        raise NotImplementedError

    def lost(self, error: BaseException) -> bool:
        """Whether ``error`` (raised by a job's future) means its worker died rather than the job failing."""
        return False

    def run_alone(self, job: Job, task: Task) -> dict:
        """Run a job whose worker died by itself, so that it fails alone if it kills its worker again."""
        raise WorkerLost("its worker process died")

    def stop(self) -> None:
        """Ctrl-C: end the jobs in flight (their partial files removed) and the workers."""
        self.close()

    def close(self) -> None:
        """Release the workers once the batch is done."""


def _worker_context(device: torch.device):
    """Forked workers on the CPU: they start at once with torch already imported, where spawned ones would each
    import it again (2-3 s). The caller must not have run torch's OpenMP pool or CUDA before (the CLI has not: it
    only plans). On a GPU, or where there is no fork, workers are spawned."""
    if device.type == "cpu" and "fork" in get_all_start_methods():
        return get_context("fork")
    return get_context("spawn")


class ProcessPool(Engine):
    """``workers`` processes on this machine."""

    def __init__(self, workers: int, device: torch.device):
        self.workers, self.device = workers, device
        self._pool = self._new_pool(workers)

    def _new_pool(self, workers: int) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(workers, mp_context=_worker_context(self.device), initializer=_start_worker)

    def submit(self, job: Job, task: Task) -> Future:
        try:
            return self._pool.submit(run_in_worker, job, task)
        except BrokenProcessPool as exc:  # a worker died since the last wait: this job is lost with the pool
            lost: Future = Future()
            lost.set_exception(exc)
            return lost

    def lost(self, error: BaseException) -> bool:
        if isinstance(error, BrokenProcessPool):
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool(self.workers)
            return True
        return False

    def run_alone(self, job: Job, task: Task) -> dict:
        with self._new_pool(1) as alone:
            try:
                return alone.submit(run_in_worker, job, task).result()
            except BrokenProcessPool:
                raise WorkerLost("its worker process died while denoising it (out of memory?)") from None

    def stop(self) -> None:
        processes = list(getattr(self._pool, "_processes", {}).values())
        for process in processes:
            process.terminate()
        for process in processes:
            process.join(timeout=30)
        self.close()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskCluster(Engine):
    """A Dask cluster: a new local one with ``workers`` processes, or the running one at ``scheduler``. Dask retries a
    job whose worker was lost (up to ``retries`` times); each job's seed comes from its input, so a retry writes the
    same output, atomically."""

    def __init__(self, workers: int, scheduler: Optional[str] = None, threads: int = 1, retries: int = 2):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise UsageError("the dask engine needs Dask: pip install 'denoise-cli[dask]'") from None
        self.cluster = None
        if scheduler:
            self.client = Client(scheduler, timeout="20s")
            self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        else:
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, silence_logs=50)
            self.client = Client(self.cluster)
            self.workers = workers
        self.executor: Executor = self.client.get_executor(retries=retries, pure=False)

    def threads_per_worker(self, total: int) -> int:
        return 0 if self.cluster is None else super().threads_per_worker(total)

    def submit(self, job: Job, task: Task) -> Future:
        return self.executor.submit(run_in_worker, job, task)

    def lost(self, error: BaseException) -> bool:
        return type(error).__name__ == "KilledWorker"

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def choose_engine(jobs_option: Union[int, str], engine: str, scheduler: Optional[str], jobs: Sequence[Job],
                  device: torch.device, threads: int) -> Optional[Engine]:
    """The engine the options ask for, or None to run in this process. ``--jobs auto`` is one worker per thread
    (at most one per image) for a batch on the CPU; one image, a pipe or a GPU run in this process."""
    in_pipe = any(job.source == STDIO or job.output == STDIO for job in jobs)
    if jobs_option == "auto":
        workers = min(threads, len(jobs)) if device.type == "cpu" and not in_pipe else 1
    else:
        workers = min(int(jobs_option), len(jobs))
    if engine == "dask" or scheduler:
        if in_pipe:
            raise UsageError("stdin and stdout stay on this machine: the dask engine needs files")
        return DaskCluster(max(1, workers), scheduler)
    if workers <= 1:
        return None
    if in_pipe:
        raise UsageError("stdin and stdout need --jobs 1")
    return ProcessPool(workers, device)


def run_on_engine(jobs: Sequence[Job], engine: Engine, task: Task, events: Optional[Events] = None,
                  on_interrupt: Optional[Callable[[list], None]] = None) -> list[dict]:
    """Run every job on ``engine`` and return the records in input order (what :func:`.runner.run_batch` returns for
    the same jobs). At most twice as many jobs as workers are in flight; a job whose worker died is run again alone,
    and fails alone if it kills that worker too. On Ctrl-C the engine is stopped, the finished records (in input
    order) go to ``on_interrupt`` and KeyboardInterrupt is raised again."""
    events = events or Events()
    records: list = [None] * len(jobs)
    in_flight: dict = {}
    queued = iter(range(len(jobs)))
    try:
        for index in queued:
            in_flight[engine.submit(jobs[index], task)] = index
            if len(in_flight) >= 2 * engine.workers:
                break
        while in_flight:
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                index = in_flight.pop(future)
                records[index] = _result(future, engine, jobs[index], task)
                events.finished(records[index])
                following = next(queued, None)
                if following is not None:
                    in_flight[engine.submit(jobs[following], task)] = following
    except KeyboardInterrupt:
        engine.stop()
        if on_interrupt is not None:
            on_interrupt([record for record in records if record is not None])
        raise
    return records


def _result(future: Future, engine: Engine, job: Job, task: Task) -> dict:
    try:
        return future.result()
    except Exception as exc:
        if not engine.lost(exc):
            return failed_record(job, task.method, task.options, task.params, f"{job.source}: {plain_reason(exc)}")
    try:
        return engine.run_alone(job, task)
    except WorkerLost as exc:
        return failed_record(job, task.method, task.options, task.params, f"{job.source}: {exc}")
