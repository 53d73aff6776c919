# The two commands: `make run` (the product on this machine) and `make test` (the whole suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
READY  := $(VENV)/.installed

.PHONY: run test worker clean bench chaos

$(READY): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(READY)

run: $(READY)
	$(VENV)/bin/treatyflow up

test: $(READY)
	$(PY) -m pytest

bench: $(READY)
	$(PY) -m benchmarks.run

# `make chaos ARGS="--seed 7"`: kills worker, API and server under load, then checks (python -m benchmarks.chaos --help)
chaos: $(READY)
	$(PY) -m benchmarks.chaos $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
