# Two commands on a fresh machine: `make demo` and `make test`. Each sets up .venv by itself.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LLAMA_STAMP := $(VENV)/.llama-cpp-installed
LLAMA_CPP := llama-cpp-python==0.3.36
# llama.cpp's OpenAI-compatible server is the real LLM server the judge tests run against. It is
# built from source (PyPI has no CPU wheel): portable x86 flags, AMX off (the AMX matmul path
# crashed on its first generation on these machines), no tests/examples/curl. pip caches the wheel.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
  -DGGML_BMI2=ON -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON \
  -DGGML_AVX_VNNI=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DGGML_BLAS=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF

.PHONY: demo test test-fast install clean docs

# The venv is rebuilt only when the pins or the package metadata change.
$(STAMP): requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# torch==2.13.0 resolves to the CPU wheel on machines that ship it; exact pins, no resolver surprises.
	$(PY) -m pip install --quiet --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(LLAMA_STAMP): $(STAMP)
	@echo "building $(LLAMA_CPP) (first time on a machine: about 10 minutes on 2 cores; cached after)"
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=2 $(PY) -m pip install --quiet --no-deps $(LLAMA_CPP)
	touch $(LLAMA_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rewardsmith demo

test: $(STAMP) $(LLAMA_STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not integration"

docs: $(STAMP)
	$(PY) -m rewardsmith.cli.docs docs/cli

clean:
	rm -rf $(VENV) build src/*.egg-info
