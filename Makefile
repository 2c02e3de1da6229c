# Two commands set up a fresh machine:  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.fe-fast-deps

.PHONY: sysdeps deps build demo test bench clean

# Open3D's Python module needs libusb-1.0 at import (Debian package libusb-1.0-0).
sysdeps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libusb-1.0.so.0'; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq libusb-1.0-0 >/dev/null; \
	  else \
	    echo "note: install the system package libusb-1.0-0 for Open3D (sudo apt-get install libusb-1.0-0)"; \
	  fi; \
	fi

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.txt -r requirements-dev.txt
	touch $@

deps: sysdeps $(STAMP)

# Compiles fe_fast._C (and fe_fast._C_cuda where nvcc exists); fails if either does not compile.
build: deps
	$(BIN)/pip install -q --no-build-isolation --no-deps -e .

demo: build
	$(BIN)/fe-fast demo

# The second run hides the compiled modules (FE_FAST_DISABLE_EXT=1) to test the ops' pure-torch
# fallbacks; the Triton cases do not touch fe_fast._C, so they run once.
test: build
	TRITON_INTERPRET=1 $(BIN)/python -m pytest -n 2 --dist loadfile tests
	FE_FAST_DISABLE_EXT=1 TRITON_INTERPRET=1 $(BIN)/python -m pytest -n 2 --dist loadfile tests/ops -k "not triton"

# Every maintained benchmark (bench/README.md): quick sizes by default, the full protocol with FULL=1.
# Tables go to bench/out/ (git-ignored); bench/results/ holds the committed summaries.
bench: build
	$(BIN)/python -m pytest bench -p no:xdist -p no:cacheprovider -s -q -rs $(if $(FULL),--full,)

clean:
	rm -rf build *.egg-info fe_fast/_C*.so
