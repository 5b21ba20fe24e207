"""Shared fixtures.

``tiny_data``: path (str) of a generated Tiny ImageNet (4 classes, 12 train and
4 val images per class, 32x40 i.e. height 32 width 40, seed 0), made once per
test session.  Treat it as read-only: a test that changes files copies it
first (the loader may add its cache under ``<root>/.cache``).

TensorFlow's op determinism, which train.py and evaluate.py turn on for their process
(training/session.py), is turned off again after each test: once on, it refuses the
unseeded random ops of the graphs later tests build in the same process.
"""
import sys

import pytest

from dataflow.synthetic import generate

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
