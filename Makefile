# Two commands: `make demo` (the study on the embedded weld dataset) and `make test` (the test suite).
# Both create .venv and install alnb with its [dev] extras on first use, at the exact versions of the lock
# requirements/main.txt (pyproject.toml keeps ranges for other environments); `make lock` rewrites the locks.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
LOCK   := requirements/main.txt
LS_LOCK := requirements/labelstudio.txt
PROFILE ?= quick
WORKSPACE ?= runs/weld
DATA ?= data/weld

LS_VENV ?= .venv-ls

.PHONY: demo test lab install clean-runs labelstudio ray lock check-lock

# pip itself comes from the lock too (-c constrains every package pip installs, pip included).
$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) requirements/lock.py check
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c $(LOCK) --upgrade pip
	$(PY) -m pip install -c $(LOCK) -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	YOLO_OFFLINE=1 $(PY) -m alnb notebooks --workspace $(WORKSPACE) --data $(DATA) --profile $(PROFILE)

# Two pytest-xdist workers (TEST_JOBS), one per core of the 2-core CI machine, each training with one thread
# (tests/conftest.py); TEST_JOBS=0 runs the suite in one process.
TEST_JOBS ?= 2

test: $(STAMP)
	YOLO_OFFLINE=1 MPLBACKEND=Agg $(PY) -m pytest -q -n $(TEST_JOBS) --dist loadgroup

# Label Studio in its own environment (its pins clash with ours), exactly as locked in requirements/labelstudio.txt:
# the real-server tests in tests/test_labelstudio.py use it (and are skipped without it). ~3 min on first use.
$(LS_VENV)/.installed: $(LS_LOCK)
	$(PYTHON) requirements/lock.py check
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install -q -c $(LS_LOCK) --upgrade pip
	$(LS_VENV)/bin/python -m pip install -q -r $(LS_LOCK)
	touch $(LS_VENV)/.installed

labelstudio: $(LS_VENV)/.installed

# The optional Ray engine (alnb score --engine ray; tests/test_streaming.py runs it on a local 2-CPU instance).
ray: $(STAMP)
	$(PY) -m pip install -q -c $(LOCK) -e ".[ray]"

# Rewrite both locks: install the ranges of pyproject.toml (runtime + dev + ray) and requirements/labelstudio.in
# afresh in temporary venvs with this machine's pip and record exactly what installed (~10 min). Then rebuild the
# venvs (rm -rf .venv .venv-ls), run `make test` and re-measure the README's figures (docs/guide/installs.md).
lock:
	$(PYTHON) requirements/lock.py refresh all

# Fails when a lock no longer matches its inputs (also tests/test_lock.py and the first step of .ci/run).
check-lock:
	$(PYTHON) requirements/lock.py check

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean-runs:
	rm -rf $(WORKSPACE)
