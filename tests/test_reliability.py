"""Nothing lost, nothing crashes: one test per case of the reliability issue that the corpus (test_bad_inputs.py)
does not already pin down by its exit status and message."""
from __future__ import annotations

import csv
import errno
import json
import os
import pty
import signal
import subprocess
import sys
import time

import numpy as np
import png
import pytest
import tifffile
import torch
from PIL import Image

from denoise_cli.core import imageio
from denoise_cli.core.errors import plain_reason
from denoise_cli.methods.tv import tv_denoise

from .conftest import noisy_copy, run_cli, save, stderr_when_done

DENOISE = os.path.join(os.path.dirname(sys.executable), "denoise")


def test_save_noisy_never_overwrites_an_input_of_the_batch(tmp_path, grass):
    save(tmp_path / "c.png", grass)
    save(tmp_path / "c.noisy.png", noisy_copy(grass, 30))
    before = (tmp_path / "c.noisy.png").read_bytes()
    result = run_cli("tv", tmp_path, "--add-noise", "gaussian:10", "--save-noisy", "--weight", "0.1")
    assert result.code == 1 and "would overwrite the input" in result.stderr
    assert (tmp_path / "c.noisy.png").read_bytes() == before


def test_an_output_folder_inside_the_input_folder_is_not_read_again(tmp_path, grass):
    save(tmp_path / "g.png", grass)
    out = tmp_path / "clean"
    for _ in range(2):
        result = run_cli("tv", tmp_path, "--output-dir", out, "--skip-existing", "--weight", "0.1")
        assert result.code == 0, result.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["g.png"]


def test_the_duplicate_output_message_names_the_first_input(tmp_path, grass):
    for folder in ("d1", "d2"):
        (tmp_path / folder).mkdir()
        save(tmp_path / folder / "a.png", grass)
    result = run_cli("tv", tmp_path / "d1", tmp_path / "d2", "--output-dir", tmp_path / "out", "--weight", "0.1")
    assert result.code == 1
    assert f"is also written by {tmp_path / 'd1' / 'a.png'}" in result.stderr


def test_a_double_star_glob_keeps_sub_folders_apart(tmp_path, grass):
    for folder in ("p/x", "p/y"):
        (tmp_path / folder).mkdir(parents=True)
        save(tmp_path / folder / "a.png", grass)
    result = run_cli("tv", str(tmp_path / "p" / "**" / "*.png"), "--output-dir", tmp_path / "out", "--weight", "0.1")
    assert result.code == 0, result.stderr
    assert (tmp_path / "out" / "x" / "a.png").exists() and (tmp_path / "out" / "y" / "a.png").exists()


def test_zsn2n_keeps_float_values_outside_the_unit_range_like_tv(tmp_path):
    values = np.random.default_rng(0).uniform(-0.3, 1.3, (16, 16)).astype(np.float32)
    tifffile.imwrite(tmp_path / "f.tif", values)
    for method, extra in (("tv", ["--weight", "0.01"]), ("zsn2n", ["--iterations", "2"])):
        out = tmp_path / f"{method}.tif"
        assert run_cli(method, tmp_path / "f.tif", "-o", out, *extra).code == 0
        result = tifffile.imread(out)
        assert result.min() < -0.05 and result.max() > 1.05, method


@pytest.mark.parametrize("depth", [8, 16])
@pytest.mark.parametrize("channels", [1, 3])
def test_a_trns_colour_key_becomes_alpha(tmp_path, depth, channels):
    dtype = np.uint8 if depth == 8 else np.uint16
    samples = np.random.default_rng(0).integers(0, 2 ** depth, (6, 5, channels)).astype(dtype)
    key = tuple(int(v) for v in samples[2, 3])
    path = tmp_path / "key.png"
    with open(path, "wb") as handle:
        writer = png.Writer(5, 6, greyscale=channels == 1, bitdepth=depth,
                            transparent=key[0] if channels == 1 else key)
        writer.write(handle, samples.reshape(6, -1).tolist())
    image = imageio.read_image(path)
    assert image.alpha is not None and image.alpha[2, 3] == 0 and image.alpha.sum() == (2 ** depth - 1) * 29


def test_a_huge_weight_gives_the_mean_without_warnings(tmp_path, retina):
    source = save(tmp_path / "r.png", retina)
    result = run_cli("tv", source, "-o", tmp_path / "o.png", "--weight", "1e39")
    assert result.code == 0 and "Warning" not in result.stderr
    out = np.asarray(Image.open(tmp_path / "o.png")).astype(float)
    assert np.abs(out - retina.reshape(-1, 3).mean(axis=0)).max() <= 0.5
    x = torch.rand(2, 3, 9, 7)
    u, facts = tv_denoise(x, weight=torch.tensor([1e6, 1e300], dtype=torch.float64))
    assert torch.allclose(u, x.mean(dim=(2, 3), keepdim=True).expand_as(x)) and facts["weight"] == [1e6, 1e300]


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_a_missing_device_is_a_usage_error(tmp_path, grass):
    assert run_cli("tv", save(tmp_path / "g.png", grass), "--device", "cuda").code == 2


def test_a_report_that_cannot_be_written_at_the_end_is_one_line_and_the_summary_still_prints(tmp_path, grass,
                                                                                              monkeypatch):
    def full_disk(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "r.json"))
    monkeypatch.setattr("denoise_cli.interfaces.cli.write_report", full_disk)
    result = run_cli("tv", save(tmp_path / "g.png", grass), "-o", tmp_path / "o.png", "--report",
                     tmp_path / "r.json", "--weight", "0.1")
    lines = result.stderr.strip().splitlines()
    assert result.code == 1 and len(lines) == 2
    assert "report" in lines[0] and "the disk is full" in lines[0] and "1 done" in lines[1]


def test_ctrl_c_while_torch_loads_is_one_line_and_exit_130(tmp_path):
    process = subprocess.Popen([DENOISE, "tv", str(tmp_path / "x.png")], stderr=subprocess.PIPE)
    time.sleep(0.25)
    process.send_signal(signal.SIGINT)
    stderr = stderr_when_done(process, 60)
    assert process.returncode == 130, stderr
    assert stderr.strip() == "denoise: interrupted"


def test_os_errors_read_in_plain_words_and_keep_the_class_name_for_debugging(monkeypatch):
    error = OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), "out/a.png")
    assert plain_reason(error) == "out/a.png: a part of the path is a file, not a folder"
    assert plain_reason(RuntimeError("CUDA out of memory. Tried")) == "not enough memory for this image"
    monkeypatch.setenv("DENOISE_DEBUG", "1")
    assert plain_reason(error).endswith("[NotADirectoryError]")


def test_a_refused_output_type_is_found_before_the_work(tmp_path):
    deep = tmp_path / "deep.png"
    with open(deep, "wb") as handle:
        png.Writer(8, 8, greyscale=True, bitdepth=16).write(handle, [[i * 900] * 8 for i in range(8)])
    started = time.perf_counter()
    result = run_cli("zsn2n", deep, "-o", tmp_path / "o.jpg", "--iterations", "1000000")
    assert result.code == 1 and "16-bit" in result.stderr and time.perf_counter() - started < 30


def test_stdout_on_a_terminal_is_refused(tmp_path, grass):
    source = save(tmp_path / "g.png", grass)
    controller, terminal = pty.openpty()
    result = subprocess.run([DENOISE, "tv", str(source), "-o", "-"], stdout=terminal, stderr=subprocess.PIPE,
                            timeout=120)
    os.close(terminal)
    os.close(controller)
    assert result.returncode == 2 and b"terminal" in result.stderr


def test_tv_progress_has_phases_and_counts_toward_the_tolerance(grass):
    x = torch.from_numpy(noisy_copy(grass, 20).astype(np.float32) / 255)[None, None]
    seen = []
    tv_denoise(x, progress=lambda done, total, facts: seen.append((facts["phase"], done, total)))
    phases = [phase for phase, _, _ in seen]
    assert phases[0] == "choosing the weight" and phases[-1] == "solving"
    assert phases.index("solving") == len(phases) - phases[::-1].index("choosing the weight")
    solving = [done for phase, done, total in seen if phase == "solving"]
    assert solving == sorted(solving) and solving[-1] == 100 and all(t == 100 for p, _, t in seen if p == "solving")


def test_reports_speak_plainly(tmp_path, retina, grass):
    clean = tmp_path / "clean"
    clean.mkdir()
    save(clean / "a.png", retina[:40, :40])
    for name, image in (("a.png", retina[:40, :40]), ("b.png", grass[:40, :40])):
        save(tmp_path / name, noisy_copy(image, 25))
    report = tmp_path / "r.csv"
    result = run_cli("tv", tmp_path / "a.png", tmp_path / "b.png", "--output-dir", tmp_path / "out", "--reference",
                     clean, "--report", report, "--weight", "0.2")
    assert result.code == 0 and "1 of 2 image(s) had no reference" in result.stderr
    rows = list(csv.DictReader(report.open()))
    assert rows[0]["weight"] == "0.2" and rows[0]["psnr_in_identical"] == "false"
    assert rows[-1]["input"] == "MEAN" and rows[-1]["status"] == ""
    assert float(rows[-1]["seconds"]) == pytest.approx((float(rows[0]["seconds"]) + float(rows[1]["seconds"])) / 2,
                                                       abs=1e-3)
    noisy_run = tmp_path / "n.json"
    assert run_cli("tv", tmp_path / "a.png", "-o", tmp_path / "n.png", "--add-noise", "gaussian:25", "--report",
                   noisy_run).code == 0
    data = json.loads(noisy_run.read_text())
    row = data["images"][0]
    assert row["reference"] == str(tmp_path / "a.png") and data["summary"]["scored"] == 1
    assert 15 < row["sigma_estimate"] < 40  # the 0-255 scale, like every option


def test_ssim_map_says_what_it_holds_and_tiff_keeps_negative_values(tmp_path, retina):
    a = save(tmp_path / "a.png", retina)
    b = save(tmp_path / "b.png", 255 - retina)
    result = run_cli("ssim", a, b, "--json", "--map", tmp_path / "m.tif")
    info = json.loads(result.stdout)["map"]
    assert (info["width"], info["height"]) == (86, 86) and "valid" in info["region"] and "unclipped" in info["values"]
    assert tifffile.imread(tmp_path / "m.tif").min() < 0


def test_denoise_verbose_from_the_environment(tmp_path, grass):
    result = run_cli("tv", save(tmp_path / "g.png", grass), "-o", tmp_path / "o.png", "--weight", "0.1",
                     env={"DENOISE_VERBOSE": "1"})
    assert "iterations" in result.stderr
