"""Metrics against scikit-image (the reference implementation) and by their defining properties."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from denoise_cli.core import metrics
from denoise_cli.core.imageio import samples_to_tensor

from .conftest import SAMPLES


def _tensor(array: np.ndarray) -> torch.Tensor:
    return samples_to_tensor(array if array.ndim == 3 else array[:, :, None])


def _pair(kind: str, dtype) -> tuple[np.ndarray, np.ndarray]:
    """A clean real image (larger than one SSIM tile, so tiling is exercised) and a noisy copy in ``dtype``."""
    if kind == "gray":
        clean = data.gravel()[:300, :290].astype(np.float64)
    else:
        clean = np.asarray(Image.open(SAMPLES / "retina.png"))[40:330, 20:300].astype(np.float64)
    rng = np.random.default_rng(7)
    scale = 257.0 if dtype == np.uint16 else 1.0
    top = np.iinfo(dtype).max
    a = np.clip(np.rint(clean * scale), 0, top).astype(dtype)
    b = np.clip(np.rint(clean * scale + rng.normal(0, 20 * scale, clean.shape)), 0, top).astype(dtype)
    return a, b


@pytest.mark.parametrize("kind", ["gray", "rgb"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_ssim_and_psnr_equal_scikit_image(kind, dtype):
    a, b = _pair(kind, dtype)
    data_range = np.iinfo(dtype).max
    expected = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=data_range, channel_axis=-1 if kind == "rgb" else None)
    ours = float(metrics.ssim(_tensor(a), _tensor(b)).ssim[0])
    assert ours == pytest.approx(expected, abs=1e-6)
    expected_psnr = peak_signal_noise_ratio(a, b, data_range=data_range)
    assert float(metrics.psnr(_tensor(a), _tensor(b))[0]) == pytest.approx(expected_psnr, abs=1e-6)


def test_classic_camera_pair():
    """The pair from scikit-image's tests; the value is what Wang et al.'s own code gives."""
    camera = data.camera()
    noisy = np.clip(camera + np.random.RandomState(5).normal(0, 20, camera.shape), 0, 255).astype(np.uint8)
    ours = float(metrics.ssim(_tensor(camera), _tensor(noisy)).ssim[0])
    assert ours == pytest.approx(0.3579642362365813, abs=1e-6)


def test_ssim_of_an_image_with_itself_is_one_and_psnr_infinite():
    a, _ = _pair("rgb", np.uint8)
    x = _tensor(a)
    assert float(metrics.ssim(x, x).ssim[0]) == 1.0
    assert float(metrics.psnr(x, x)[0]) == float("inf")


def test_ssim_is_symmetric_and_batched():
    a, b = _pair("gray", np.uint8)
    x, y = _tensor(a), _tensor(b)
    single = metrics.ssim(x, y).ssim
    assert float(metrics.ssim(y, x).ssim[0]) == pytest.approx(float(single[0]), abs=1e-7)
    batch = metrics.ssim(torch.cat([x, y]), torch.cat([y, y])).ssim
    assert batch.shape == (2,)
    assert float(batch[0]) == pytest.approx(float(single[0]), abs=1e-8)
    assert float(batch[1]) == 1.0


def test_ssim_of_integer_tensors_equals_that_of_their_float_values():
    a, b = _pair("rgb", np.uint8)
    x, y = torch.from_numpy(a).permute(2, 0, 1)[None], torch.from_numpy(b).permute(2, 0, 1)[None]
    expected = float(metrics.ssim(x.float(), y.float(), data_range=255).ssim[0])
    assert float(metrics.ssim(x, y, data_range=255).ssim[0]) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("tile", [None, (64, 96)])
def test_ssim_map_equals_scikit_image_full_map_on_the_valid_region(tile, monkeypatch):
    """290x280 outputs: with the default tile, three rows of tiles and one column wider than the image (its extra
    columns dropped); with 64x96 tiles, the last tile of each row and column overlaps the one before."""
    if tile:
        monkeypatch.setattr(metrics, "_CPU_TILE", tile)
    a, b = _pair("rgb", np.uint8)
    result = metrics.ssim(_tensor(a), _tensor(b), data_range=1.0, with_map=True)
    assert result.map.shape == (1, 3, a.shape[0] - 10, a.shape[1] - 10)
    _, expected = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                        data_range=255, channel_axis=-1, full=True)
    ours = result.map[0].permute(1, 2, 0).double().numpy()
    # float32 on tile-mean-shifted moments: a window on a dark/bright edge of a tile keeps ~1e-4 of cancellation
    # error locally, which averages out in the mean (checked to 1e-6 above)
    assert np.abs(ours - expected[5:-5, 5:-5]).max() < 3e-4
    assert np.abs(ours - expected[5:-5, 5:-5]).mean() < 1e-6
    assert float(result.map.double().mean()) == pytest.approx(float(result.ssim[0]), abs=1e-9)
    assert metrics.ssim(_tensor(a), _tensor(b)).map is None


@pytest.mark.parametrize("shape", [(11, 11), (13, 40), (40, 13), (21, 27)])
def test_ssim_on_images_barely_larger_than_the_window(shape):
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    b = np.clip(a + rng.normal(0, 30, a.shape), 0, 255).astype(np.uint8)
    expected = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255, channel_axis=-1)
    assert float(metrics.ssim(_tensor(a), _tensor(b)).ssim[0]) == pytest.approx(expected, abs=1e-6)


def test_ssim_rejects_images_smaller_than_the_window():
    x = torch.rand(1, 1, 8, 30)
    with pytest.raises(ValueError, match="smaller than"):
        metrics.ssim(x, x)


def _ms_ssim_reference(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM written out independently in float64 with scipy (valid region, population statistics)."""
    weights = metrics.MS_SSIM_WEIGHTS
    values = []
    for scale in range(len(weights)):
        def blur(z):
            return gaussian_filter(z, 1.5, truncate=3.5)[5:-5, 5:-5]
        mu_a, mu_b = blur(a), blur(b)
        var_a = blur(a * a) - mu_a ** 2
        var_b = blur(b * b) - mu_b ** 2
        cov = blur(a * b) - mu_a * mu_b
        cs = (2 * cov + 0.03 ** 2) / (var_a + var_b + 0.03 ** 2)
        lum = (2 * mu_a * mu_b + 0.01 ** 2) / (mu_a ** 2 + mu_b ** 2 + 0.01 ** 2)
        values.append(max((cs * lum).mean() if scale == len(weights) - 1 else cs.mean(), 0.0))
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        a = a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        b = b[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return float(np.prod(np.array(values) ** np.array(weights)))


def test_ms_ssim_matches_an_independent_implementation():
    a = data.gravel()[:200, :210].astype(np.float64) / 255
    rng = np.random.default_rng(3)
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    ours = float(metrics.ms_ssim(torch.from_numpy(a).float()[None, None], torch.from_numpy(b).float()[None, None]))
    assert ours == pytest.approx(_ms_ssim_reference(a.astype(np.float32).astype(np.float64),
                                                    b.astype(np.float32).astype(np.float64)), abs=1e-6)


def test_ms_ssim_needs_enough_pixels():
    x = torch.rand(1, 1, 100, 400)
    with pytest.raises(ValueError, match="at least 176x176"):
        metrics.ms_ssim(x, x)
    y = torch.rand(1, 3, 180, 180)
    assert float(metrics.ms_ssim(y, y)[0]) == pytest.approx(1.0, abs=1e-12)
