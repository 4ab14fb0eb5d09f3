# Multi-scale ResNet-101, step by step.
#   make lab        set up .venv if needed, then open JupyterLab on notebooks/
#   make test       set up .venv if needed, then the linter, the unit tests and every notebook under nbval
#   make notebooks  re-execute every notebook in place from a fresh kernel (NB=path for one)
#   make sync       bring each notebook and its text source notebooks/py/NN_topic.py to the same cells
# Setup is idempotent: .venv is (re)installed only when pyproject.toml changed.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NB     ?= notebooks/*.ipynb
LAB_ARGS ?=
# JupyterLab refuses to start as root (containers, Colab-like VMs) unless told it may.
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
PYTEST_ARGS ?=

.PHONY: setup lab test notebooks sync clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed; set PYTHON=python3.x")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)
	@echo "Environment ready in $(VENV)."

lab: $(STAMP)
	$(PY) -m jupyter lab --notebook-dir=notebooks $(ROOT_FLAG) $(LAB_ARGS)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest tests --nbval-lax notebooks $(PYTEST_ARGS)

notebooks: $(STAMP)
	$(PY) tools/run_notebooks.py $(NB)

sync: $(STAMP)
	$(PY) -m jupytext --sync $(NB)

clean-venv:
	rm -rf $(VENV)
