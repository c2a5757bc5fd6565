# The two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
STAMP := $(VENV)/.installed

.PHONY: serve test bench check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/kairos serve --host $(HOST) --port $(PORT) --config config

test: $(STAMP)
	$(BIN)/ruff check edge rules tests bench
	cd snippet && npm ci --no-audit --no-fund --silent && npm test --silent
	$(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/kairos check config

bench: $(STAMP)
	$(BIN)/python -m bench.rules
	$(BIN)/python -m bench.http

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
