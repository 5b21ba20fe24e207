# The two commands of the README: `make demo` and `make test` (which runs `make lint` first).
# `make bench` prints the speed figures (dataflow, training, evaluation).
# On a GPU host: `make gpu-venv` (or GPU=1 before any target that installs) adds TensorFlow's CUDA extra.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# the CUDA libraries as pip wheels, for the tensorflow of requirements.txt (docs/training.md, "The first hour on a GPU host")
TF_CUDA := tensorflow[and-cuda]==2.21.*
GPU ?=
# test modules spread over this many processes (pytest-xdist; a module's fixtures stay in one process)
TEST_WORKERS ?= 2

.PHONY: demo test lint bench gpu-check gpu-venv

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt $(if $(GPU),"$(TF_CUDA)")
	touch $@

# A GPU host's environment, also over an existing CPU-only .venv: requirements.txt + the CUDA wheels.
gpu-venv:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt "$(TF_CUDA)"
	touch $(VENV)/.installed

# All of Table 1 on a generated dataset with a narrow net (docs/tables.md, "Demo").
demo: $(VENV)/.installed
	PYTHON=$(PY) ./run_table1.sh --demo

test: lint
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadscope

# ruff's checks and its formatter (settings in pyproject.toml); every `# noqa` names its reason
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@! grep -rnE --include='*.py' '# noqa(: [A-Z0-9, ]+)? *$$' * || \
		{ echo 'a # noqa above names no reason: add one after the codes, e.g. # noqa: F401 (why)'; exit 1; }

bench: $(VENV)/.installed
	$(PY) -m benchmarks.bench_dataflow
	$(PY) -m benchmarks.bench_train
	$(PY) -m benchmarks.bench_eval

# Every trainer path on this host, one PASS/FAIL line each; exits 1 on any FAIL (docs/training.md,
# "The first hour on a GPU host").
gpu-check: $(VENV)/.installed
	$(PY) -m tools.gpu_check
