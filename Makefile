# Figures of a sweep (analysis/all.py). ROOT is a sweep directory or a runs.csv written by
# analysis.collect; by default the committed example sweep (analysis/figures/example_sweep/).
#   make figures                                   # the committed CSV, into runs/figures/
#   make figures ROOT=runs/study_fig8 OUT_DIR=runs/study_fig8/figures [TARGET=0.9,0.85]
PYTHON ?= python
ROOT ?= analysis/figures/example_sweep/runs.csv
OUT_DIR ?= runs/figures
TARGET ?=

.PHONY: figures test-figures

figures:
	$(PYTHON) -m analysis.all --root=$(ROOT) --out_dir=$(OUT_DIR) $(if $(TARGET),--target=$(TARGET))

test-figures:
	XLA_FLAGS=--xla_force_host_platform_device_count=8 NPROC=16 $(PYTHON) -m pytest -q tests/test_figures.py
