# Each target does its own set-up: a fresh clone needs only python3 (3.10+) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench lint lock clean

# installs the versions constraints.txt pins (the lock), inside pyproject.toml's bounds
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/upload-status demo

# Postgres and MariaDB tests run against UPLOAD_STATUS_TEST_POSTGRES / _MYSQL, or throwaway local
# servers started here;
# the Airflow DAG test, the DuckDB 1.x reader and the lowest-bounds run make their own
# virtualenvs once (scripts/*-venv.sh, ~/.cache); dlt's private API is checked against the newest
# dlt the bounds allow too (a virtualenv only when that is not the locked one)
test: $(STAMP)
	$(BIN)/ruff check .
	scripts/ensure-test-tools.sh
	scripts/with-postgres.sh scripts/with-mariadb.sh $(BIN)/pytest -n 2 --dist worksteal -q
	scripts/with-postgres.sh scripts/with-mariadb.sh scripts/test-lowest-bounds.sh
	scripts/test-newest-bounds.sh

# every performance goal against a baseline measured in the same run (bench/RESULTS.md)
bench: $(STAMP)
	$(BIN)/python -m bench.run

# the newest versions pyproject.toml allows, written to constraints.txt (then `make test`)
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet -e '.[dev]'
	{ sed -n '1,2p' constraints.txt; .lock-venv/bin/pip freeze --exclude-editable; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf .lock-venv

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache *.egg-info *.duckdb *.duckdb.wal *.duckdb.lock
