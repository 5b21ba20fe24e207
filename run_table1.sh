#!/usr/bin/env sh
# Train, evaluate and print paper Table 1 (10 runs). Usage: ./run_table1.sh --data DIR | --demo [options]
# All logic is in tables/ (python -m tables --help); train.py options go after --.
REPO=$(cd "$(dirname "$0")" && pwd)
if [ -n "$PYTHON" ]; then PY=$PYTHON; elif [ -x "$REPO/.venv/bin/python" ]; then PY=$REPO/.venv/bin/python; else PY=python3; fi
PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m tables --table 1 "$@"
