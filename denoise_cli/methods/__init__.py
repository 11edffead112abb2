"""Restoration methods, one module each, and the registry that names them for the batch layer and the interfaces.

Every method has the call shape ``(x, *, progress=None, **settings) -> (tensor, facts)`` on (N, C, H, W) float32
tensors in [0, 1]. May import :mod:`denoise_cli.core` only.
"""
from .base import Method, ProgressCallback
from .registry import METHODS

__all__ = ["METHODS", "Method", "ProgressCallback"]
