"""The registry of denoisers: each is one function with the common call shape, registered once here.

A method function takes a batch (N, C, H, W) in [0, 1] plus keyword settings (and an optional ``progress``
callback) and returns the result of the same shape and a small dict of facts (iterations, estimated sigma, weight,
final loss or gap). The runner, the reports and the CLI treat every method alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch

from . import tv, zsn2n

ProgressCallback = Callable[[int, int, dict], None]  # (steps done, steps in all, facts so far)
MethodFunction = Callable[..., tuple]  # (x, *, progress=None, **settings) -> (tensor, facts)


@dataclass(frozen=True)
class Method:
    """name: the subcommand; function: the denoiser; settings: the options passed to it; suffix: output naming."""

    name: str
    function: MethodFunction
    settings: tuple
    suffix: str = ".denoised"


def _unchanged(x: torch.Tensor, progress: Optional[ProgressCallback] = None) -> tuple[torch.Tensor, dict]:
    """The identity, for ``denoise noise``: the runner adds the noise, this writes it out."""
    return x, {}


METHODS = {
    "tv": Method("tv", tv.tv_denoise, ("weight", "norm", "channels", "max_iter", "tol")),
    "zsn2n": Method("zsn2n", zsn2n.zsn2n_denoise,
                    ("iterations", "learning_rate", "step_size", "gamma", "channels", "exact", "seed")),
    "noise": Method("noise", _unchanged, (), suffix=".noisy"),
}
