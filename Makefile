# Two commands set up a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-unit lint bench clean

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit("takedown needs Python 3.11+") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/takedown run

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check shared services tests

test-unit: install
	$(BIN)/pytest tests/unit

bench: install
	PYTHONPATH=. $(BIN)/python bench/outcomes_ingest.py

clean:
	rm -rf $(VENV) .pytest_cache
