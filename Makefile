# Two commands do all the set-up on a fresh machine:
#   make run   — the bridge on the embedded devnet (anvil + Uniswap V2), SQLite journal under var/
#   make test  — the test suite
PY := .venv/bin/python
PIP := .venv/bin/pip

.PHONY: run test setup bench clean

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

setup: .venv/.installed node_modules/.installed

run: setup
	.venv/bin/fixbridge run

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/latency.py

clean:
	rm -rf var .pytest_cache
