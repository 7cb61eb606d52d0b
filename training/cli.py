"""Shared behaviour of the ``python -m training.X`` tools: tqdm progress and one-line errors.

Free of torch, so a tool can refuse bad arguments before paying for importing it.
"""

from qgis_cloudremoval.core.command_line import run_cli, tqdm_reporter

__all__ = ["run_cli", "tqdm_reporter"]
