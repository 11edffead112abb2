"""A pixel bank (after Pixel2Pixel, Ma et al., TPAMI 2025): for each pixel, the centres of the patches most similar to
its own in a window around it, and training pairs drawn from it.

Each pixel's bank holds itself and SIZE - 1 other pixels of the noisy image whose 7x7 neighbourhoods look like its
own: samples of about the same clean value with independent noise. The mean of a random half of a bank and the mean
of the other half are two noisy views of one image with independent noise (each with the noise of SIZE / 2 pixels
averaged), which is what Noise2Noise needs, at full resolution; the mean of the whole bank is the image the fitted
network is applied to (:mod:`.zsn2n`).

The search compares every offset of a WINDOW x WINDOW window (squared differences over all channels, summed over the
patch) for an anchor pixel every ANCHOR_STRIDE pixels in each direction; the pixels of an anchor's 2x2 block take its
offsets (their patches overlap it almost wholly). At 256^2 RGB sigma 25 / 50 (Kodak 3, calibration split) anchors
every 2 pixels lost 0.02-0.08 dB against every pixel, for a quarter of the search.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

#: Pixels per bank, the pixel itself included.
SIZE = 16
PATCH = 7
WINDOW = 21
ANCHOR_STRIDE = 2
#: Bytes of the shifted copies a search step holds (the image is searched in bands of rows, offsets in chunks).
SEARCH_BYTES = 128 << 20
SEARCH_BAND_ROWS = 64


def bank_offsets(x: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """x (1, C, H, W) -> (size, ceil(H / ANCHOR_STRIDE), ceil(W / ANCHOR_STRIDE)) int16: for each anchor, the offsets
    (as dy * WINDOW + dx, each in [0, WINDOW)) of its bank's pixels, most similar first; the first is the anchor
    itself."""
    _, channels, height, width = x.shape
    radius, half_patch = WINDOW // 2, PATCH // 2
    padded = _reflect_pad(x[0], radius + half_patch)  # candidates' patches
    centre = radius * WINDOW + radius
    rows = []
    for top in range(0, height, SEARCH_BAND_ROWS):
        bottom = min(top + SEARCH_BAND_ROWS, height)
        band = padded[:, top:bottom + 2 * (radius + half_patch)]
        reference = band[:, radius:radius + bottom - top + 2 * half_patch, radius:radius + width + 2 * half_patch]
        rows.append(_band_offsets(band, reference, size, centre).to(torch.int16))
    return torch.cat(rows, dim=1)


def _band_offsets(band: torch.Tensor, reference: torch.Tensor, size: int, centre: int) -> torch.Tensor:
    """The best ``size`` offsets of the anchors of one band of rows: (size, anchor rows, anchor columns)."""
    channels, patch_rows, patch_cols = reference.shape
    chunk = max(1, SEARCH_BYTES // (channels * patch_rows * patch_cols * 4))
    best_distance, best_offset = None, None
    for start in range(0, WINDOW * WINDOW, chunk):
        offsets = torch.arange(start, min(start + chunk, WINDOW * WINDOW), device=band.device)
        shifted = torch.stack([band[:, dy:dy + patch_rows, dx:dx + patch_cols]
                               for dy, dx in zip((offsets // WINDOW).tolist(), (offsets % WINDOW).tolist())])
        # the whole patch, as Pixel2Pixel: leaving out the pixels that take the anchor's offsets makes the halves'
        # noises independent (their correlation is 0.4-0.5 on pure noise) but lost 0.6 dB at sigma 50 and 0.6 at
        # sigma 25 on Kodak 3 (calibration split): the matches get worse
        distance = shifted.sub_(reference).square_().sum(1, keepdim=True)
        distance = F.avg_pool2d(distance, PATCH, stride=ANCHOR_STRIDE)[:, 0]  # (n, anchor rows, anchor columns)
        distance[offsets == centre] = -1.0  # the pixel itself always comes first
        distance = distance.permute(1, 2, 0)
        candidates = offsets.expand(*distance.shape[:2], -1)
        if best_distance is not None:
            distance = torch.cat([best_distance, distance], -1)
            candidates = torch.cat([best_offset, candidates], -1)
        best_distance, order = torch.topk(distance, min(size, distance.shape[-1]), dim=-1, largest=False)
        best_offset = torch.gather(candidates, -1, order)
    return best_offset.permute(2, 0, 1)


def bank_pixels(x: torch.Tensor, offsets: torch.Tensor, top: int = 0, left: int = 0,
                height: int | None = None, width: int | None = None) -> torch.Tensor:
    """The banks of a region of x (1, C, H, W) (default all of it): (size, C, height, width), from the anchors'
    offsets of :func:`bank_offsets` (each pixel takes its anchor's; a candidate beyond the image's edge is its mirror
    image inside)."""
    _, channels, full_height, full_width = x.shape
    height = full_height - top if height is None else height
    width = full_width - left if width is None else width
    radius = WINDOW // 2
    pixel_rows = torch.arange(top, top + height, device=x.device)
    pixel_cols = torch.arange(left, left + width, device=x.device)
    region = offsets[:, pixel_rows // ANCHOR_STRIDE][:, :, pixel_cols // ANCHOR_STRIDE].long()
    rows = pixel_rows.view(1, -1, 1) + region // WINDOW - radius
    cols = pixel_cols.view(1, 1, -1) + region % WINDOW - radius
    rows, cols = _mirror(rows, full_height), _mirror(cols, full_width)
    flat = x[0].reshape(channels, -1)[:, (rows * full_width + cols).reshape(-1)]
    return flat.reshape(channels, -1, height, width).transpose(0, 1)


def bank_mean(x: torch.Tensor, offsets: torch.Tensor, band_rows: int = 64) -> torch.Tensor:
    """The mean of each pixel's bank: (1, C, H, W), computed in bands of rows (bounded memory)."""
    out = torch.empty_like(x)
    for top in range(0, x.shape[-2], band_rows):
        rows = min(band_rows, x.shape[-2] - top)
        out[0, :, top:top + rows] = bank_pixels(x, offsets, top, 0, rows).mean(0)
    return out


def split_masks(size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Every way to pick half of a bank: (size choose size / 2, size), 1 where picked."""
    picks = torch.tensor(list(itertools.combinations(range(size), size // 2)), device=device)
    return torch.zeros(len(picks), size, device=device).scatter_(1, picks, 1.0)


def split_means(bank: torch.Tensor, masks: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
    """bank (size, C, H, W) -> the mean of a random half of each pixel's bank and the mean of the other half,
    each (1, C, H, W)."""
    size, _, height, width = bank.shape
    pick = torch.randint(0, masks.shape[0], (height * width,), generator=generator).to(bank.device)
    chosen = masks[pick].t().reshape(size, 1, height, width)
    half = 2.0 / size
    first = (bank * chosen).sum(0, keepdim=True).mul_(half)
    return first, bank.sum(0, keepdim=True).mul_(half).sub_(first)


def _reflect_pad(image: torch.Tensor, pad: int) -> torch.Tensor:
    """(C, H, W) padded by ``pad`` on every side by mirroring (repeatedly, for images smaller than the pad)."""
    height, width = image.shape[-2:]
    rows = _mirror(torch.arange(-pad, height + pad, device=image.device), height)
    cols = _mirror(torch.arange(-pad, width + pad, device=image.device), width)
    return image[:, rows][:, :, cols]


def _mirror(index: torch.Tensor, length: int) -> torch.Tensor:
    """Indices outside [0, length) mirrored inside (without repeating the edge), for any distance."""
    if length == 1:
        return torch.zeros_like(index)
    period = 2 * (length - 1)
    index = index.remainder(period)
    return torch.where(index >= length, period - index, index)
