# Two commands do all the set-up on a fresh machine:
#   make run   — the bridge on the embedded devnet (two anvil chains with the venues), SQLite journal under var/
#   make test  — the test suite
PY := .venv/bin/python
PIP := .venv/bin/pip
# QuickFIX with OpenSSL (the PyPI build has TLS off) and a bind address for the acceptor
# (scripts/build-quickfix-ssl.sh). Built once, kept outside the checkout.
QF_CACHE ?= $(HOME)/.cache/fixbridge/quickfix-ssl-bind

.PHONY: run test setup bench clean quickfix-ssl chromium

.venv/.installed: pyproject.toml
	python3 -m venv .venv
	$(PIP) install -q --upgrade pip wheel setuptools
	$(MAKE) --no-print-directory quickfix-ssl
	$(PIP) install -q -e '.[dev]'
	touch $@

# QuickFIX built from source with TLS (a few minutes the first time). Without OpenSSL headers the
# plain PyPI build is used instead and the TLS tests say so and skip.
quickfix-ssl:
	@mkdir -p $(dir $(QF_CACHE))
	@if ! ls $(QF_CACHE)/quickfix-1.16.0-*.whl >/dev/null 2>&1; then \
	  echo "building QuickFIX 1.16.0 with OpenSSL into $(QF_CACHE) (first time only, a few minutes)"; \
	  scripts/build-quickfix-ssl.sh $(QF_CACHE) >$(QF_CACHE).log 2>&1 || echo "QuickFIX TLS build failed (see $(QF_CACHE).log): using the PyPI build, without TLS"; \
	fi
	@if ls $(QF_CACHE)/quickfix-1.16.0-*.whl >/dev/null 2>&1; then \
	  $(PIP) install -q --force-reinstall --no-deps $(QF_CACHE)/quickfix-1.16.0-*.whl; fi

node_modules/.installed: package.json package-lock.json
	# npm install, not npm ci: npm 11 ci refuses a lock whose optional per-platform anvil binaries
	# (darwin, win32) were not resolved on this platform; install still honours the locked versions.
	npm install --no-audit --no-fund
	touch $@

# Debian's chromium, for the status page's browser test (tests/test_status_port.py drives it with
# Playwright; never `playwright install`). Skipped when present; without root or apt the test says
# so and skips.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  echo "installing chromium (apt-get) for the status page's browser test"; \
	  (apt-get install -y chromium >/dev/null 2>&1 || (apt-get update >/dev/null 2>&1 && apt-get install -y chromium >/dev/null 2>&1)) \
	    || echo "could not install chromium: the browser test will skip"; \
	fi

setup: .venv/.installed node_modules/.installed chromium

run: setup
	.venv/bin/fixbridge run

# Three workers on two cores, a test module each at a time (its devnet and bridge are module
# fixtures): most of the suite waits on blocks, bridges and timeouts, not on the CPU (787 tests,
# 12.5 min on 2 cores with 3 workers; 2 workers were past 15).
test: setup
	$(PY) -m pytest -q -n 3 --dist loadfile

bench: setup
	$(PY) bench/latency.py

clean:
	rm -rf var .pytest_cache
