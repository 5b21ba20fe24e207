"""Shared fixtures.

``tiny_data``: path (str) of a generated Tiny ImageNet (4 classes, 12 train and
4 val images per class, 32x40 i.e. height 32 width 40, seed 0), made once per
test session.  Treat it as read-only: a test that changes files copies it
first (the loader may add its cache under ``<root>/.cache``).
"""
import pytest

from dataflow.synthetic import generate

TINY = dict(classes=4, train_per_class=12, val_per_class=4, seed=0, height=32, width=40)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("tiny") / "data", **TINY)
