"""The pixel bank: the search against a brute-force one, its pixels, the split pairs."""
import numpy as np
import pytest
import torch

from denoise_cli.methods.pixel_bank import (ANCHOR_STRIDE, PATCH, WINDOW, bank_mean, bank_offsets, bank_pixels,
                                            split_masks, split_means)


def _brute_force_distances(image: np.ndarray, row: int, col: int) -> dict:
    """Patch distance (sum over the patch and channels of squared differences, mirrored edges) from
    the patch at (row, col) to the patch at every offset of the window, by loops in numpy."""
    radius, half = WINDOW // 2, PATCH // 2
    padded = np.pad(image, ((0, 0), (radius + half,) * 2, (radius + half,) * 2), mode="reflect")

    def patch(r, c):
        r, c = r + radius + half, c + radius + half
        return padded[:, r - half:r + half + 1, c - half:c + half + 1]
    reference = patch(row, col)

    def distance(dy, dx):
        squares = (patch(row + dy - radius, col + dx - radius) - reference) ** 2
        return float(squares.sum())
    return {dy * WINDOW + dx: distance(dy, dx) for dy in range(WINDOW) for dx in range(WINDOW)}


def test_the_search_finds_the_most_similar_patches_of_a_brute_force_search():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, 40, 36, generator=generator)
    offsets = bank_offsets(x, size=6)
    assert offsets.shape == (6, 20, 18)
    image = x[0].double().numpy()
    for anchor_row, anchor_col in [(0, 0), (5, 7), (19, 17), (10, 3)]:
        distances = _brute_force_distances(image, ANCHOR_STRIDE * anchor_row, ANCHOR_STRIDE * anchor_col)
        centre = (WINDOW // 2) * WINDOW + WINDOW // 2
        found = offsets[:, anchor_row, anchor_col].tolist()
        assert found[0] == centre
        others = sorted(d for o, d in distances.items() if o != centre)
        # the found patches are the 5 nearest (by distance: mirrored edges make exact ties)
        assert sorted(distances[o] for o in found[1:]) == pytest.approx(others[:5], rel=1e-5)


def test_a_periodic_image_banks_pixels_of_the_same_value():
    """In a pattern that repeats every 5 pixels, every bank away from the edges (where the mirrored border breaks the
    pattern) holds copies of its own pixel's value (exact matches)."""
    generator = torch.Generator().manual_seed(1)
    tile = torch.rand(1, 3, 5, 5, generator=generator)
    x = tile.repeat(1, 1, 12, 12)
    bank = bank_pixels(x, bank_offsets(x, size=8))
    assert bank.shape == (8, 3, 60, 60)
    assert torch.equal(bank[0], x[0])
    inner = (Ellipsis, slice(13, -13), slice(13, -13))
    assert torch.allclose(bank[inner], x[0].expand_as(bank)[inner])
    assert torch.allclose(bank_mean(x, bank_offsets(x, size=8))[inner], x[inner])


def test_gray_odd_and_tiny_images_bank_themselves_first():
    for shape in [(1, 1, 5, 7), (1, 3, 33, 17), (1, 1, 1, 9)]:
        x = torch.rand(shape)
        bank = bank_pixels(x, bank_offsets(x))
        assert torch.equal(bank[0], x[0])
        assert bank.shape[1:] == x.shape[1:]


def test_a_region_of_the_bank_is_that_region_of_the_whole_bank():
    x = torch.rand(1, 3, 30, 26)
    offsets = bank_offsets(x)
    assert torch.equal(bank_pixels(x, offsets, 7, 3, 11, 9), bank_pixels(x, offsets)[:, :, 7:18, 3:12])


def test_split_means_average_complementary_halves():
    masks = split_masks(6)
    assert masks.shape == (20, 6) and bool((masks.sum(1) == 3).all())
    bank = torch.randn(6, 2, 9, 10)
    first, second = split_means(bank, masks, torch.Generator().manual_seed(0))
    assert torch.allclose((first + second) / 2, bank.mean(0, keepdim=True), atol=1e-6)
    # each half is the mean of three of the pixel's six values
    values = bank[:, 0, 4, 5]
    candidates = [values[m.bool()].mean() for m in masks]
    assert min(abs(float(c - first[0, 0, 4, 5])) for c in candidates) < 1e-6
