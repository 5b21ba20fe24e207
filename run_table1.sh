#!/usr/bin/env sh
# Train, evaluate and print paper Table 1 (10 runs). Usage: ./run_table1.sh --data DIR | --demo [options]
# All logic is in reproduce/ (python -m reproduce --help); train.py options go after --.
REPO=$(cd "$(dirname "$0")" && pwd)
if [ -n "$PYTHON" ]; then PY=$PYTHON; elif [ -x "$REPO/.venv/bin/python" ]; then PY=$REPO/.venv/bin/python; else
  PY=python3   # without .venv: only if it has the requirements (else a ModuleNotFoundError from deep inside)
  if ! "$PY" -c "import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ('cv2', 'tensorflow', 'tensorpack')))" 2>/dev/null; then
    echo "error: no $REPO/.venv and $PY lacks the requirements (cv2, tensorflow, tensorpack): run 'make .venv/.installed' in $REPO (creates .venv from requirements.txt), or set PYTHON to a Python that has them" >&2
    exit 2
  fi
fi
PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" -m reproduce --table 1 "$@"
