# Two commands matter: `make run` (the main job on SQLite) and `make test` (set up + every check).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint fmt typecheck pytest bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/tracker run

lint: install
	$(BIN)/ruff check tracker tests bench
	$(BIN)/ruff format --check tracker tests bench

fmt: install
	$(BIN)/ruff format tracker tests bench
	$(BIN)/ruff check --fix tracker tests bench

typecheck: install
	$(BIN)/mypy

pytest: install
	$(BIN)/pytest

test: lint typecheck pytest

bench: install
	$(BIN)/python bench/bench_sync.py
	$(BIN)/python bench/bench_feeds.py --install
	$(BIN)/python bench/bench_mail.py --install
	$(BIN)/python bench/bench_delivery.py --install

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
