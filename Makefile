# Two commands: `make run` (set up and start the demo service) and `make test` (set up and test).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export FLASK_APP := referrals

.PHONY: run test setup assets db demo lint typecheck audit check bench clean

run: setup db demo
	@echo ""
	@echo "Serving on http://127.0.0.1:5000  (Ctrl-C to stop)"
	$(BIN)/flask run --host 127.0.0.1 --port 5000

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

setup: $(VENV)/.installed referrals/static/nhsuk/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

referrals/static/nhsuk/.installed: package.json package-lock.json scripts/copy-assets.mjs
	npm ci --no-audit --no-fund --loglevel=error
	node scripts/copy-assets.mjs
	touch $@

assets: referrals/static/nhsuk/.installed

db: setup
	$(BIN)/flask db upgrade

demo: db
	$(BIN)/flask seed demo --if-empty
	$(BIN)/flask scheduler catch-up

lint: setup
	$(BIN)/ruff check referrals tests bench
	$(BIN)/ruff format --check referrals tests bench

typecheck: setup
	$(BIN)/mypy

# Supply chain: known vulnerabilities in the installed dependencies, and high-severity code
# findings (medium and low are reviewed by hand: see docs/security.md).
audit: setup
	$(BIN)/pip freeze --exclude-editable > .venv/requirements.lock
	$(BIN)/pip-audit --requirement .venv/requirements.lock --no-deps --disable-pip --progress-spinner off
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
