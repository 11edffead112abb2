"""Scoring image files against each other (``denoise ssim``): one pair, or two folders paired by relative path."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from ..core import imageio, metrics
from ..core.errors import DenoiseError, UsageError
from ..core.imageio import Image
from .jobs import scan_folder, write_refusal

#: The SSIM convention, as recorded in --json output.
SSIM_SETTINGS = {
    "definition": "Wang et al. 2004",
    "window": "gaussian", "window_size": metrics.WINDOW_SIZE, "sigma": metrics.SIGMA, "k1": metrics.K1,
    "k2": metrics.K2, "covariance": "population", "region": "valid (no padding)",
    "mean": "over pixels and channels",
    "equals": "skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5, "
              "use_sample_covariance=False, data_range=R, channel_axis=-1)",
}


def score_images(a: Image, b: Image, device: torch.device, a_name: str = "A", b_name: str = "B",
                 all_scores: bool = True, with_map: bool = False) -> tuple[dict, Optional[torch.Tensor]]:
    """SSIM, PSNR and (size permitting) MS-SSIM of ``b`` against ``a``, with the settings used, and with ``with_map``
    the SSIM map (1, C, H', W') (else None); with ``all_scores=False`` the SSIM alone (PSNR and MS-SSIM None), for
    plain ``denoise ssim``."""
    if a.pixels.shape != b.pixels.shape:
        _, ca, ha, wa = a.pixels.shape
        _, cb, hb, wb = b.pixels.shape
        raise DenoiseError(f"{b_name}: size or channels differ from {a_name} ({wb}x{hb}x{cb} vs {wa}x{ha}x{ca}); "
                           "images are never resized")
    x, y = a.pixels.to(device), b.pixels.to(device)
    try:
        ssim_result = metrics.ssim(x, y, with_map=with_map)
    except ValueError as exc:
        raise DenoiseError(f"{a_name}: {exc}") from None
    psnr_value = float(metrics.psnr(x, y)[0]) if all_scores else None
    identical = psnr_value == float("inf")
    result = {
        "a": a_name, "b": b_name, "ssim": float(ssim_result.ssim[0]), "psnr": None if identical else psnr_value,
        "psnr_identical": identical, "ms_ssim": None, "ms_ssim_note": None,
        "data_range": a.data_range, "bit_depth": {"a": a.bit_depth, "b": b.bit_depth}, "channels": a.channels,
        "alpha": "ignored (not scored)" if a.alpha is not None or b.alpha is not None else "none",
        "device": str(device), "settings": SSIM_SETTINGS,
    }
    if not all_scores:
        result["ms_ssim_note"] = "not computed"
    elif min(x.shape[-2:]) >= metrics.ms_ssim_min_size():
        result["ms_ssim"] = float(metrics.ms_ssim(x, y)[0])
    else:
        result["ms_ssim_note"] = f"needs at least {metrics.ms_ssim_min_size()} pixels a side"
    return result, ssim_result.map


def check_map_path(map_path: str, inputs: Sequence[str], overwrite: bool) -> None:
    """Before any work: the SSIM map is a file the tool writes like any other (never an input, never an existing
    file unless ``overwrite``, a known extension)."""
    if map_path == imageio.STDIO:
        raise UsageError("--map needs a file name, not stdout")
    refusal = write_refusal(map_path, inputs, overwrite)
    if refusal:
        raise UsageError(f"--map {map_path} {refusal}")
    imageio.format_for_path(map_path)


def compare_files(a_path: str, b_path: str, device: torch.device, map_path: Optional[str] = None,
                  all_scores: bool = True) -> dict:
    """Score two files; with ``map_path``, also write the SSIM map: the mean over channels of the local SSIM on the
    valid region (the image less (WINDOW_SIZE - 1) / 2 pixels on each side), as float32 values in a TIFF, else
    clipped to [0, 1] (SSIM below 0 shows as 0) in a 16-bit PNG or 8-bit file. The result says which."""
    with ThreadPoolExecutor(max_workers=2) as pool:  # decoders release the GIL: the two files decode at once
        a, b = pool.map(imageio.read_image, (a_path, b_path))
    result, ssim_map = score_images(a, b, device, a_path, b_path, all_scores, map_path is not None)
    if map_path:
        ssim_map = ssim_map.mean(dim=1, keepdim=True).cpu()
        fmt = imageio.format_for_path(map_path)
        dtype = np.float32 if fmt == "TIFF" else np.uint16 if fmt == "PNG" else np.uint8
        if fmt != "TIFF":
            ssim_map = ssim_map.clamp(0, 1)
        imageio.write_image(map_path, Image(pixels=ssim_map, alpha=None, dtype=np.dtype(dtype), format=fmt))
        border = (metrics.WINDOW_SIZE - 1) // 2
        result["map"] = {
            "path": map_path, "width": int(ssim_map.shape[-1]), "height": int(ssim_map.shape[-2]),
            "region": f"valid: the image less {border} pixels on each side",
            "values": "SSIM, float32, unclipped" if fmt == "TIFF" else f"SSIM clipped to [0, 1], {dtype.__name__}",
        }
    return result


def compare_folders(a_dir: str, b_dir: str, device: torch.device, all_scores: bool = True) -> dict:
    """Score every image of ``a_dir`` against the file at the same relative path in ``b_dir``.

    Returns pairs (each with ``relative``), the mean of each score, and errors (unpaired or unreadable files).
    """
    a_root, b_root = Path(a_dir), Path(b_dir)
    a_files = {path.relative_to(a_root) for path in scan_folder(a_root)}
    b_files = {path.relative_to(b_root) for path in scan_folder(b_root)}
    pairs, errors = [], []
    for relative in sorted(a_files | b_files):
        if relative not in b_files:
            errors.append(f"{a_root / relative}: no file at the same path in {b_dir}")
            continue
        if relative not in a_files:
            errors.append(f"{b_root / relative}: no file at the same path in {a_dir}")
            continue
        try:
            a = imageio.read_image(a_root / relative)
            b = imageio.read_image(b_root / relative)
            row, _ = score_images(a, b, device, str(a_root / relative), str(b_root / relative), all_scores)
        except DenoiseError as exc:
            errors.append(str(exc))
            continue
        row["relative"] = str(relative)
        pairs.append(row)
    mean = {}
    for key in ("ssim", "psnr", "ms_ssim"):
        values = [row[key] for row in pairs if row[key] is not None]
        mean[key] = sum(values) / len(values) if values else None
    return {"pairs": pairs, "mean": mean, "errors": errors, "settings": SSIM_SETTINGS, "device": str(device)}
