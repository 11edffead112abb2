"""Batches at scale: worker processes (--jobs), shards, and a real local Dask cluster (worker processes), all through
the installed command or a separate Python process (forking from pytest, whose torch threads are running, is not
what the command does)."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from .conftest import noisy_copy, run_subprocess, save, stderr_when_done

HAVE_DASK = importlib.util.find_spec("distributed") is not None
if not HAVE_DASK and os.environ.get("CI"):
    raise RuntimeError("CI must run the Dask tests: install the extra (pip install -e '.[test,dask]')")
needs_dask = pytest.mark.skipif(not HAVE_DASK, reason="Dask is not installed (pip install 'denoise-cli[dask]')")


def _folder(root: Path, retina: np.ndarray, grass: np.ndarray, count: int = 6) -> Path:
    folder = root / "in"
    for index in range(count):
        sub = folder / ("a" if index % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        image = retina[index:index + 48, index:index + 48] if index % 3 else grass[:48, index:index + 48]
        save(sub / f"img{index}.png", noisy_copy(image, 20, seed=index))
    return folder


def _rows(report: Path) -> list:
    """The report rows without what may differ from run to run (times)."""
    rows = json.loads(report.read_text())["images"]
    for row in rows:
        row.pop("seconds")
        row["facts"].pop("seconds", None)
        row["facts"].pop("weight_seconds", None)
        row["facts"].pop("solve_seconds", None)
        row["facts"].pop("finish_seconds", None)
    return rows


def _rounded(value):
    """``value`` (nested lists and dicts) with every float rounded to 12 significant digits."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _outputs(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _denoise(*args):
    result = run_subprocess(*args, timeout=600)
    assert result.returncode == 0, result.stderr.decode()
    return result


@pytest.mark.parametrize("method,extra", [("tv", []), ("zsn2n", ["--iterations", "30"])])
def test_worker_processes_give_the_same_outputs_and_report_rows_in_input_order(tmp_path, retina, grass, method,
                                                                                  extra):
    folder = _folder(tmp_path, retina, grass)
    for jobs in ("1", "2"):  # one thread per image in both: a network fit is bit for bit only at the same threads
        _denoise(method, folder, "--output-dir", tmp_path / f"out{jobs}", "--jobs", jobs, "--threads", jobs,
                 "--report", tmp_path / f"r{jobs}.json", *extra)
    assert _outputs(tmp_path / "out1") == _outputs(tmp_path / "out2")
    rows1, rows2 = _rows(tmp_path / "r1.json"), _rows(tmp_path / "r2.json")
    for row in rows2:
        row["output"] = row["output"].replace("out2", "out1")
    assert rows1 == rows2


CRASHING_RUN = """
import json, os, sys
import torch
from denoise_cli.batch.engines import ProcessPool, Task, run_on_engine
from denoise_cli.batch.jobs import plan_jobs
from denoise_cli.batch.runner import RunOptions
from denoise_cli.methods.base import Method

def dies_on_narrow_images(x, progress=None):
    if x.shape[-1] == 8:
        os._exit(9)  # as the kernel's out-of-memory killer would end it
    return x, {}

if __name__ == "__main__":
    jobs = plan_jobs([sys.argv[1]], output_dir=sys.argv[2])
    task = Task(Method("crash", dies_on_narrow_images, ()), {}, RunOptions(), {}, 1)
    engine = ProcessPool(2, torch.device("cpu"))
    records = run_on_engine(jobs, engine, task)
    engine.close()
    print(json.dumps([[os.path.basename(r["input"]), r["status"], r["error"]] for r in records]))
"""


def test_an_image_that_kills_its_worker_fails_alone(tmp_path, grass):
    folder = tmp_path / "in"
    folder.mkdir()
    for index in range(6):
        save(folder / f"g{index}.png", grass[:16, : (8 if index == 2 else 16)])
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(CRASHING_RUN))
    result = subprocess.run([sys.executable, script, folder, tmp_path / "out"], capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr.decode()
    rows = json.loads(result.stdout)
    assert [name for name, _, _ in rows] == [f"g{i}.png" for i in range(6)]
    assert [status for _, status, _ in rows] == ["done", "done", "failed", "done", "done", "done"]
    assert "worker process died" in rows[2][2]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"g{i}.png" for i in (0, 1, 3, 4, 5)]


def test_ctrl_c_stops_the_workers_without_partial_files(tmp_path, retina, grass):
    folder = _folder(tmp_path, retina, grass, count=4)
    out, report = tmp_path / "out", tmp_path / "r.json"
    command = [sys.executable, "-m", "denoise_cli", "zsn2n", str(folder), "--output-dir", str(out), "--jobs", "2",
               "--iterations", "100000", "--report", str(report)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, start_new_session=True)
    time.sleep(6)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal sends it: to the whole process group
    stderr = stderr_when_done(process, 120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".part")]
    summary = json.loads(report.read_text())["summary"]
    assert summary["interrupted"] and len(summary["not_processed"]) == 4


def test_shards_cover_the_inputs_once_and_their_reports_merge(tmp_path, retina, grass):
    folder = _folder(tmp_path, retina, grass)
    for shard in ("1/2", "2/2"):
        _denoise("tv", folder, "--output-dir", tmp_path / "out", "--shard", shard, "--weight", "0.1",
                 "--report", tmp_path / f"r{shard[0]}.json")
    _denoise("report", "merge", tmp_path / "r1.json", tmp_path / "r2.json", "-o", tmp_path / "all.csv")
    rows = (tmp_path / "all.csv").read_text().splitlines()
    inputs = sorted(line.split(",")[0] for line in rows[1:-1])
    assert inputs == sorted(str(p) for p in folder.rglob("*.png")) and rows[-1].startswith("MEAN")
    assert len(list((tmp_path / "out").rglob("*.png"))) == 6


@needs_dask
def test_a_local_dask_cluster_gives_the_same_outputs_and_report(tmp_path, retina, grass):
    folder = _folder(tmp_path, retina, grass)
    _denoise("tv", folder, "--output-dir", tmp_path / "local", "--jobs", "1", "--report", tmp_path / "local.json")
    _denoise("tv", folder, "--output-dir", tmp_path / "dask", "--engine", "dask", "--jobs", "2", "--report",
             tmp_path / "dask.json")
    assert _outputs(tmp_path / "local") == _outputs(tmp_path / "dask")
    local, dask = _rows(tmp_path / "local.json"), _rows(tmp_path / "dask.json")
    for row in dask:
        row["output"] = row["output"].replace(str(tmp_path / "dask"), str(tmp_path / "local"))
    # equal up to the last bits of floats: one thread per worker sums in another order than two threads, which can
    # take the weight search to the same lambda by another rounding (the outputs above are byte-identical)
    assert _rounded(local) == _rounded(dask)


KILLED_WORKER_RUN = """
import json, os, signal, sys, threading, time
from distributed import Client, LocalCluster
from denoise_cli.batch.engines import DaskCluster, Task, run_on_engine
from denoise_cli.batch.jobs import plan_jobs
from denoise_cli.batch.runner import Events, RunOptions
from denoise_cli.methods import METHODS

class KillOnce(Events):
    def __init__(self, client):
        self.client, self.killed = client, False

    def finished(self, record):
        if not self.killed:  # one image is done and others are running: end a worker process the hard way
            self.killed = True
            pids = self.client.run(os.getpid)
            os.kill(next(iter(pids.values())), signal.SIGKILL)

if __name__ == "__main__":
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=50)
    engine = DaskCluster(2, scheduler=cluster.scheduler_address)
    jobs = plan_jobs([sys.argv[1]], output_dir=sys.argv[2])
    settings = {"iterations": 150, "learning_rate": 1e-3, "step_size": "auto", "gamma": 0.5, "channels": 16,
                "exact": False, "seed": 0}
    task = Task(METHODS["zsn2n"], settings, RunOptions(), {}, 1)
    records = run_on_engine(jobs, engine, task, KillOnce(engine.client))
    engine.close()
    cluster.close()
    print(json.dumps([r["status"] for r in records]))
"""


@needs_dask
def test_a_killed_dask_worker_is_retried_and_every_output_is_written_once(tmp_path, retina, grass):
    folder = _folder(tmp_path, retina, grass, count=8)
    script = tmp_path / "kill.py"
    script.write_text(textwrap.dedent(KILLED_WORKER_RUN))
    result = subprocess.run([sys.executable, script, folder, tmp_path / "out"], capture_output=True, timeout=600)
    assert result.returncode == 0, result.stderr.decode()[-3000:]
    assert json.loads(result.stdout.splitlines()[-1]) == ["done"] * 8
    written = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.png"))
    assert written == sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.png"))
    for path in (tmp_path / "out").rglob("*.png"):
        Image.open(path).load()  # complete files, not parts


def test_threads_follow_omp_num_threads_when_the_user_sets_it(monkeypatch):
    from denoise_cli.core.device import available_cores, resolve_threads
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert resolve_threads("auto") == 3 and resolve_threads(5) == 5
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert resolve_threads("auto") == available_cores()
