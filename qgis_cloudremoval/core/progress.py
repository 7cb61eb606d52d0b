"""How long-running core functions report progress and learn of cancellation.

The core knows nothing of QGIS feedback objects or tqdm bars: callers pass a
:class:`Reporter` built from plain callables (the plugin wraps
``QgsProcessingFeedback``, the CLIs wrap tqdm).
"""

from dataclasses import dataclass
from typing import Callable, Optional


class Cancelled(Exception):
    """The caller asked to stop; partial outputs have been removed."""


class CoreError(Exception):
    """A user error with a message that says what is wrong and what to do."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none), for one-line messages."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@dataclass
class Reporter:
    """Where the core reports to: progress (0..1), log lines, warnings and whether to stop; every part optional."""

    progress: Optional[Callable[[float], None]] = None  # fraction done, 0..1
    info: Optional[Callable[[str], None]] = None
    warning: Optional[Callable[[str], None]] = None
    is_cancelled: Optional[Callable[[], bool]] = None

    def set_progress(self, fraction: float) -> None:
        """Report ``fraction`` of the work done, clipped to 0..1."""
        if self.progress:
            self.progress(min(max(fraction, 0.0), 1.0))

    def log(self, message: str) -> None:
        """Report a log line."""
        if self.info:
            self.info(message)

    def warn(self, message: str) -> None:
        """Report a warning (as a log line where no warning callback is given)."""
        if self.warning:
            self.warning(message)
        elif self.info:
            self.info("Warning: " + message)

    def check_cancelled(self) -> None:
        """Raise :class:`Cancelled` if the caller asked to stop."""
        if self.is_cancelled and self.is_cancelled():
            raise Cancelled("cancelled by the user")


SILENT = Reporter()
