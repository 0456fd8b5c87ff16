# Two commands: `make run` (set up and start the demo service) and `make test` (set up and test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
# The dependency lock (runtime and development tools, with hashes) that setup installs from.
LOCK := requirements.lock

.PHONY: run test setup assets db demo lint typecheck audit check lock bench clean

run: setup db demo
	@echo ""
	@echo "Serving on http://127.0.0.1:$(PORT)  (Ctrl-C to stop)"
	$(BIN)/referrals run --host 127.0.0.1 --port $(PORT)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(VENV)/.installed referrals/static/nhsuk/.installed

# Exactly the locked versions (pip and setuptools included), checked against their hashes; then
# the project itself, built with the locked setuptools rather than whatever is newest.
$(VENV)/.installed: pyproject.toml $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The locked pip first, checked against its hashes: an older pip misreads a dependency's
	# extras (pip-audit's CacheControl[filecache]) in hash-checking mode.
	awk '/^pip==/{keep=1; print; next} keep && /^ +--hash/{print; next} {keep=0}' $(LOCK) > $(VENV)/pip.lock
	$(BIN)/python -m pip install --quiet --require-hashes --requirement $(VENV)/pip.lock
	$(BIN)/python -m pip install --quiet --require-hashes --requirement $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --editable .
	touch $@

# Refresh the lock from pyproject.toml (after adding or changing a dependency there), then run
# `make setup`. Pass PIP_COMPILE_ARGS=--upgrade to move everything to its newest allowed version.
lock: $(VENV)/.installed
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --extra dev --generate-hashes --allow-unsafe --strip-extras \
		--no-emit-index-url --no-emit-find-links --output-file $(LOCK) $(PIP_COMPILE_ARGS) \
		pyproject.toml

referrals/static/nhsuk/.installed: package.json package-lock.json scripts/copy-assets.mjs
	npm ci --no-audit --no-fund --loglevel=error
	node scripts/copy-assets.mjs
	touch $@

assets: referrals/static/nhsuk/.installed

db: setup
	$(BIN)/referrals db upgrade

demo: db
	$(BIN)/referrals seed demo --if-empty
	$(BIN)/referrals scheduler catch-up

lint: setup
	$(BIN)/ruff check referrals tests bench
	$(BIN)/ruff format --check referrals tests bench

typecheck: setup
	$(BIN)/mypy

# Supply chain: known vulnerabilities in every installed distribution (pip and setuptools
# included: `--all`), and high-severity code findings (medium and low are reviewed by hand:
# see docs/security.md).
audit: setup
	$(BIN)/pip freeze --all --exclude-editable > $(VENV)/installed.txt
	$(BIN)/pip-audit --requirement $(VENV)/installed.txt --no-deps --disable-pip --progress-spinner off
	$(BIN)/bandit --configfile pyproject.toml --recursive referrals --severity-level high --quiet

check: lint typecheck audit test

# Benchmarks (docs/performance.md): `make bench SCALE=small|full DB=sqlite|postgresql`.
# Seeds a benchmark database once per scale, then writes bench/results/<db>-<scale>.json.
SCALE ?= small
DB ?= sqlite
BENCH_OUTPUT ?= bench/results/$(DB)-$(SCALE).json
bench: setup
	$(BIN)/python -m bench.run_all --scale $(SCALE) --db $(DB) --output $(BENCH_OUTPUT) \
		$(BENCH_ARGS) >/dev/null
	$(BIN)/python -m bench.report $(BENCH_OUTPUT)

clean:
	rm -rf $(VENV) node_modules referrals/static/nhsuk .pytest_cache .mypy_cache .ruff_cache
