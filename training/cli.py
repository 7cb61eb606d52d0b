"""Shared behaviour of the ``python -m training.X`` tools: tqdm progress and one-line errors.

Free of torch, so a tool can refuse bad arguments before paying for importing it.
"""

import sys
from typing import Callable, Optional

from qgis_cloudremoval.core.progress import Cancelled, CoreError, Reporter


def tqdm_reporter(bar) -> Reporter:
    """A :class:`Reporter` that drives a tqdm bar counting to 100."""
    def progress(fraction: float) -> None:
        bar.update(round(100 * fraction) - bar.n)
    return Reporter(progress=progress, info=bar.write)


def run_cli(main: Callable[[Optional[list]], None], argv: Optional[list] = None) -> int:
    """Run a CLI ``main(argv)``; user errors become one ``error:`` line on stderr and exit code 1."""
    try:
        main(argv)
    except (CoreError, OSError) as exc:
        text = str(exc).strip().splitlines()
        print(f"error: {text[0] if text else type(exc).__name__}", file=sys.stderr)
        return 1
    except (Cancelled, KeyboardInterrupt):
        print("error: cancelled; no output written", file=sys.stderr)
        return 130
    return 0
