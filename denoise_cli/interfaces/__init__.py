"""Interfaces: the ``denoise`` command line (and its config file). Parse, call the batch layer, print; no image maths.

May import every layer below: :mod:`denoise_cli.batch`, :mod:`denoise_cli.methods`, :mod:`denoise_cli.core`.
"""
