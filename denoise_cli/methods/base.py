"""What every restoration method shares: its call shape, and the progress callback the batch layer passes in.

A method function takes a batch (N, C, H, W) in [0, 1] plus keyword settings (and an optional ``progress``
callback) and returns the result of the same shape and a small dict of facts (iterations, estimated sigma, weight,
final loss or gap). The runner, the reports and the CLI treat every method alike.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

#: (steps done, steps in all, facts so far); facts["phase"] names what the steps count ("choosing the weight",
#: "solving", "fitting"), and a new phase starts its count again.
ProgressCallback = Callable[[int, int, dict], None]
MethodFunction = Callable[..., tuple]  # (x, *, progress=None, **settings) -> (tensor, facts)


@dataclass(frozen=True)
class Method:
    """name: the subcommand; function: the denoiser; settings: the options passed to it; suffix: output naming;
    takes_output_step: the function also takes ``output_step``, the quantisation step of the output file in [0, 1]
    units (1/255 for 8-bit, 0 for float), to stop as soon as further work could not change what is written."""

    name: str
    function: MethodFunction
    settings: tuple
    suffix: str = ".denoised"
    takes_output_step: bool = False
