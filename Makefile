# Two commands: `make demo` (the study on the embedded weld dataset) and `make test` (the test suite).
# Both create .venv and install alnb with its [dev] extras on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= quick
WORKSPACE ?= runs/weld
DATA ?= data/weld

LS_VENV ?= .venv-ls
LS_VERSION ?= 1.23.2

.PHONY: demo test lab install clean-runs labelstudio ray

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	YOLO_OFFLINE=1 $(PY) -m alnb notebooks --workspace $(WORKSPACE) --data $(DATA) --profile $(PROFILE)

# Two pytest-xdist workers (TEST_JOBS), one per core of the 2-core CI machine, each training with one thread
# (tests/conftest.py); TEST_JOBS=0 runs the suite in one process.
TEST_JOBS ?= 2

test: $(STAMP)
	YOLO_OFFLINE=1 MPLBACKEND=Agg $(PY) -m pytest -q -n $(TEST_JOBS) --dist loadgroup

# Label Studio in its own environment (its pins clash with ours): the real-server test in tests/test_labelstudio.py
# uses it (and is skipped without it). ~3 min on first use.
$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install -q --upgrade pip
	$(LS_VENV)/bin/python -m pip install -q "label-studio==$(LS_VERSION)"
	touch $(LS_VENV)/.installed

labelstudio: $(LS_VENV)/.installed

# The optional Ray engine (alnb score --engine ray; tests/test_streaming.py runs it on a local 2-CPU instance).
ray: $(STAMP)
	$(PY) -m pip install -q -e ".[ray]"

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean-runs:
	rm -rf $(WORKSPACE)
