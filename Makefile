# Each target does its own set-up: a fresh clone needs only python3 (3.10+) and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/upload-status demo

# Postgres tests run against UPLOAD_STATUS_TEST_POSTGRES, or a throwaway local server started here;
# the Airflow DAG test makes its own virtualenv once (scripts/airflow-venv.sh, ~/.cache)
test: $(STAMP)
	$(BIN)/ruff check .
	scripts/ensure-test-tools.sh
	scripts/with-postgres.sh $(BIN)/pytest -n 2 --dist worksteal -q

# every performance goal against a baseline measured in the same run (bench/RESULTS.md)
bench: $(STAMP)
	$(BIN)/python -m bench.run

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .demo .pytest_cache .ruff_cache *.egg-info *.duckdb *.duckdb.wal *.duckdb.lock
