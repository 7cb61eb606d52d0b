"""Running ``python -m qgis_cloudremoval.cli`` as a user does, in a process where chosen modules cannot be imported."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _program(blocked) -> str:
    """Python code that makes every import of ``blocked`` fail, then runs the CLI with the process's arguments."""
    hidden = "; ".join(f"sys.modules[{name!r}] = None" for name in blocked)
    return (f"import runpy, sys; {hidden}; sys.argv = ['qgis_cloudremoval.cli'] + sys.argv[1:]; "
            "runpy.run_module('qgis_cloudremoval.cli', run_name='__main__')")


def cli(*arguments, blocked=("qgis",), **options) -> subprocess.CompletedProcess:
    """Run the CLI to its end (qgis blocked: the tests prove it never needs it); captured text output."""
    return subprocess.run([sys.executable, "-c", _program(blocked), *map(str, arguments)], cwd=REPO,
                          capture_output=True, text=True, timeout=600, **options)


def start_cli(*arguments, blocked=("qgis",)) -> subprocess.Popen:
    """Start the CLI without waiting (to interrupt it); stdout and stderr are pipes of text."""
    return subprocess.Popen([sys.executable, "-c", _program(blocked), *map(str, arguments)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
