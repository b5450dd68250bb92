# mktauto: make run (admin + background cluster on SQLite), make demo, make test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
export DJANGO_SETTINGS_MODULE := mktauto.settings
# PostgreSQL for the second test run; override to point elsewhere, or set to "" to skip it.
TEST_POSTGRES_URL ?= postgres://postgres@127.0.0.1:5432/mktauto

.PHONY: run demo test test-sqlite test-postgres setup install browser clean messages

$(BIN)/activate: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(BIN)/activate

install: $(BIN)/activate

# Debian's Chromium drives the browser tests; Playwright's own browser download is not used.
browser:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

messages: install
	@command -v msgfmt >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gettext >/dev/null)
	$(PY) manage.py compilemessages -v0

setup: install messages
	mkdir -p var
	$(PY) manage.py migrate --noinput -v0
	$(PY) manage.py setup_demo

# The admin's port; links in messages follow it unless MKTAUTO_BASE_URL is set.
PORT ?= 8000

run: setup
	@echo "Admin: http://127.0.0.1:$(PORT)/admin/  (login: demo / demo-mktauto)"
	export MKTAUTO_BASE_URL=$${MKTAUTO_BASE_URL:-http://127.0.0.1:$(PORT)}; \
	$(PY) manage.py qcluster & CLUSTER=$$!; trap "kill $$CLUSTER" EXIT INT TERM; $(PY) manage.py runserver 127.0.0.1:$(PORT)

demo: setup
	$(PY) manage.py demo

test: install messages browser test-sqlite test-postgres

test-sqlite:
	$(BIN)/pytest -q

test-postgres:
	@if [ -z "$(TEST_POSTGRES_URL)" ]; then echo "TEST_POSTGRES_URL is empty: PostgreSQL run skipped"; \
	elif $(PY) -c "import sys, psycopg; psycopg.connect('$(TEST_POSTGRES_URL)'.rsplit('/', 1)[0] + '/postgres', connect_timeout=3).close()" 2>/dev/null; then \
		DATABASE_URL=$(TEST_POSTGRES_URL) $(BIN)/pytest -q; \
	else echo "PostgreSQL at $(TEST_POSTGRES_URL) is not reachable: PostgreSQL run skipped"; fi

clean:
	rm -rf $(VENV) var
