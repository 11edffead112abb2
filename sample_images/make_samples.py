"""Make the sample images: small crops of public-domain / CC0 images bundled with scikit-image, and noisy copies
with Gaussian noise of sigma 25 (0-255 scale), seeded, clipped and rounded to 8 bits.

Run from the project root with the test extras installed:  python sample_images/make_samples.py
"""
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

HERE = Path(__file__).parent
SIGMA = 25.0


def crops() -> dict:
    retina = Image.fromarray(data.retina()).resize((384, 384), Image.LANCZOS)
    hubble = data.hubble_deep_field()[308:564, 372:628]
    return {
        "retina": np.asarray(retina),  # RGB, downscaled 1411 -> 384
        "hubble": hubble,  # RGB, 256x256 centre crop
        "grass": data.grass()[:256, :256],  # gray
        "text": data.text(),  # gray, 172x448
    }


def main() -> None:
    for index, (name, clean) in enumerate(crops().items()):
        Image.fromarray(clean).save(HERE / f"{name}.png", optimize=True)
        rng = np.random.default_rng(2026 + index)
        noisy = np.clip(np.rint(clean + rng.normal(0.0, SIGMA, clean.shape)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(HERE / f"{name}.noisy.png", optimize=True)


if __name__ == "__main__":
    main()
