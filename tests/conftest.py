"""Shared fixtures and helpers.

``REPO``: the repository root.  ``SMALL``: train.py flags of a narrow net on ``tiny_data``'s
48 training images (6 steps per epoch at batch 8).  :func:`run_script`: the one launcher of
train.py, evaluate.py and the other scripts, as a subprocess in the repository root.
``tiny_data``: path (str) of a generated Tiny ImageNet (4 classes, 12 train and
4 val images per class, 32x40 i.e. height 32 width 40, seed 0), made once per
test session.  Treat it as read-only: a test that changes files copies it
first (the loader may add its cache under ``<root>/.cache``).

TensorFlow's op determinism, which train.py and evaluate.py turn on for their process
(training/session.py), is turned off again after each test: once on, it refuses the
unseeded random ops of the graphs later tests build in the same process.
"""
import os
import subprocess
import sys

import pytest

from dataflow.synthetic import generate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--depth", "18", "--aug", "gr", "--batch", "8", "--width-mult", "0.125", "--threads", "2"]
TINY = dict(classes=4, train_per_class=12, val_per_class=4, seed=0, height=32, width=40)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("tiny") / "data", **TINY)


@pytest.fixture(autouse=True)
def op_determinism_off_afterwards():
    yield
    if "tensorflow" in sys.modules:
        from tensorflow.python.framework import config   # no public switch-off
        config.disable_op_determinism()


def run_script(*args, timeout=300, **kw):
    """``python ARGS`` (e.g. ``"train.py", "--data", ...``) in the repository root, output captured."""
    return subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, **kw)
