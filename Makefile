# The two commands a newcomer needs: `make run` and `make test`. Both set everything up
# themselves (system packages through scripts/setup-system.sh, then a virtualenv in .venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench setup system clean

# The main job: the bundled local stack (serve + real socat on loopback), diagnosed.
run: setup
	$(BIN)/helixdiag selftest

test: setup
	$(BIN)/ruff check helixdiag tests
	$(BIN)/python -m pytest -q -n auto

# ruff, and the import layers of docs/architecture.md (also checked inside `make test`).
lint: setup
	$(BIN)/ruff check helixdiag tests
	$(BIN)/lint-imports

# Throughput, latency, scanout push, `run --all` time and memory, each as a ratio against a
# limit measured in the same run; writes docs/benchmarks.md (a few minutes; loopback only).
# With py-spy in the venv (.venv/bin/pip install py-spy) the serve process is profiled too.
bench: setup
	$(BIN)/python tests/bench.py --out docs/benchmarks.md

setup: system $(STAMP)

system:
	@bash scripts/setup-system.sh

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
