"""Helpers shared by the benchmark scripts: test images, seeded noise, a 1-D search (the package's), and table
printing."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from denoise_cli.core.imageio import as_stored, samples_to_tensor, tensor_to_samples
from denoise_cli.core.metrics import psnr
from denoise_cli.core.noise import NoiseSpec, add_noise
from denoise_cli.methods.sure import golden_max

__all__ = ["DEFAULT_KODAK", "add_modes_option", "blur_valid", "parse_numbers", "golden_max", "kodak_mosaic",
           "kodak_paths", "load_crop", "noisy", "print_table", "save_png", "stored_psnr"]

#: Kodak24 as the project's shared data folder holds it; every script takes --kodak to point elsewhere.
DEFAULT_KODAK = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak24"


def kodak_paths(folder: Path, numbers: Sequence[int]) -> list[Path]:
    paths = [Path(folder) / f"kodim{n:02d}.png" for n in numbers]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise SystemExit(f"missing Kodak images: {', '.join(missing[:3])} (use --kodak FOLDER)")
    return paths


def parse_numbers(text: str) -> list[int]:
    """Image numbers from ``1-12``, ``3,9`` or ``1-4,13``."""
    numbers = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        numbers += list(range(int(first), int(last or first) + 1))
    return numbers


def load_crop(path: Path, size: int | None = 256) -> torch.Tensor:
    """(1, C, size, size) centre crop in [0, 1] (the whole image when size is None)."""
    samples = np.asarray(Image.open(path))
    if size is not None:
        h, w = samples.shape[:2]
        if size > min(h, w):
            raise SystemExit(f"{path} is {w}x{h}: too small for a {size}x{size} crop")
        top, left = (h - size) // 2, (w - size) // 2
        samples = samples[top:top + size, left:left + size]
    return samples_to_tensor(samples if samples.ndim == 3 else samples[:, :, None])


def kodak_mosaic(folder: Path, numbers: Sequence[int], size: int) -> torch.Tensor:
    """The 2x2 mosaic of four whole Kodak photos, resized (bicubic) to (1, 3, size, size) in [0, 1]."""
    tiles = [load_crop(path, None) for path in kodak_paths(folder, numbers)]
    mosaic = torch.cat([torch.cat(tiles[:2], dim=3), torch.cat(tiles[2:], dim=3)], dim=2)
    return torch.nn.functional.interpolate(mosaic, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def save_png(image: torch.Tensor, path: Path | str) -> None:
    """An image (1, C, H, W) in [0, 1] as an 8-bit PNG (Pillow: the benchmarks' inputs are not made by our writer)."""
    samples = tensor_to_samples(image, np.uint8)
    Image.fromarray(samples if samples.shape[2] > 1 else samples[:, :, 0]).save(path)


def noisy(clean: torch.Tensor, spec: str, seed: int) -> torch.Tensor:
    """``clean`` with seeded noise ("gaussian:25", "poisson:50"), stored as an 8-bit file would store it."""
    kind, level = spec.split(":")
    generator = torch.Generator().manual_seed(seed)
    return as_stored(add_noise(clean, NoiseSpec(kind, float(level)), generator), np.uint8)


def stored_psnr(u: torch.Tensor, clean: torch.Tensor) -> float:
    """PSNR (dB) of an image (1, C, H, W) in [0, 1] as an 8-bit file would store it, against ``clean``."""
    return float(psnr(as_stored(u, np.uint8), clean)[0])


def add_modes_option(parser, modes: Sequence[tuple]) -> None:
    """``--modes norm/channels,...`` for the TV scripts, defaulting to ``modes``."""
    parser.add_argument("--modes", default=",".join(f"{n}/{c}" for n, c in modes),
                        help="norm/channels pairs, e.g. isotropic/coupled,anisotropic/separate")


def print_table(headers: Sequence[str], rows: Sequence[Sequence]) -> None:
    """A plain aligned table on stdout."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e-2 and value != 0 else f"{value:.3f}"
    return str(value)


def blur_valid(clean: torch.Tensor, psf: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A real capture's blur: the centre (size x size) of ``clean`` (1, C, H, W) blurred by the convolution kernel
    ``psf`` with the light from outside the frame included (no wrap-around, no padding). Returns (blurred, the
    sharp size x size centre), both (1, C, size, size)."""
    kh, kw = psf.shape
    _, channels, height, width = clean.shape
    top, left = (height - size) // 2, (width - size) // 2
    # the kernel's centre is entry (kh // 2, kw // 2), so the frame needs kh - 1 - kh // 2 rows above it
    top, left = top - (kh - 1 - kh // 2), left - (kw - 1 - kw // 2)
    region = clean[:, :, top:top + size + kh - 1, left:left + size + kw - 1]
    weight = psf.flip(0, 1).to(clean.dtype).expand(channels, 1, kh, kw)
    blurred = torch.nn.functional.conv2d(region, weight, groups=channels)
    top, left = (height - size) // 2, (width - size) // 2
    return blurred, clean[:, :, top:top + size, left:left + size]
