# Two commands do everything on a fresh machine:  `make run` (the main job) and `make test` (the test suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup run test lint format clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# the CPU wheel of torch 2.13.0 is on local disk here; the package itself accepts any torch 2.x >= 2.4
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

run: setup
	$(BIN)/hyenadna embed hyenadna/examples/example.fa -o out/example_embeddings.npz

test: setup
	$(BIN)/ruff check hyenadna tests benchmarks
	$(BIN)/ruff format --check hyenadna tests benchmarks
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check hyenadna tests benchmarks

format: setup
	$(BIN)/ruff format hyenadna tests benchmarks
	$(BIN)/ruff check --fix hyenadna tests benchmarks

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
