# Multi-scale ResNet-101, step by step.
#   make lab        set up .venv if needed, then open JupyterLab on notebooks/
#   make test       set up .venv if needed, then the linter, the unit tests and every notebook under nbval
#   make notebooks  re-execute every notebook in place from a fresh kernel (NB=path for one)
#   make sync       bring each notebook and its text source notebooks/py/NN_topic.py to the same cells
#   make student    student copies in student/: solutions replaced by nbgrader's stub (classroom extra)
#   make site       the series as a static website in build/site/ (Sphinx + MyST-NB; classroom extra)
# Setup is idempotent: .venv is (re)installed only when pyproject.toml changed.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The classroom extra (nbgrader, Sphinx, MyST-NB, the book theme, MathJax) on top of the setup; `make lab` stays light.
CLASSROOM := $(VENV)/.installed-classroom
NB     ?= notebooks/*.ipynb
LAB_ARGS ?=
# JupyterLab refuses to start as root (containers, Colab-like VMs) unless told it may.
ROOT_FLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)
PYTEST_ARGS ?=
# make test runs on this many pytest-xdist workers; each notebook stays whole on one worker
# (--dist loadfile). OMP_WAIT_POLICY=PASSIVE: an OpenMP thread that waits sleeps instead of spinning,
# so two processes sharing the cores do not stall each other (an actively spinning thread that has
# lost its core makes every small parallel op wait for a scheduler time slice: measured here, a
# training step took 2.6 s instead of 0.14 s while another process kept one core busy).
TEST_WORKERS ?= 2
# Where PyTorch comes from. Empty: PyPI's default wheel (on Linux x86-64 the CUDA build, about 6 GB
# with its NVIDIA libraries; it runs on a CPU too). For a laptop without an NVIDIA GPU, PyTorch's
# CPU-only wheels are a fraction of that: make lab TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (set it before the first setup, or run `make clean-venv` first: setup reruns only when
# pyproject.toml changes).
TORCH_INDEX ?=

.PHONY: setup lab test notebooks sync student site clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python 3.10 or newer is needed; set PYTHON=python3.x")'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(if $(TORCH_INDEX),$(PY) -m pip install --quiet --index-url $(TORCH_INDEX) "torch>=2.4" "torchvision>=0.19")
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)
	@echo "Environment ready in $(VENV)."

$(CLASSROOM): $(STAMP)
	$(PY) -m pip install --quiet -e ".[dev,classroom]"
	@touch $(CLASSROOM)

lab: $(STAMP)
	$(PY) -m jupyter lab --notebook-dir=notebooks $(ROOT_FLAG) $(LAB_ARGS)

test: $(STAMP) $(CLASSROOM)
	$(PY) -m ruff check .
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile tests --nbval-lax notebooks $(PYTEST_ARGS)

notebooks: $(STAMP)
	$(PY) tools/run_notebooks.py $(NB)
	$(PY) tools/instructors.py  # docs/instructors.md quotes the notebooks' exercises and run times

sync: $(STAMP)
	$(PY) -m jupytext --sync $(NB)

student: $(CLASSROOM)
	$(PY) tools/student.py

# SITE_ARGS="--repo OWNER/NAME" links the notebook pages to Colab (default: pyproject.toml's Repository, once set).
SITE_ARGS ?=
site: $(CLASSROOM)
	$(PY) tools/site.py $(SITE_ARGS)

clean-venv:
	rm -rf $(VENV)
