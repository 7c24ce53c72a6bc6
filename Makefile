# Two commands (README): `make demo` runs the main job, `make test` the test suite.
# Both create/refresh the virtual environment first.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo lint test test-all test-fast clean

$(STAMP): pyproject.toml $(wildcard */__init__.py)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/compact-reid profile
	$(BIN)/compact-reid sweep run sweeps/smoke.yaml --fresh
	$(BIN)/compact-reid tables --experiment smoke

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=25

test-all: test

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not e2e and not slow and not learning"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
