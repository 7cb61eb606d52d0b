# Entry points for people and CI. Every target first runs scripts/setup.sh,
# which installs only what is missing.
PYTHON := .venv/bin/python
export QT_QPA_PLATFORM := offscreen

.PHONY: setup test lint demo zip
setup:
	@bash scripts/setup.sh

test: setup
	$(PYTHON) -m pytest

# Removes clouds from the bundled example through qgis_process; prints where the outputs are.
demo: setup
	$(PYTHON) -m demo

# flake8 (style, QGIS rules, docstrings, annotations: .flake8) and mypy (types: pyproject.toml); tests/test_lint.py runs it.
lint: setup
	$(PYTHON) -m flake8 qgis_cloudremoval training tests benchmarks demo
	$(PYTHON) -m mypy

# Builds cloudremoval.zip for the QGIS plugin repository (or Plugins > Install from ZIP).
zip: setup
	rm -rf build/deploy cloudremoval.zip
	.venv/bin/pb_tool zip -q
