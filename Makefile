# Two commands: `make demo` (the study on the embedded weld dataset) and `make test` (the test suite).
# Both create .venv and install alnb with its [dev] extras on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PROFILE ?= quick
WORKSPACE ?= runs/weld
DATA ?= data/weld

.PHONY: demo test lab install clean-runs

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	YOLO_OFFLINE=1 $(PY) -m alnb notebooks --workspace $(WORKSPACE) --data $(DATA) --profile $(PROFILE)

test: $(STAMP)
	YOLO_OFFLINE=1 MPLBACKEND=Agg $(PY) -m pytest -q

lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean-runs:
	rm -rf $(WORKSPACE)
