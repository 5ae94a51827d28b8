# The two commands of the README's quick start. Each makes .venv (if missing) and installs into it.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test check install

run: $(STAMP)
	$(BIN)/passgate serve --dev

test: $(STAMP)
	$(BIN)/pytest

install: $(STAMP)

check: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

# The benchmark harness (not part of `make test`): make bench BENCH_ARGS="--seconds 5"
.PHONY: bench
bench: $(STAMP)
	$(BIN)/passgate bench $(BENCH_ARGS)
