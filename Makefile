# artds — two commands on a fresh Debian machine with Python 3.11:
#   make run    install what is missing, serve the app on http://127.0.0.1:8000
#   make test   install dev dependencies, Chromium and PostgreSQL, run the whole suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Run apt-get as root directly, otherwise through sudo when it exists.
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

.PHONY: run test test-fast bench lint install install-dev chromium postgresql clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "artds needs Python >= 3.11"'
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  echo "python3-venv is missing: installing it with apt-get"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv >/dev/null; \
	  rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --upgrade pip

# Stamps make the installs idempotent: they rerun only when the requirements change.
$(VENV)/.installed: $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	@touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# Debian's Chromium for the browser tests; Playwright never downloads a browser of its own.
chromium:
	@command -v chromium >/dev/null || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# Debian's PostgreSQL server binaries for the store tests (tests start a private server on a free
# port in a temporary folder; the package's own cluster is not used).
postgresql:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql for the database tests"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; }

# Migrates the database ($$ARTDS_DATABASE_URL, default var/artds.sqlite3) and, when no user exists,
# asks for the first administrator (or reads ARTDS_ADMIN_USER / ARTDS_ADMIN_PASSWORD).
run: install
	$(BIN)/artds serve --host $(HOST) --port $(PORT)

test: install-dev chromium postgresql
	$(BIN)/ruff check .
	$(BIN)/pytest -n 2 --dist loadgroup

# Unit tests only (no browser).
test-fast: install-dev
	$(BIN)/pytest -m "not e2e" -n 2

bench: install-dev
	$(BIN)/python -m tests.bench

lint: install-dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
