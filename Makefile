# Two entry points for a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
CLI     = $(VENV)/bin/alexnet-tvm
STAMP   = $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-all test-arm bench serve-bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(CLI) demo

# test: the fast suite (<= 12 min on 2 cores). test-all: everything but the emulated arm64 board
# (<= 45 min; what CI runs). test-arm: the board, root only (its first setup builds a rootfs).
test: $(STAMP)
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS) tests

test-all: $(STAMP)
	$(PY) -m pytest -q -m "not armboard" $(PYTEST_ARGS) tests

test-arm: $(STAMP)
	$(PY) -m pytest -q -m armboard tests/test_armboard.py

# The reference workload with committed records: AlexNet-1000 (torchvision shape), batch 1 and 16,
# fp32, bf16 FC weights and int8 (TVM and ORT on one QDQ model; VNNI hosts), every runtime (OpenVINO too, when
# installed: the openvino extra) on 1 and 2 threads. Results: runs/bench/alexnet1000/{bench.json,bench.md,bench.png,layers.md}.
BENCH_MODEL = runs/bench/alexnet1000.pt
bench: $(STAMP)
	test -f $(BENCH_MODEL) || $(CLI) init --arch torchvision --classes 1000 -o $(BENCH_MODEL)
	$(CLI) bench $(BENCH_MODEL) --target auto --batch 1,16 --threads 1,2 --bf16 --int8 --layers --runs 30 \
		-o runs/bench/alexnet1000

# The server against the bare libraries, on loopback: AlexNet-1000 built for batch 1 and 16 (the committed
# records), 1 and 32 concurrent clients, 3 bare and 3 served rounds taking turns (medians reported).
# Results: runs/serve-bench/alexnet1000/serve-bench.{json,md}.
SERVE_BENCH_DIR = runs/serve-bench/alexnet1000
SERVE_BENCH_TARGET ?= auto
serve-bench: $(STAMP)
	test -f $(BENCH_MODEL) || $(CLI) init --arch torchvision --classes 1000 -o $(BENCH_MODEL)
	for b in 1 16; do test -f $(SERVE_BENCH_DIR)/b$$b/manifest.json || \
		$(CLI) build $(BENCH_MODEL) --target $(SERVE_BENCH_TARGET) --batch $$b -o $(SERVE_BENCH_DIR)/b$$b || exit 1; done
	$(CLI) serve-bench $(SERVE_BENCH_DIR)/b1 $(SERVE_BENCH_DIR)/b16 --concurrency 1,32 --requests 320 --runs 3 -o $(SERVE_BENCH_DIR)

clean:
	rm -rf runs artifacts build *.egg-info
