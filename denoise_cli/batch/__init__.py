"""Orchestration: plan jobs from inputs, run a method over them, write reports, score files against each other.

May import :mod:`denoise_cli.methods` and :mod:`denoise_cli.core`; never click or an interface.
"""
