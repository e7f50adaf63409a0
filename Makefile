# qubit-sim — setup, run, test. `make run` and `make test` set up the virtual environment first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SCENARIO ?= scenarios/depot_overnight.yaml
PYTEST_ARGS ?= -n 2

.PHONY: setup run test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: it is the local CPU build (a looser spec would pull a CUDA build).
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,ray]"
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/qubit-sim run $(SCENARIO)

lint: setup
	$(VENV)/bin/ruff check qubit_sim tests benchmarks
	$(VENV)/bin/mypy qubit_sim

test: setup lint
	$(PY) -m pytest $(PYTEST_ARGS) --nbmake tests notebooks

bench: setup
	for script in benchmarks/bench_*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache .mypy_cache
