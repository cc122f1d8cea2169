# Two commands on a fresh machine: `make demo` (whole pipeline on the bundled corpus) and
# `make test`. Both create the virtualenv and fetch the offline assets first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: venv assets demo test test-fast bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

assets: venv
	$(PY) -m curation.assets

demo: venv assets
	$(VENV)/bin/curate demo

test: venv assets
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: venv assets
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: venv assets
	$(PY) -m benchmarks

clean:
	rm -rf out .pytest_cache benchmarks/results
