"""The linters the README's `make lint` runs, run by the suite so that CI holds the code to them.

flake8 (style, QGIS's rules, docstrings and annotations, configured in .flake8) and mypy (types, configured
in pyproject.toml) over the whole tree must be clean; and each rule set must really be on, so a file that
breaks them is reported.
"""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _run(*command, cwd=REPO):
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_make_lint_is_clean():
    done = _run("make", "lint")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "Success: no issues found" in done.stdout


def test_a_function_without_docstring_or_annotations_is_reported(tmp_path):
    code = tmp_path / "module.py"
    code.write_text('"""A module."""\n\n\ndef scale(values, factor):\n    return values * factor\n')
    done = _run(sys.executable, "-m", "flake8", "--config", str(REPO / ".flake8"), str(code))
    reported = {line.split()[1] for line in done.stdout.splitlines()}
    assert {"D103", "ANN001", "ANN201"} <= reported, done.stdout


def test_a_type_error_is_reported(tmp_path):
    code = tmp_path / "module.py"
    code.write_text("from typing import Optional\n\n\ndef name_length(name: Optional[str]) -> int:\n"
                    "    return len(name)\n")
    done = _run(sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), str(code))
    assert done.returncode == 1
    assert 'Argument 1 to "len" has incompatible type "str | None"' in done.stdout
