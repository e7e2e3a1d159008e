# Two entry points for a fresh machine: `make run` (set up, build the index, serve the app)
# and `make test` (set up, type-check, run the whole test suite, real models and browser included).
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup browser run test lint

setup: $(VENV)/.installed

# torch first, pinned: the CPU build on this disk; an unpinned torch pulls a multi-GB CUDA build.
# llama-cpp-python compiles from source (~5 min on 2 cores) and then answers ~5x faster than
# transformers on the same GGUF (docs/GENERATION.md), so the default setup includes it.
# It is built for AVX2, not -march=native: a native build on a CPU that reports AMX but whose
# kernel does not enable it died with SIGILL (tilezero) on the first prompt.
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	CMAKE_ARGS="$(LLAMA_CMAKE)" $(PY) -m pip install -q --no-cache-dir -e '.[test,llamacpp]'
	touch $@

# The Ray extra, for tests/test_ray.py only: `make setup` and `make run` stay without Ray.
$(VENV)/.installed-ray: $(VENV)/.installed
	$(PY) -m pip install -q -e '.[ray]'
	touch $@

# Debian's Chromium for the browser test (a test tool's own browser download fails offline).
browser:
	@command -v chromium >/dev/null || ($(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium chromium-driver)

run: setup
	$(PY) app.py

# The type check first: it takes about a second once .mypy_cache is warm (~15 s cold).
test: setup browser $(VENV)/.installed-ray
	$(PY) -m mypy
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check assistant tests benchmarks app.py
	$(PY) -m mypy
