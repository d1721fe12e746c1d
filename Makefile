# stocklink — the two commands a newcomer needs: `make run` and `make test`.
# `make run` installs requirements.txt (what a deployment installs); `make test`, `lint` and
# `bench` add requirements-dev.txt (pytest, Hypothesis, ruff, …). Each stamp is redone when its
# file changes.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
PIP_INSTALL := $(BIN)/pip install --quiet --disable-pip-version-check

.PHONY: run test lint bench clean

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "python3.11 not found; set PY=/path/to/python3.11"; exit 1; }
	$(PY) -m venv $(VENV)

$(RUN_STAMP): requirements.txt | $(BIN)/python
	$(PIP_INSTALL) -r requirements.txt
	touch $@

$(DEV_STAMP): requirements-dev.txt $(RUN_STAMP)
	$(PIP_INSTALL) -r requirements-dev.txt
	touch $@

run: $(RUN_STAMP)
	$(BIN)/python -m stocklink.runner

test: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: $(DEV_STAMP)
	$(BIN)/python bench/propagation.py

clean:
	rm -rf $(VENV) instance
