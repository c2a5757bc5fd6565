# The two commands a newcomer needs: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= 127.0.0.1
STAMP := $(VENV)/.installed

# Installs come from the committed uv.lock (every runtime, test and bench dependency,
# with hashes); `make lock` refreshes it after pyproject.toml changes
# (`make lock LOCK_FLAGS=--upgrade` moves every pin to the newest allowed release).
# uv itself lives in its own small venv, outside .venv (`uv sync` is exact and would
# remove it there), installed by pip from uv-requirements.txt, pinned with hashes.
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
# .venv is the environment (tests, CI and docs use .venv/bin/...), made with $(PYTHON).
UV_SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked --python $(PYTHON) --no-python-downloads

.PHONY: serve test browser bench check clean lock

$(UV): uv-requirements.txt
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install -q --require-hashes --only-binary :all: -r uv-requirements.txt
	touch $(UV)

# The project itself is installed editable (uv sync's default for the project).
$(STAMP): pyproject.toml uv.lock $(UV)
	$(UV_SYNC) --extra test
	touch $(STAMP)

lock: $(UV)
	$(UV) lock --python $(PYTHON) --no-python-downloads $(LOCK_FLAGS)

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
$(BENCH_STAMP): $(STAMP) pyproject.toml uv.lock
	$(UV_SYNC) --extra test --extra bench
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
	$(BIN)/python -m bench.channels
	$(BIN)/python -m bench.automation

clean:
	rm -rf $(VENV) $(TOOLS) var .pytest_cache .hypothesis
