"""Where Python meets QGIS's C++: every call QGIS makes into the plugin ends in a result or one message.

A user error (:class:`.CoreError`) becomes a ``QgsProcessingException`` with
its message; cancelling, the cancel message; running out of memory, what to
change. Anything else is a bug: its whole traceback goes to the Processing
log and to QGIS's message log ("Cloud removal" tab), and the user reads one
line asking to report it. No Python exception escapes into C++, where it
would print a traceback or, in ``qgis_process``, abort the process.
"""

import traceback
from typing import Any, Callable, Optional, TypeVar

from qgis.core import Qgis, QgsMessageLog, QgsProcessingException, QgsProcessingFeedback

from ..core.progress import Cancelled, CoreError, first_line

T = TypeVar("T")

LOG_TAG = "Cloud removal"
CANCELLED_MESSAGE = "Cancelled by the user; no output was written."
OUT_OF_MEMORY_MESSAGE = ("Out of memory; no output was written. Close other programs, or set a smaller tile size "
                         "(advanced parameters)")


def report_unexpected(exc: BaseException, feedback: Optional[QgsProcessingFeedback] = None) -> str:
    """Log ``exc`` with its traceback; returns the one line for the user."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    QgsMessageLog.logMessage(text, LOG_TAG, Qgis.Critical)
    if feedback is not None:
        feedback.reportError(text, False)
    return f"Unexpected error {type(exc).__name__}: {first_line(exc)}; please report it with the log"


def user_errors(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``function(*args, **kwargs)`` with user errors, cancelling and lack of memory as ``QgsProcessingException``.

    Any other exception passes on, to the :func:`call` around the whole run, which logs it with the run's feedback.
    """
    try:
        return function(*args, **kwargs)
    except Cancelled:
        raise QgsProcessingException(CANCELLED_MESSAGE) from None
    except CoreError as exc:
        raise QgsProcessingException(str(exc)) from None
    except MemoryError:
        raise QgsProcessingException(OUT_OF_MEMORY_MESSAGE) from None


def call(function: Callable[..., T], *args: Any, feedback: Optional[QgsProcessingFeedback] = None,
         **kwargs: Any) -> T:
    """``function(*args, **kwargs)``, with every exception turned into a ``QgsProcessingException``."""
    try:
        return user_errors(function, *args, **kwargs)
    except QgsProcessingException:
        raise
    except Exception as exc:  # a bug: logged whole, shown in one line
        raise QgsProcessingException(report_unexpected(exc, feedback)) from None
