"""Shared behaviour of the ``python -m training.X`` tools: tqdm progress and one-line errors.

Free of torch, so a tool can refuse bad arguments before paying for importing it.
"""

from qgis_cloudremoval.core.command_line import run_cli
from qgis_cloudremoval.core.progress import Reporter

__all__ = ["run_cli", "tqdm_reporter"]


def tqdm_reporter(bar) -> Reporter:
    """A :class:`Reporter` that drives a tqdm bar counting to 100."""
    def progress(fraction: float) -> None:
        bar.update(round(100 * fraction) - bar.n)
    return Reporter(progress=progress, info=bar.write)
