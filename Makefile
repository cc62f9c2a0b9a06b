# dropserve developer and CI entry points. People and CI run the same two commands:
#   make serve   # install if needed, then serve the default models on http://127.0.0.1:8000
#   make test    # install if needed, then lint, type-check and run the whole pytest suite
# Everything runs from the virtual environment in $(VENV); torch stays on the CPU build because
# every install goes through constraints.txt.

PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
MODELS_DIR ?= models
PYTEST_ARGS ?=
BENCH_ARGS ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install serve test lint typecheck format models bench bench-quick clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# The venv itself is order-only: its mtime changes whenever pip touches it, and that must not
# force a reinstall. The stamp is what records "installed from these pins".
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -c constraints.txt -e '.[dev]'
	@touch $@

install: $(STAMP) ## Create the venv if missing and install dropserve with its dev tools (no-op when current).

serve: install ## Serve the default models (models/) on 127.0.0.1:8000.
	$(BIN)/dropserve serve --host $(HOST) --port $(PORT) --models-dir $(MODELS_DIR)

# Lint and type-check first (in parallel under -j): the cheapest failures stop the run soonest.
test: lint typecheck ## Lint, type-check, then run the whole test suite.
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install ## ruff format --check and ruff check.
	VENV=$(VENV) scripts/lint.sh

typecheck: install ## mypy (strict, configured in pyproject.toml).
	$(BIN)/mypy

format: install ## Rewrite files with ruff format and apply ruff's safe fixes.
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

models: install ## Retrain the default model bundles into models/.
	PATH="$(abspath $(BIN)):$$PATH" bash scripts/train_defaults.sh

bench: install ## Full benchmark (when bench/ has a runner).
	@if [ -f bench/__main__.py ]; then \
		$(BIN)/python -m bench $(BENCH_ARGS); \
	else \
		echo "make bench: not yet available (bench/ has no runner: bench/__main__.py)"; \
	fi

bench-quick: install ## Short benchmark for a quick check (when bench/ has a runner).
	@if [ -f bench/__main__.py ]; then \
		$(BIN)/python -m bench --quick $(BENCH_ARGS); \
	else \
		echo "make bench-quick: not yet available (bench/ has no runner: bench/__main__.py)"; \
	fi

clean: ## Remove caches and build outputs (keeps the venv: delete it by hand to reinstall).
	rm -rf build dist .pytest_cache .mypy_cache .ruff_cache
	find . -path ./$(VENV) -prune -o \( -name __pycache__ -o -name '*.egg-info' \) -type d \
		-prune -exec rm -rf {} +
