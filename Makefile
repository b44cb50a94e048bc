# Two commands on a fresh machine: `make demo` (the main job on the embedded default) and `make test`.
# Both create .venv and install everything from nothing, with the versions pinned in
# requirements/constraints.txt.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test test-fast install system-deps bench clean

demo: $(STAMP)
	$(VENV)/bin/flexcouple demo

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# the tests without the ones marked slow
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

install: $(STAMP)

# mpi4py-fft builds against the FFTW headers; pyfftw's wheels bundle their own FFTW.
system-deps:
	@if [ ! -f /usr/include/fftw3.h ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing libfftw3-dev (FFTW headers, needed to build mpi4py-fft)"; \
	    (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q libfftw3-dev) >/dev/null; \
	  else \
	    echo "error: the FFTW headers (/usr/include/fftw3.h) are missing; run 'sudo apt-get install libfftw3-dev' and retry" >&2; \
	    exit 1; \
	  fi; \
	fi

$(STAMP): setup.py requirements/constraints.txt | system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c requirements/constraints.txt -e ".[test,mpi]"
	# the Well's own reader, for the test that loads our data sets with it; its pin fsspec==2024.10.0
	# conflicts with ours (the reader works with ours), hence --no-deps and its two real needs
	$(PY) -m pip install -q --no-deps the_well==1.2.0 einops==0.8.2 PyYAML==6.0.4
	touch $(STAMP)

bench: $(STAMP)
	$(PY) benchmarks/bench_solver.py

clean:
	rm -rf $(VENV) *.egg-info
