"""Every case of the bad-input corpus (tests/bad_inputs.py) through the installed command: the documented exit
status, exactly one line on stderr that says what is wrong and names the file or option, no traceback and no Python
warning text, no partial or temporary file left behind, and every input byte for byte as it was. A batch of all the
bad files with good ones among them still processes the good ones."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from .bad_inputs import CASES, FAST, Case

DENOISE = shutil.which("denoise", path=str(Path(sys.executable).parent)) or "denoise"


def _snapshot(folder: Path) -> dict:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _run(args: list, env: dict, stdin: bytes = b"") -> subprocess.CompletedProcess:
    full_env = dict(os.environ, OMP_NUM_THREADS="1", **env)
    full_env.pop("DENOISE_DEBUG", None)
    return subprocess.run([DENOISE, *map(str, args)], input=stdin, capture_output=True, env=full_env, timeout=300)


def _check(case: Case, folder: Path) -> None:
    folder.mkdir()
    args = case.make(folder)
    before = _snapshot(folder)
    result = _run(args, case.env)
    stderr = result.stderr.decode("utf-8", "replace")
    lines = stderr.strip().splitlines()
    assert result.returncode == case.code, f"{case.name}: exit {result.returncode}\n{stderr}"
    assert len(lines) == 1, f"{case.name}: {stderr}"
    assert case.says in lines[0], f"{case.name}: {lines[0]}"
    if case.names:
        assert case.names in lines[0], f"{case.name}: {lines[0]}"
    for text in ("Traceback", "Warning", "Error:", "Exception"):
        assert text not in stderr, f"{case.name}: {stderr}"
    after = _snapshot(folder)
    for path, data in before.items():
        assert after.get(path) == data, f"{case.name}: {path.name} changed"
    leftovers = [p.name for p in folder.rglob("*") if p.name.endswith(".part") or p.name.startswith(".")]
    assert not leftovers, f"{case.name}: {leftovers}"
    if case.code == 2:
        assert set(after) == set(before), f"{case.name}: wrote {set(after) - set(before)}"


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 60 and len({case.name for case in CASES}) == len(CASES)


def test_every_bad_input_gets_one_clear_line_and_the_documented_exit_code(tmp_path):
    with ThreadPoolExecutor(max_workers=2) as pool:  # one process per case, two at a time
        futures = {case.name: pool.submit(_check, case, tmp_path / f"case{index}")
                   for index, case in enumerate(CASES)}
    failures = []
    for name, future in futures.items():
        try:
            future.result()
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
    assert not failures, "\n".join(failures)


def test_a_batch_of_bad_files_still_processes_the_good_ones(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    bad = []
    for index, case in enumerate(CASES):
        if case.code != 1 or not case.names or not case.names.endswith((".png", ".jpg", ".tif", ".webp",
                                                                          ".bmp")):
            continue
        scratch = tmp_path / f"scratch{index}"
        scratch.mkdir()
        args = case.make(scratch)
        source = Path(str(args[1]))
        unreadable = len(args) > 3 and Path(str(args[3])).name in ("out.png", "out.tif")  # about the input itself
        if unreadable and source.is_file() and source.name == case.names and not (inputs / source.name).exists():
            shutil.copy(source, inputs / source.name)
            bad.append(source.name)
    rng = np.random.default_rng(0)
    for name in ("a_good.png", "z_good.png"):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(inputs / name)
    before = _snapshot(inputs)
    result = _run(["tv", inputs, "--output-dir", tmp_path / "out", *FAST], {})
    stderr = result.stderr.decode()
    assert result.returncode == 1, stderr
    lines = stderr.strip().splitlines()
    assert len(bad) >= 20
    for name in bad:
        assert sum(name in line for line in lines) == 1, f"{name}: {stderr}"
    assert (tmp_path / "out" / "a_good.png").exists() and (tmp_path / "out" / "z_good.png").exists()
    assert lines[-1].startswith(f"denoise tv: 2 done, 0 skipped, {len(bad)} failed")
    assert "Traceback" not in stderr and _snapshot(inputs) == before


def test_the_documented_table_lists_every_case():
    table = (Path(__file__).resolve().parents[1] / "docs" / "bad-inputs.md").read_text(encoding="utf-8")
    missing = [case.name for case in CASES if f"| {case.name} | {case.code} |" not in table]
    assert not missing, f"docs/bad-inputs.md lacks {missing}"
