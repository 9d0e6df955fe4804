# `make demo` and `make test` do all set-up: they create .venv when missing and install phenorank into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.phenorank-installed

.PHONY: demo demo-cells test install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/phenorank demo

demo-cells: $(STAMP)
	$(BIN)/phenorank demo --kind cells

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) phenorank-demo phenorank-cells phenorank.duckdb
