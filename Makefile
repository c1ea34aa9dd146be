# Set-up is two commands: `make run` and `make test`. Both create .venv if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)

.PHONY: run test lint install data docs bench bench-data clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## the default national allocation on the bundled data, written to out/<run id>/
run: install
	$(BIN)/fundform run

## the test suite (installs the dev extras), after the lint
test: lint
	$(BIN)/python -m pytest

## pyflakes-level faults (unused or undefined names) and import order: ruff, configured in pyproject.toml
lint: install
	$(BIN)/ruff check .

## rebuild data/default and data/maps from ../shared/data (maintainers; the engine never reads ../shared)
data: install
	$(BIN)/python data/build_dataset.py
	$(BIN)/python data/build_maps.py

## regenerate data/DICTIONARY.md, docs/output-schema.md, docs/method/ and docs/assumptions.md from the code
docs: install
	$(BIN)/fundform docs

## synthetic inputs at scale (6.1M small-area rows, 57.7M person rows) in benchmarks/data/, not committed
bench-data: install
	$(BIN)/python benchmarks/generate.py

## W1-W4 and the batch rerun, side by side; writes benchmarks/RESULTS.md
bench: install
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	test -d benchmarks/data/persons || $(BIN)/python benchmarks/generate.py
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf out .pytest_cache .hypothesis
