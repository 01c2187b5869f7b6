# tradebus: `make run` starts the whole stack, `make test` runs the tests. Both bootstrap
# a virtualenv in .venv from nothing (Python 3.11+ is the only prerequisite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: run test test-fast bench chaos schemas lint install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/tradebus up $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e" $(ARGS)

# Prints every figure next to its raw-JetStream baseline; ARGS="--quick" or ARGS="--json".
bench: $(STAMP)
	$(BIN)/tradebus bench $(ARGS)

# Every fault scenario under load, then the table (`make test` runs a short version).
chaos: $(STAMP)
	TRADEBUS_CHAOS=full $(BIN)/python -m pytest -q -s tests/chaos $(ARGS)

schemas: $(STAMP)
	$(BIN)/tradebus schemas --out proto-schemas

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache
