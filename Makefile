# Two commands for a newcomer: `make demo` and `make test`.
# Everything runs from the virtualenv at .venv, created on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
TINY   := .cache/tiny-model

.PHONY: venv demo test lint typecheck crds clean

venv: $(STAMP)

# The demo's install: the trainer's stack only, no compiler step.
# torch goes in first and alone: the CPU wheel on this disk satisfies every
# later requirement, so pip never reaches for a multi-GB CUDA build.
$(DEMO_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[trainer]'
	touch $(DEMO_STAMP)

# Everything (tests, CI): adds llama-cpp-python, built from source once (about
# 5 minutes; pip's wheel cache keeps the wheel for later venvs). Not native:
# a -march=native build crashes on some CPUs at the first quantized decode.
# Then the converters of the same llama.cpp commit go beside it.
$(STAMP): $(DEMO_STAMP)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/python -m pip install -q -e '.[dev]'
	$(BIN)/tuneforge llama-cpp install
	touch $(STAMP)

$(TINY)/config.json: $(DEMO_STAMP)
	$(BIN)/tuneforge tiny-model $(TINY)

demo: $(DEMO_STAMP) $(TINY)/config.json
	$(BIN)/tuneforge run examples/quickstart.yaml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest

crds: $(STAMP)
	$(BIN)/tuneforge crds --out crds

clean:
	rm -rf $(VENV) .cache runs .pytest_cache .mypy_cache .ruff_cache
