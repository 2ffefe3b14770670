# figkd's set-up in two commands (README, "Quick start"), on a fresh machine with Python >= 3.10:
#
#   make demo   a virtual environment in .venv with PyTorch's CPU build and figkd, then `figkd demo`
#   make test   the same with the development extras, then ruff and the test suite (what .ci/run runs)
#
# Both reuse .venv: a second run installs nothing unless pyproject.toml or this file changed (then pip
# updates what differs). Settings (`make demo PYTHON=python3.12`, `make test TORCH_INDEX_URL=`):
#
#   PYTHON           the interpreter the environment is made from (default python3; 3.10 or newer)
#   TORCH_VERSION    the PyTorch release installed first (default 2.13.0, the one the tests ran on)
#   TORCH_INDEX_URL  where it comes from: PyTorch's CPU index by default (PyPI's torch is, on Linux, the
#                    CUDA build: several GB). Empty: pip's own configuration (PyPI, or a local wheel
#                    cache named by pip's find-links, as on this project's CI machine); also what is used,
#                    with a note, when the CPU index cannot be reached. On a GPU machine install the build
#                    for your CUDA version instead: https://pytorch.org/get-started/locally/
#   TEST_EXTRAS      the extras `make test` installs (default dev,hf,deploy,tune: hf is transformers, for the
#                    Hugging Face model tests; deploy is ONNX and onnxruntime, for figkd export/bench; tune
#                    is Optuna, for figkd tune); optional extras that tests use are added here as they join
#                    pyproject.toml

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_INDEX_URL ?= https://download.pytorch.org/whl/cpu
TEST_EXTRAS ?= dev,hf,deploy,tune

BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --quiet

.PHONY: demo test clean-venv

demo: $(VENV)/.installed-figkd
	$(BIN)/figkd demo

test: $(VENV)/.installed-$(TEST_EXTRAS)
	$(BIN)/python -m ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

clean-venv:
	rm -rf $(VENV)

# The environment, with a pip recent enough for editable installs from pyproject.toml (PEP 660).
$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null || { \
	    echo "figkd needs Python >= 3.10; '$(PYTHON)' is $$($(PYTHON) -V 2>&1 || echo missing): make $(MAKECMDGOALS) PYTHON=python3.X"; \
	    exit 1; }
	@$(PYTHON) -m venv $(VENV) || { \
	    echo "'$(PYTHON) -m venv' failed; on Debian/Ubuntu: apt-get install python3-venv, then make $(MAKECMDGOALS) again"; \
	    rm -rf $(VENV); exit 1; }
	$(PIP) install --upgrade "pip>=23"

# PyTorch first, so that installing figkd (torch>=2.4) never pulls the CUDA build from PyPI.
$(VENV)/.installed-torch-$(TORCH_VERSION): | $(BIN)/python
	@if $(BIN)/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$(TORCH_VERSION)')" \
	        2>/dev/null; then \
	    echo "torch $(TORCH_VERSION): already installed"; \
	elif [ -n "$(TORCH_INDEX_URL)" ] && $(BIN)/python -c "import urllib.request; \
	        urllib.request.urlopen('$(TORCH_INDEX_URL)/torch/', timeout=15)" 2>/dev/null; then \
	    echo "installing torch==$(TORCH_VERSION) from $(TORCH_INDEX_URL)"; \
	    $(PIP) install "torch==$(TORCH_VERSION)" --index-url "$(TORCH_INDEX_URL)"; \
	else \
	    [ -z "$(TORCH_INDEX_URL)" ] || echo "note: $(TORCH_INDEX_URL) cannot be reached: installing" \
	        "torch==$(TORCH_VERSION) from pip's configured sources (a local wheel cache, else PyPI)"; \
	    $(PIP) install "torch==$(TORCH_VERSION)"; \
	fi
	@touch $@

$(VENV)/.installed-figkd: pyproject.toml Makefile | $(VENV)/.installed-torch-$(TORCH_VERSION)
	$(PIP) install -e .
	@touch $@

$(VENV)/.installed-$(TEST_EXTRAS): pyproject.toml Makefile | $(VENV)/.installed-torch-$(TORCH_VERSION)
	$(PIP) install -e ".[$(TEST_EXTRAS)]"
	@touch $@
