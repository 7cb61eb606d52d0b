"""Writing outputs safely: the folder is checked first and nothing half-written keeps the target's name.

Free of torch, so command-line tools can refuse a bad output path before paying for importing it.
"""

import contextlib
import os
from typing import Iterator, Type

from .progress import CoreError


class OutputError(CoreError):
    """An output cannot be written; the message is one user-facing line."""


def check_output_folder(path: str, error: Type[CoreError] = OutputError) -> str:
    """The folder ``path`` would be written to; raises ``error`` (one line) if it does not exist."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise error(f"Cannot write {path}: folder {folder} does not exist; create it or choose another path")
    return folder


def partial_path(path: str) -> str:
    """The hidden sibling ``.<name>.partial<suffix>`` that ``path`` is written under until complete.

    The name depends on ``path`` alone, so a run that was killed (and could
    not clean up) leaves a file the next run to the same output replaces.
    The suffix is kept, for writers (GDAL drivers) that go by it.
    """
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.partial{os.path.splitext(name)[1]}")


@contextlib.contextmanager
def atomic_output(path: str, error: Type[CoreError] = OutputError) -> Iterator[str]:
    """Yield :func:`partial_path` of ``path``; rename it to ``path`` only if the block succeeds.

    Raises ``error`` (one line) when the folder cannot be written. On any
    exception, including cancellation, the temporary file is removed and
    ``path`` is left untouched.
    """
    check_output_folder(path, error)
    temporary = partial_path(path)
    try:
        os.close(os.open(temporary, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o666))
    except OSError as exc:
        raise error(f"Cannot write {path}: {exc.strerror or exc}; choose a writable folder") from None
    try:
        yield temporary
        # Some writers (safetensors) create the file afresh, readable by its owner only; give it the
        # permissions a plain open() would.
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, path)
    except OSError as exc:
        raise error(f"Cannot write {path}: {exc.strerror or exc}") from None
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
