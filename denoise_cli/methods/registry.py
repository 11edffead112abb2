"""The registry of restoration methods: each is one function with the common call shape (:mod:`.base`), registered
once here under the name of its subcommand."""
from __future__ import annotations

from typing import Optional

import torch

from . import deblur, tv, zsn2n
from .base import Method, ProgressCallback


def _unchanged(x: torch.Tensor, progress: Optional[ProgressCallback] = None) -> tuple[torch.Tensor, dict]:
    """The identity, for ``denoise noise``: the runner adds the noise, this writes it out."""
    return x, {}


METHODS = {
    "tv": Method("tv", tv.tv_denoise, ("weight", "norm", "channels", "max_iter", "tol"), takes_output_step=True),
    "zsn2n": Method("zsn2n", zsn2n.zsn2n_denoise,
                    ("iterations", "learning_rate", "step_size", "gamma", "channels", "exact", "refine", "unclip",
                     "precision", "seed")),
    "deblur": Method("deblur", deblur.deblur,
                     ("psf", "psf_size", "weight", "regularizer", "method", "max_iter", "tol"), suffix=".deblurred"),
    "noise": Method("noise", _unchanged, (), suffix=".noisy"),
}
