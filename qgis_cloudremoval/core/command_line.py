"""How every command-line tool ends: one line on stderr and an exit status, never a traceback.

Exit status 0 on success, 1 for an error (the line says what is wrong and
what to do), 130 when interrupted with Ctrl+C and 143 on SIGTERM, after the
tool's own clean-up has removed partial outputs. An unexpected error writes
its traceback to a log file and names that file. argparse's usage errors
(status 2) pass through unchanged.
"""

import os
import signal
import sys
import tempfile
import threading
import traceback
from types import FrameType
from typing import TYPE_CHECKING, Callable, Dict, Optional, Protocol

from .progress import Cancelled, CoreError, Reporter, first_line

if TYPE_CHECKING:
    from .batch import Outcome

INTERRUPTED_STATUS = 130
TERMINATED_STATUS = 143


class Terminated(BaseException):
    """SIGTERM arrived; raised in the main thread so that clean-up code runs."""


def _say(message: str) -> None:
    if os.environ.get("RANK", "0") == "0":  # under torchrun only the first process speaks
        print(f"error: {message}", file=sys.stderr)


def _raise_terminated(signum: int, frame: Optional[FrameType]) -> None:
    raise Terminated()


def unexpected_error_log(exc: BaseException) -> str:
    """Write the traceback of ``exc`` to a new file in the temporary folder; returns its path."""
    handle, path = tempfile.mkstemp(prefix="cloudremoval-error-", suffix=".log")
    with os.fdopen(handle, "w") as stream:
        stream.write("".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))
    return path


def unexpected_message(exc: BaseException) -> str:
    """The one line that reports a bug: what happened and the log file that keeps its traceback."""
    return (f"unexpected error {type(exc).__name__}: {first_line(exc)}; please report it with the log "
            f"{unexpected_error_log(exc)}")


def tqdm_reporter(bar: "Bar") -> Reporter:
    """A :class:`Reporter` that drives a tqdm bar counting to 100; log lines and warnings print above it."""
    def progress(fraction: float) -> None:
        bar.update(round(100 * fraction) - bar.n)
    return Reporter(progress=progress, info=bar.write, warning=lambda message: bar.write(f"warning: {message}"))


class Bar(Protocol):
    """What the tools use of a tqdm bar: its count of steps done, advancing it, a postfix and a log line."""

    n: int

    def update(self, steps: int) -> object:
        """Advance the bar by ``steps``."""

    def set_postfix_str(self, text: str) -> None:
        """Show ``text`` after the bar."""

    def write(self, text: str) -> None:
        """Print ``text`` above the bar."""

    def __enter__(self) -> "Bar":
        """The bar, shown until the block ends."""

    def __exit__(self, *exc_info: object) -> object:
        """Close the bar."""


class _PlainBar:
    """Stands in for tqdm where it is not installed (QGIS's own Python): log lines only, no bar."""

    n = 0

    def update(self, steps: int) -> None:
        self.n += steps

    def set_postfix_str(self, text: str) -> None:
        pass

    @staticmethod
    def write(text: str) -> None:
        print(text, file=sys.stderr)

    def __enter__(self) -> "_PlainBar":
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass


def progress_bar(total: int, description: str, unit: str) -> Bar:
    """A tqdm bar on stderr, or log lines only where tqdm is not installed.

    No bar is drawn when stderr is not a terminal (``disable=None``), so logs
    and errors stay one line each.
    """
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainBar()
    return tqdm(total=total, desc=description, unit=unit, disable=None)


class BatchBar:
    """A batch's progress on one bar: scenes ended, and after it how far each running scene is.

    Implements :class:`.batch.Progress`; Dask reports from its own thread, hence the lock.
    """

    def __init__(self, bar: Bar) -> None:
        self.bar = bar
        self.running: Dict[str, float] = {}
        self.lock = threading.Lock()

    def _show(self) -> None:
        self.bar.set_postfix_str(", ".join(f"{label} {100 * done:.0f}%" for label, done in self.running.items()))

    def started(self, label: str) -> None:
        """Show scene ``label`` at 0 % after the bar."""
        with self.lock:
            self.running[label] = 0.0
            self._show()

    def fraction(self, label: str, done: float) -> None:
        """Show scene ``label`` at ``done`` (0..1) after the bar."""
        with self.lock:
            self.running[label] = done
            self._show()

    def finished(self, outcome: "Outcome") -> None:
        """Print the scene's warnings and outcome above the bar, and count it as done."""
        with self.lock:
            self.running.pop(outcome.label, None)
            for warning in outcome.warnings:
                self.bar.write(f"warning: {outcome.label}: {warning}")
            seconds = f" ({outcome.seconds:.1f} s)" if outcome.seconds else ""
            self.bar.write(f"{outcome.status} {outcome.label}: {outcome.reason}{seconds}")
            self.bar.update(1)
            self._show()


def run_cli(main: Callable[[Optional[list]], Optional[int]], argv: Optional[list] = None) -> int:
    """Run ``main(argv)`` and turn how it ended into an exit status (see the module docstring)."""
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        return int(main(argv) or 0)
    except (Cancelled, KeyboardInterrupt):
        _say("cancelled; no output was written")
        return INTERRUPTED_STATUS
    except Terminated:
        _say("terminated (SIGTERM); no output was written")
        return TERMINATED_STATUS
    except MemoryError:
        _say("out of memory; close other programs, or use smaller tiles or batches")
        return 1
    except (CoreError, OSError) as exc:
        _say(first_line(exc))
        return 1
    except Exception as exc:  # a bug: say so in one line and keep the traceback for the report
        _say(unexpected_message(exc))
        return 1
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)
