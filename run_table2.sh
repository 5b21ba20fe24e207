#!/usr/bin/env sh
# Train, evaluate and print paper Table 2 (18 runs; reuses the batch-256 runs of Table 1). Usage: ./run_table2.sh --data DIR | --demo [options]
# All logic is in tables/ (python -m tables --help); train.py options go after --.
REPO=$(cd "$(dirname "$0")" && pwd)
if [ -n "$PYTHON" ]; then PY=$PYTHON; elif [ -x "$REPO/.venv/bin/python" ]; then PY=$REPO/.venv/bin/python; else PY=python3; fi
PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m tables --table 2 "$@"
