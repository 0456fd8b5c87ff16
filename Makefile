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
	$(BIN)/ruff check referrals tests
	$(BIN)/ruff format --check referrals tests

typecheck: setup
	$(BIN)/mypy

# Supply chain: known vulnerabilities in the installed dependencies, and high-severity code
# findings (medium and low are reviewed by hand: see docs/security.md).
audit: setup
	$(BIN)/pip freeze --exclude-editable > .venv/requirements.lock
	$(BIN)/pip-audit --requirement .venv/requirements.lock --no-deps --disable-pip --progress-spinner off
	$(BIN)/bandit --configfile pyproject.toml --recursive referrals --severity-level high --quiet

check: lint typecheck audit test

clean:
	rm -rf $(VENV) node_modules referrals/static/nhsuk .pytest_cache .mypy_cache .ruff_cache
