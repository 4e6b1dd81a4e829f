# Figures of a sweep (analysis/all.py), from run directories or from a runs.csv written by
# analysis.collect (with the runs' small files beside it where they are committed).
#   make figures          # the committed offline study (results/embedded/), into results/embedded/figures/
#   make figures OUT_DIR=/tmp/f   # the same figures, into /tmp/f/{fig8,steps_to_target,noise,converged}
#   make figures ROOT=runs/my_sweep OUT_DIR=runs/my_sweep/figures [TARGET=0.9,0.85]
# Regenerated from the same inputs, every file (PNG, PDF, JSON, report.html) is byte-identical.
#   make study            # rerun the offline study itself (sweeps, curvature, export, figures)
#   make example-figures  # the small example sweep (analysis/figures/example_sweep/), into runs/figures/
PYTHON ?= python
STUDY ?= results/embedded
ROOT ?=
OUT_DIR ?= runs/figures
TARGET ?=

.PHONY: figures example-figures test-figures study

# The whole offline study from scratch (~1.3 h on 2 cores), then `make figures`.
study:
	PYTHON=$(PYTHON) bash results/embedded/run_study.sh

ifeq ($(ROOT),)
# OUT_DIR given (command line or environment): the study's figures go under it instead.
STUDY_FIGURES = $(if $(filter command line environment,$(origin OUT_DIR)),$(OUT_DIR),$(STUDY)/figures)
figures:
	$(PYTHON) -m analysis.all --root=$(STUDY)/study_fig8/runs.csv --out_dir=$(STUDY_FIGURES)/fig8 --target=0.9
	$(PYTHON) -m analysis.all --root=$(STUDY)/study_steps_to_target/runs.csv --out_dir=$(STUDY_FIGURES)/steps_to_target --target=0.9
	$(PYTHON) -m analysis.all --root=$(STUDY)/study_noise/runs.csv --out_dir=$(STUDY_FIGURES)/noise --target=0.9
	$(PYTHON) -m analysis.all --root=$(STUDY)/study_converged/runs.csv --out_dir=$(STUDY_FIGURES)/converged --target=0.9
else
figures:
	$(PYTHON) -m analysis.all --root=$(ROOT) --out_dir=$(OUT_DIR) $(if $(TARGET),--target=$(TARGET))
endif

example-figures:
	$(PYTHON) -m analysis.all --root=analysis/figures/example_sweep/runs.csv --out_dir=$(OUT_DIR)

test-figures:
	XLA_FLAGS=--xla_force_host_platform_device_count=8 NPROC=16 $(PYTHON) -m pytest -q tests/test_figures.py
