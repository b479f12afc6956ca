# Two entry points for a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
CLI     = $(VENV)/bin/alexnet-tvm
STAMP   = $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-all test-arm bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(CLI) demo

test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS) tests

test-all: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS) tests

test-arm: $(STAMP)
	$(PY) -m pytest -q -m slow tests/test_armboard.py

# The reference workload with committed records: AlexNet-1000 (torchvision shape), batch 1 and 16,
# fp32 and (opt-in build) bf16 FC weights. Results: runs/bench/alexnet1000/{bench.json,bench.md,bench.png,layers.md}.
BENCH_MODEL = runs/bench/alexnet1000.pt
bench: $(STAMP)
	test -f $(BENCH_MODEL) || $(CLI) init --arch torchvision --classes 1000 -o $(BENCH_MODEL)
	$(CLI) bench $(BENCH_MODEL) --target auto --batch 1,16 --bf16 --layers --runs 30 -o runs/bench/alexnet1000

clean:
	rm -rf runs artifacts build *.egg-info
