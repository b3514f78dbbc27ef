# Thin targets; see README.md. Everything runs from a venv in .venv (created by `make install`).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
DEMO   := demo

.PHONY: install demo test lint format clean bench fuzz schemas

$(BIN)/pybundle: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/pybundle

# Benchmarks (see bench/README.md): uv and py-spy go into their own venv, bench/.venv.
BENCH_VENV := bench/.venv

$(BENCH_VENV)/bin/uv: bench/requirements.txt
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet -r bench/requirements.txt
	touch $@

bench: install $(BENCH_VENV)/bin/uv
	$(BIN)/python bench/run.py --uv $(BENCH_VENV)/bin/uv $(BENCH_ARGS)

demo: install
	PYBUNDLE=$(BIN)/pybundle DEMO_DIR=$(DEMO) ./scripts/demo.sh

test: install
	$(BIN)/python -m pytest -q

# The fuzzer for as long as asked (FUZZ_MINUTES, default 30); failing inputs go to tests/corpus/.
FUZZ_MINUTES ?= 30
fuzz: install
	$(BIN)/python tests/fuzz/run.py --minutes $(FUZZ_MINUTES)

lint: install
	$(BIN)/ruff check src tests scripts/compile_schemas.py
	$(BIN)/ruff format --check src tests scripts/compile_schemas.py
	$(BIN)/mypy
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff format src tests scripts/compile_schemas.py
	$(BIN)/ruff check --fix src tests scripts/compile_schemas.py

# The validators compiled from src/pybundle/schemas (the installer's fast accept path); run it
# after changing or adding a schema: tests/test_schema_compiled.py fails while they are stale.
schemas: install
	$(BIN)/python scripts/compile_schemas.py

clean:
	rm -rf $(VENV) $(DEMO) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
