# The two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
STAMP := $(VENV)/.installed

.PHONY: serve test browser bench check clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

# The browser tests drive Debian's Chromium (a test tool's own browser download
# is not used). Installed when missing and when we may; without it the browser
# tests skip, or fail when CI=true.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); } \
		|| echo "chromium is not installed: the browser tests will be skipped (or fail with CI=true)"

serve: $(STAMP)
	$(BIN)/kairos serve --host $(HOST) --port $(PORT) --config config

test: $(STAMP) browser
	$(BIN)/ruff check edge rules tests bench
	cd snippet && npm ci --no-audit --no-fund --silent && npm test --silent
	$(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/kairos check config

# The bench extras (peer engines, locust, matplotlib) are installed for `make bench` only.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.rules
	$(BIN)/python -m bench.compare_rules
	$(BIN)/python -m bench.http
	$(BIN)/python -m bench.population --profiles 1000000
	$(BIN)/python -m bench.http --targets edge --population 10000,1000000 --name http-population
	$(BIN)/python -m bench.curve
	$(BIN)/python -m bench.locust_run
	$(BIN)/python -m bench.locust_run --target bare --think 0 --users 20 --duration 15 --name locust-ceiling

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
