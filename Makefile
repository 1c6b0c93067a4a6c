# Two commands set up a fresh machine with Python 3.11+: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-unit lint bench soak clean

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
	$(BIN)/ruff check shared services tests bench

test-unit: install
	$(BIN)/pytest tests/unit

# Benchmarks, not tests: each starts what it measures, prints its figures next to the targets and
# writes bench/results/<name>.json; bench.report renders them into docs/benchmarks.md. Durations
# are environment variables (see docs/benchmarks.md) to try it: BENCH_SECONDS=10 BENCH_PROFILE_S=0
# BENCH_OVERLOAD_SECONDS=15 BENCH_OVERLOAD_DRAIN_S=30 BENCH_SCALE_SECONDS=10 make bench. About 18 minutes
# at the defaults; bench.limits and bench.overload compare with bench.e2e's result, so they run after it.
bench: install
	PYTHONPATH=. $(BIN)/python -m bench.e2e
	PYTHONPATH=. $(BIN)/python -m bench.limits
	PYTHONPATH=. $(BIN)/python -m bench.overload
	PYTHONPATH=. $(BIN)/python -m bench.scale
	PYTHONPATH=. $(BIN)/python -m bench.latency
	PYTHONPATH=. $(BIN)/python -m bench.ingest
	PYTHONPATH=. $(BIN)/python -m bench.memory
	PYTHONPATH=. $(BIN)/python -m bench.auth
	PYTHONPATH=. $(BIN)/python -m bench.report

# 10 minutes at 1,000 referrals/s (SOAK_SECONDS=60 to try it).
soak: install
	PYTHONPATH=. $(BIN)/python -m bench.soak
	PYTHONPATH=. $(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) .pytest_cache
