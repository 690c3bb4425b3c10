# The two commands a new user needs: `make demo` (set up + main job) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test setup pipeline bench lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

## demo: set up, then build data, train, tune, promote, monitor and report on the embedded default
demo: $(STAMP)
	$(BIN)/crimecast demo

## test: the whole test suite (slow integration tests included)
test: $(STAMP)
	$(BIN)/python -m pytest -q

pipeline: $(STAMP)
	$(BIN)/crimecast pipeline

## bench: every measurement the README quotes (after `make demo`; about 45 minutes on 2 cores)
bench: $(STAMP)
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/data_ingest.py
	$(BIN)/python benchmarks/monitoring.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/lifecycle.py
	$(BIN)/python benchmarks/accuracy.py

lint: $(STAMP)
	$(BIN)/ruff check crimecast training serving monitoring tests benchmarks

clean:
	rm -rf artifacts state reports workspace mlruns mlflow.db
