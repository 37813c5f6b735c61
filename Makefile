# make setup: .venv with the project installed editable (fast when already done)
# make test:  setup + the whole test suite
# make demo:  setup + the main job (train, predict, search, export, report) on Fashion-MNIST
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup test demo data clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch 2.14.1 + torchvision 0.29.1 (a matching pair) are on this machine's disk; install them first, together,
	# so pip neither fetches another build nor pairs torchvision with the wrong torch (an older .venv is upgraded:
	# this stamp depends on pyproject.toml)
	$(BIN)/pip install -q "torch==2.14.1" "torchvision==0.29.1" || $(BIN)/pip install -q "torch>=2.4,<2.15" "torchvision>=0.19" --index-url https://download.pytorch.org/whl/cpu
	$(BIN)/pip install -q -e ".[dev]"
	-@$(MAKE) --no-print-directory data
	touch $(STAMP)

# Debian's dataset-fashion-mnist, where apt can be used as root and the files are absent.
data:
	@if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "$$NAS_DATA_DIR" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    (apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1)) \
	      && echo "installed dataset-fashion-mnist" || echo "could not install dataset-fashion-mnist; see README (Data)"; \
	  else echo "Fashion-MNIST not found: apt-get install dataset-fashion-mnist, or set NAS_DATA_DIR (see README)"; fi; \
	fi

# the suite runs on TEST_WORKERS processes (pytest-xdist), a test file per process: CI has 2 cores
TEST_WORKERS ?= 2
test: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

demo: setup
	$(BIN)/nas demo

clean:
	rm -rf $(VENV) runs .pytest_cache
