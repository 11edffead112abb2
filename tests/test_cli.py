"""The installed command end to end: denoise, score, errors, devices."""
import json

import numpy as np
import png
import pytest
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from denoise_cli.core.device import computes_bf16_natively, resolve_device

from .conftest import SAMPLES, noisy_copy, run_cli, run_subprocess, save


def test_help_lists_the_commands_and_version_prints():
    result = run_cli("--help")
    assert result.code == 0
    for command in ("tv", "zsn2n", "ssim", "noise"):
        assert command in result.stdout.decode()
    version = run_cli("--version")
    assert version.code == 0 and "denoise, version" in version.stdout.decode()


def test_python_dash_m_runs_the_command():
    result = run_subprocess("--help")
    assert result.returncode == 0 and b"zsn2n" in result.stdout


def test_ssim_prints_the_value_alone_equal_to_scikit_image(tmp_path, retina):
    a = save(tmp_path / "a.png", retina)
    noisy = noisy_copy(retina, 20)
    b = save(tmp_path / "b.png", noisy)
    result = run_cli("ssim", a, b)
    assert result.code == 0
    expected = structural_similarity(retina, noisy, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255, channel_axis=-1)
    assert float(result.stdout.decode().strip()) == pytest.approx(expected, abs=1e-6)


def test_ssim_json_has_the_scores_and_settings(tmp_path):
    rgba = np.dstack([np.asarray(Image.open(SAMPLES / "hubble.png")), np.full((256, 256), 200, np.uint8)])
    a = save(tmp_path / "a.png", rgba)
    b = save(tmp_path / "b.png", np.dstack([noisy_copy(rgba[:, :, :3], 10), rgba[:, :, 3]]))
    result = run_cli("ssim", a, b, "--json")
    report = json.loads(result.stdout)
    assert 0 < report["ssim"] < 1 and report["psnr"] > 20 and 0 < report["ms_ssim"] < 1
    assert report["data_range"] == 255 and report["channels"] == 3 and report["alpha"].startswith("ignored")
    assert report["settings"]["window_size"] == 11 and report["settings"]["covariance"] == "population"
    same = json.loads(run_cli("ssim", a, a, "--json").stdout)
    assert same["ssim"] == 1.0 and same["psnr"] is None and same["psnr_identical"] is True


def test_ssim_map_is_written(tmp_path, retina):
    a = save(tmp_path / "a.png", retina)
    b = save(tmp_path / "b.png", noisy_copy(retina, 20))
    result = run_cli("ssim", a, b, "--map", tmp_path / "map.png")
    assert result.code == 0
    assert Image.open(tmp_path / "map.png").size == (86, 86)


def test_ssim_pairs_folders_by_relative_path(tmp_path, retina, grass):
    for root, noise in (("clean", 0), ("noisy", 15)):
        (tmp_path / root / "sub").mkdir(parents=True)
        save(tmp_path / root / "r.png", noisy_copy(retina, noise) if noise else retina)
        save(tmp_path / root / "sub" / "g.png", noisy_copy(grass, noise) if noise else grass)
    result = run_cli("ssim", tmp_path / "clean", tmp_path / "noisy")
    lines = result.stdout.decode().strip().splitlines()
    assert result.code == 0 and [line.split("\t")[0] for line in lines] == ["r.png", "sub/g.png", "mean"]
    values = [float(line.split("\t")[1]) for line in lines]
    assert values[2] == pytest.approx((values[0] + values[1]) / 2)
    csv_lines = run_cli("ssim", tmp_path / "clean", tmp_path / "noisy", "--csv").stdout.decode().splitlines()
    assert csv_lines[0] == "a,b,ssim,psnr,ms_ssim" and csv_lines[-1].startswith("MEAN")


def _one_line_error(result, *fragments):
    stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    assert result.code != 0 if hasattr(result, "code") else result.returncode != 0
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert str(fragment) in lines[0]


def test_ssim_bad_inputs_give_one_line_errors(tmp_path, retina):
    good = save(tmp_path / "good.png", retina)
    small = save(tmp_path / "small.png", retina[:50, :60])
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(good.read_bytes()[:300])
    for other, cause in ((tmp_path / "missing.png", "no such file"), (text, "not a readable image"),
                         (empty, "empty file"), (truncated, "corrupt or truncated"), (small, "differ"),
                         (tmp_path, "is a folder")):
        _one_line_error(run_cli("ssim", good, other), other, cause)


def test_bad_input_from_a_real_process_has_no_traceback(tmp_path):
    result = run_subprocess("tv", tmp_path / "missing.png")
    assert result.returncode == 1
    assert b"Traceback" not in result.stderr
    assert b"missing.png: no such file" in result.stderr


def test_tv_denoises_a_sample_and_improves_it(tmp_path):
    out = tmp_path / "out.png"
    result = run_cli("tv", SAMPLES / "hubble.noisy.png", "-o", out, "--reference", SAMPLES / "hubble.png")
    assert result.code == 0, result.stderr
    clean = np.asarray(Image.open(SAMPLES / "hubble.png"))
    noisy = np.asarray(Image.open(SAMPLES / "hubble.noisy.png"))
    denoised = np.asarray(Image.open(out))
    assert denoised.shape == clean.shape and denoised.dtype == np.uint8
    score = lambda x: structural_similarity(clean, x, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                            use_sample_covariance=False, data_range=255)
    assert score(denoised) > score(noisy) + 0.1
    assert "1 done, 0 skipped, 0 failed" in result.stderr


def test_default_output_name_sits_beside_the_input(tmp_path, grass):
    source = save(tmp_path / "g.png", noisy_copy(grass, 20))
    result = run_cli("tv", source, "--max-iter", "5")
    assert result.code == 0
    assert (tmp_path / "g.denoised.png").exists()


def test_sixteen_bit_rgb_alpha_and_odd_sizes_are_kept(tmp_path):
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 65536, (21, 17, 4), dtype=np.uint16)
    source = tmp_path / "deep.png"
    with open(source, "wb") as handle:
        png.Writer(17, 21, greyscale=False, alpha=True, bitdepth=16).write(handle, samples.reshape(21, -1).tolist())
    for method, extra in (("tv", ["--max-iter", "5"]), ("zsn2n", ["--iterations", "3"])):
        out = tmp_path / f"{method}.png"
        result = run_cli(method, source, "-o", out, *extra)
        assert result.code == 0, result.stderr
        w, h, rows, info = png.Reader(filename=str(out)).read()
        back = np.array([np.asarray(r) for r in rows], dtype=np.uint16).reshape(h, w, 4)
        assert (w, h, info["bitdepth"], info["alpha"]) == (17, 21, 16, True)
        np.testing.assert_array_equal(back[:, :, 3], samples[:, :, 3])


def test_zsn2n_on_gray_odd_sized_image(tmp_path, grass):
    source = save(tmp_path / "g.png", noisy_copy(grass[:31, :45], 25))
    result = run_cli("zsn2n", source, "-o", tmp_path / "o.png", "--iterations", "5", "--seed", "1")
    assert result.code == 0, result.stderr
    out = Image.open(tmp_path / "o.png")
    assert out.mode == "L" and out.size == (45, 31)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_an_explicit_missing_device_is_an_error(tmp_path, grass):
    source = save(tmp_path / "g.png", grass)
    _one_line_error(run_cli("tv", source, "--device", "cuda"), "CUDA is not available")


def test_verbose_shows_the_device(tmp_path, grass):
    source = save(tmp_path / "g.png", grass)
    result = run_cli("tv", source, "-o", tmp_path / "o.png", "-v", "--device", "cpu", "--max-iter", "3")
    assert "on cpu" in result.stderr and "iterations 3" in result.stderr


AUTO_PRECISION = "bfloat16" if computes_bf16_natively(resolve_device("auto")) else "float32"


@pytest.mark.parametrize("extra, mode", [
    ([], f"mode fast+refine+unclip, {AUTO_PRECISION} fit (mean of 4 flipped passes), finish "),
    (["--no-refine", "--precision", "bfloat16"], "mode fast+unclip, bfloat16 fit (mean of 4 flipped passes), finish "),
    (["--no-refine", "--no-unclip", "--precision", "float32"], "mode fast, float32 fit (mean of 4 flipped passes)\n"),
    (["--exact", "--precision", "bfloat16"], "mode exact, float32 fit\n")])
def test_verbose_says_which_zsn2n_mode_ran(tmp_path, grass, extra, mode):
    source = save(tmp_path / "g.png", grass)
    result = run_cli("zsn2n", source, "-o", tmp_path / "o.png", "-v", "--iterations", "2", "--seed", "1", *extra)
    assert result.code == 0 and mode in result.stderr


def test_usage_errors_exit_2(tmp_path, grass):
    a = save(tmp_path / "a.png", grass)
    b = save(tmp_path / "b.png", grass)
    assert run_cli("tv", a, b, "-o", tmp_path / "o.png").code == 2
    assert run_cli("tv", "--norm", "euclid", a).code == 2
    assert run_cli("tv").code == 2


@pytest.mark.parametrize("option,value", [("--iterations", "0"), ("--iterations", "2.5"), ("--step-size", "many"),
                                          ("--weight", "-1"), ("--weight", "strong")])
def test_auto_or_number_options_refuse_other_values(tmp_path, grass, option, value):
    source = save(tmp_path / "g.png", grass)
    method = "tv" if option == "--weight" else "zsn2n"
    result = run_cli(method, source, "-o", tmp_path / "o.png", option, value)
    assert result.code == 2 and repr(value) in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "o.png").exists()
