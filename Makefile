# Set-up is two commands: `make run` and `make test`. Both create .venv if needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Every dependency at the exact version and hash in requirements.lock (compiled by uv from pyproject.toml: `make
# lock`), so every machine runs the same packages and a run's id (which hashes their versions) is the same there.
LOCK := requirements.lock
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(LOCK) | sha256sum | cut -c1-12)

.PHONY: run test lint typecheck lock lock-check install data docs bench bench-data clean

$(STAMP): pyproject.toml $(LOCK)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## the default national allocation on the bundled data, written to out/<run id>/
run: install
	$(BIN)/fundform run

## the whole test suite (installs the locked dependencies, and Debian's chromium for the browser tests when missing and
## run as root), after the lint, the type check and the lock check, on every core (pytest-xdist: each worker a process of its own; the
## tests share no files, each writes under its own tmp_path). A browser test fails, never skips, when chromium is missing
test: lint typecheck lock-check
	bash tools/ensure_chromium.sh
	FUNDFORM_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -n auto

## requirements.lock pins what pyproject.toml declares (no network: fails when one was edited without the other)
lock-check: install
	$(BIN)/python tools/check_lock.py

## recompile requirements.lock from pyproject.toml (exact versions and hashes of every dependency, for Python 3.11+
## on any platform); commit both
lock:
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra bench --extra distributed --generate-hashes --python-version 3.11 \
		--universal --quiet -o $(LOCK)

## pyflakes-level faults (unused or undefined names) and import order: ruff, configured in pyproject.toml
lint: install
	$(BIN)/ruff check .

## the types of the whole package, every definition typed: mypy, configured in pyproject.toml ([tool.mypy])
typecheck: install
	$(BIN)/mypy

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
	test -d benchmarks/data/persons || $(BIN)/python benchmarks/generate.py
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf out .pytest_cache .hypothesis .mypy_cache
