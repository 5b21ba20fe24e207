# The two commands of the README: `make demo` and `make test`.
# `make bench` prints the speed figures (dataflow, training, evaluation).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# test modules spread over this many processes (pytest-xdist; a module's fixtures stay in one process)
TEST_WORKERS ?= 2

.PHONY: demo test bench gpu-check

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# All of Table 1 on a generated dataset with a narrow net (see README, "Demo").
demo: $(VENV)/.installed
	PYTHON=$(PY) ./run_table1.sh --demo

test: $(VENV)/.installed
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope

bench: $(VENV)/.installed
	$(PY) -m benchmarks.bench_dataflow
	$(PY) -m benchmarks.bench_train
	$(PY) -m benchmarks.bench_eval

# Every trainer path on this host in ~5 minutes, one PASS/FAIL line each (README, "Several GPUs").
gpu-check: $(VENV)/.installed
	$(PY) -m tools.gpu_check
