# Two commands for a newcomer: `make demo` and `make test`.
# Everything runs from the virtualenv at .venv, created on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TINY   := .cache/tiny-model

.PHONY: venv demo test lint typecheck crds clean

venv: $(STAMP)

# torch goes in first and alone: the CPU wheel on this disk satisfies every
# later requirement, so pip never reaches for a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(TINY)/config.json: $(STAMP)
	$(BIN)/tuneforge tiny-model $(TINY)

demo: $(STAMP) $(TINY)/config.json
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
