# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv by itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LLAMA_CPP := llama-cpp-python==0.3.36
# llama.cpp's OpenAI-compatible server is the real LLM server the judge tests run against. It is
# built from source (PyPI has no CPU wheel) for x86-64-v3 (AVX2, FMA, F16C, BMI2), which every
# x86 server and laptop of the last decade has: an AVX-512 build dies with SIGILL on AMD Zen 2/3
# and older Intel (measured on a 2-core AMD EPYC), and llama-cpp-python 0.3 cannot load ggml's
# per-CPU backend variants. AMX stays off (its matmul path crashed on its first generation on
# Sapphire Rapids machines). No tests/examples/curl.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
  -DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AVX_VNNI=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF \
  -DGGML_AMX_BF16=OFF -DGGML_BLAS=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF
# The built wheel is cached under a key of the version and the flags: pip's own wheel cache ignores
# CMAKE_ARGS, so a wheel built with other flags (an older AVX-512 build) would be reused silently.
LLAMA_KEY := $(shell echo '$(LLAMA_CPP) $(LLAMA_CMAKE_ARGS)' | sha1sum | cut -c1-12)
LLAMA_WHEELS := $(HOME)/.cache/rewardsmith/wheels/llama-$(LLAMA_KEY)
# New flags or version -> a new stamp -> rebuilt.
LLAMA_STAMP := $(VENV)/.llama-cpp-$(LLAMA_KEY)

.PHONY: demo test test-fast test-recipe install llama jemalloc clean docs

# The venv is rebuilt only when the pins or the package metadata change.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 resolves to the CPU wheel on machines that ship it; exact pins, no resolver surprises.
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(LLAMA_STAMP): $(STAMP)
	@ls $(LLAMA_WHEELS)/*.whl >/dev/null 2>&1 || { \
	  echo "building $(LLAMA_CPP) (first time on a machine: about 10 minutes on 2 cores; cached in $(LLAMA_WHEELS))"; \
	  CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 $(PY) -m pip wheel --quiet --no-deps \
	    --no-cache-dir -w $(LLAMA_WHEELS) $(LLAMA_CPP); }
	$(PY) -m pip install --quiet --no-deps --force-reinstall $(LLAMA_WHEELS)/*.whl
	touch $(LLAMA_STAMP)

install: $(STAMP)

# jemalloc keeps training's and the server's memory from growing with every new batch shape
# (docs/training.md, "Memory on the CPU"); `rewardsmith train|demo|serve` use it when it is
# installed. The suite runs on it where it can be had, as the benchmarks do: as root with apt
# (CI, these machines) it is installed; anywhere else this only says how, and never fails.
jemalloc:
	@ldconfig -p 2>/dev/null | grep -q libjemalloc.so.2 \
	  || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	       && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjemalloc2 >/dev/null 2>&1 \
	       && echo "installed libjemalloc2 (apt)"; } \
	  || echo "jemalloc is not installed: the suite runs on the system's malloc (apt install libjemalloc2 to use it)"

llama: $(LLAMA_STAMP)

demo: $(STAMP)
	$(VENV)/bin/rewardsmith demo

# Tiers (markers in pyproject.toml, tests/conftest.py): `make test-fast` while editing, `make test`
# (the whole suite; all CI runs) before a commit, `make test-recipe` alone when training or the recipe
# changes. Two pytest-xdist workers, one torch thread each, tests handed out one by one
# (--maxschedchunk 1) with the integration tier first, so the long tests start early and spread over
# both cores; then the recipe tier, one process on every core (its runs train real models for minutes).
XDIST := -n 2 --dist load --maxschedchunk 1

test: $(STAMP) $(LLAMA_STAMP) jemalloc
	$(PY) -m pytest -q $(XDIST) -m "not recipe"
	$(PY) -m pytest -q -m recipe

test-fast: $(STAMP)
	$(PY) -m pytest -q $(XDIST) -m "not integration and not recipe"

test-recipe: $(STAMP)
	$(PY) -m pytest -q -m recipe

docs: $(STAMP)
	$(PY) -m rewardsmith.cli.docs docs/cli

clean:
	rm -rf $(VENV) build src/*.egg-info
