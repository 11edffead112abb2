"""Batch runs: folder trees, failures that do not stop the batch, reports, resuming, Ctrl-C, pipes, experiments."""
import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from denoise_cli.methods import METHODS
from denoise_cli.batch.jobs import plan_jobs
from denoise_cli.batch.runner import RunOptions, run_batch

from .conftest import SAMPLES, noisy_copy, run_cli, run_subprocess, save, stderr_when_done


def _tree(root: Path, retina: np.ndarray, grass: np.ndarray) -> list:
    """Ten clean images in three folders, their noisy copies in a mirror tree, and one corrupt file there."""
    names = []
    for index in range(10):
        folder = ["", "a", "a/b"][index % 3]
        image = retina[index:index + 40, index:index + 40] if index % 2 else grass[:40, index:index + 40]
        name = f"{folder}/img{index}.png".lstrip("/")
        for kind, pixels in (("clean", image), ("noisy", noisy_copy(image, 20, seed=index))):
            (root / kind / folder).mkdir(parents=True, exist_ok=True)
            save(root / kind / name, pixels)
        names.append(name)
    (root / "noisy" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not the rest of a png")
    (root / "noisy" / ".hidden.png").write_bytes(b"skip me")
    (root / "noisy" / "notes.txt").write_text("not an image, not an input")
    return names


def test_a_folder_tree_with_a_corrupt_file(tmp_path, retina, grass):
    names = _tree(tmp_path, retina, grass)
    report = tmp_path / "report.json"
    result = run_cli("tv", tmp_path / "noisy", "--output-dir", tmp_path / "out", "--reference",
                     tmp_path / "clean", "--report", report)
    assert result.code == 1
    errors = [line for line in result.stderr.splitlines() if "broken.png" in line]
    assert len(errors) == 1 and "corrupt" in errors[0]
    assert "10 done, 0 skipped, 1 failed" in result.stderr
    assert sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.png")) == sorted(names)
    rows = json.loads(report.read_text())
    assert rows["summary"]["failed"] == 1 and rows["summary"]["done"] == 10
    failed = [r for r in rows["images"] if r["status"] == "failed"]
    assert failed[0]["input"].endswith("broken.png") and "corrupt" in failed[0]["error"]
    for row in rows["images"]:
        if row["status"] != "done":
            continue
        assert row["psnr_out"] > row["psnr_in"]
        scored = json.loads(run_cli("ssim", row["reference"], row["output"], "--json").stdout)
        assert row["ssim_out"] == pytest.approx(scored["ssim"], abs=1e-9)
        assert row["psnr_out"] == pytest.approx(scored["psnr"], abs=1e-9)
        assert row["params"]["weight"] == {"value": "auto", "source": "default"}
        assert row["iterations"] > 0 and row["sigma_estimate"] > 0


def test_existing_outputs_are_kept_skipped_or_overwritten(tmp_path, grass):
    source = save(tmp_path / "g.png", noisy_copy(grass, 20))
    out = tmp_path / "out.png"
    assert run_cli("tv", source, "-o", out, "--max-iter", "3").code == 0
    before = out.read_bytes()
    again = run_cli("tv", source, "-o", out, "--max-iter", "50")
    assert again.code == 1 and "exists" in again.stderr and out.read_bytes() == before
    skipped = run_cli("tv", source, "-o", out, "--skip-existing")
    assert skipped.code == 0 and "0 done, 1 skipped" in skipped.stderr
    assert run_cli("tv", source, "-o", out, "--overwrite", "--max-iter", "50").code == 0
    assert out.read_bytes() != before


def test_an_input_is_never_overwritten(tmp_path, grass):
    source = save(tmp_path / "g.png", grass)
    before = source.read_bytes()
    result = run_cli("tv", source, "-o", source, "--overwrite")
    assert result.code == 1 and "overwrite the input" in result.stderr
    assert source.read_bytes() == before


def test_report_csv_has_a_row_per_image_and_the_means(tmp_path, grass):
    sources = [save(tmp_path / f"g{i}.png", noisy_copy(grass, 20, seed=i)) for i in range(2)]
    save(tmp_path / "clean" / "g0.png", grass) if (tmp_path / "clean").mkdir() is None else None
    save(tmp_path / "clean" / "g1.png", grass)
    report = tmp_path / "r.csv"
    result = run_cli("tv", *sources, "--output-dir", tmp_path / "out", "--reference", tmp_path / "clean",
                     "--report", report, "--weight", "0.05")
    assert result.code == 0, result.stderr
    rows = list(csv.DictReader(report.open()))
    assert [r["input"] for r in rows] == [str(s) for s in sources] + ["MEAN"]
    assert rows[0]["param.weight"] == "0.05" and rows[0]["param.weight.source"] == "flag"
    mean = (float(rows[0]["psnr_out"]) + float(rows[1]["psnr_out"])) / 2
    assert float(rows[2]["psnr_out"]) == pytest.approx(mean)


def test_identical_images_give_null_psnr_in_strict_json(tmp_path, grass):
    source = save(tmp_path / "g.png", grass)
    report = tmp_path / "r.json"
    run_cli("tv", source, "-o", tmp_path / "o.png", "--reference", source, "--report", report, "--max-iter", "2")
    text = report.read_text()
    assert "Infinity" not in text and "NaN" not in text
    row = json.loads(text)["images"][0]
    assert row["psnr_in"] is None and row["psnr_in_identical"] is True


def test_add_noise_experiment_is_seeded_and_scored_against_the_clean_image(tmp_path, retina):
    clean = save(tmp_path / "c.png", retina)
    reports = []
    for run in range(2):
        report = tmp_path / f"r{run}.json"
        result = run_cli("tv", clean, "-o", tmp_path / f"o{run}.png", "--add-noise", "gaussian:25", "--seed", "3",
                         "--save-noisy", "--report", report)
        assert result.code == 0, result.stderr
        reports.append(json.loads(report.read_text())["images"][0])
    assert reports[0]["psnr_in"] == pytest.approx(20.4, abs=0.6)  # sigma 25 on 0-255, a little less after clipping
    assert reports[0]["psnr_out"] > reports[0]["psnr_in"] + 3
    assert reports[0]["noise"] == "gaussian:25"
    assert (tmp_path / "o0.noisy.png").read_bytes() == (tmp_path / "o1.noisy.png").read_bytes()


def test_noise_command_writes_seeded_noisy_copies(tmp_path, retina):
    clean = save(tmp_path / "c.png", retina)
    result = run_cli("noise", clean, "--add", "gaussian:25", "--seed", "1")
    assert result.code == 0, result.stderr
    noisy = np.asarray(Image.open(tmp_path / "c.noisy.png")).astype(float)
    assert np.std(noisy - retina) == pytest.approx(25, rel=0.1)
    poisson = run_cli("noise", clean, "--add", "poisson:50", "-o", tmp_path / "p.png")
    assert poisson.code == 0 and (tmp_path / "p.png").exists()


def test_stdin_to_stdout_in_a_shell_pipe(tmp_path):
    denoise = Path(sys.executable).parent / "denoise"
    command = f'cat "{SAMPLES / "text.noisy.png"}" | "{denoise}" tv - -o - --max-iter 20 > "{tmp_path / "b.png"}"'
    result = subprocess.run(command, shell=True, capture_output=True)
    assert result.returncode == 0, result.stderr
    assert Image.open(tmp_path / "b.png").size == Image.open(SAMPLES / "text.noisy.png").size


def test_ctrl_c_leaves_no_partial_file_and_a_rerun_finishes(tmp_path, retina, grass):
    (tmp_path / "in").mkdir()
    save(tmp_path / "in" / "a.png", grass[:16, :16])
    save(tmp_path / "in" / "b.png", noisy_copy(retina, 20))
    out = tmp_path / "out"
    report = tmp_path / "run.json"
    command = [sys.executable, "-m", "denoise_cli", "zsn2n", str(tmp_path / "in"), "--output-dir", str(out),
               "--iterations", "3000", "--exact", "--report", str(report)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (out / "a.png").exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert (out / "a.png").exists(), process.communicate()[1].decode()
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    stderr = stderr_when_done(process, 60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png"]  # no partial b.png, no temporary file
    summary = json.loads(report.read_text())["summary"]
    assert summary["interrupted"] is True and summary["not_processed"] == [str(tmp_path / "in" / "b.png")]
    resumed = run_subprocess("zsn2n", tmp_path / "in", "--output-dir", out, "--iterations", "5", "--skip-existing")
    assert resumed.returncode == 0
    assert b"1 done, 1 skipped, 0 failed" in resumed.stderr
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]


def test_the_runner_works_from_python_without_click(tmp_path, grass):
    source = save(tmp_path / "g.png", noisy_copy(grass, 20))
    jobs = plan_jobs([str(source)], output_dir=str(tmp_path / "out"), reference=None)
    records = run_batch(jobs, METHODS["tv"], {"weight": 0.05, "max_iter": 20}, RunOptions())
    assert records[0]["status"] == "done" and (tmp_path / "out" / "g.png").exists()
    assert records[0]["params"]["weight"] == {"value": 0.05, "source": "argument"}
