"""Tiny ImageNet data layer: reader, in-memory splits, training/evaluation DataFlows.

* :mod:`dataflow.synthetic`: writes a generated dataset in the Tiny ImageNet
  layout (numpy + OpenCV only, no TensorFlow).
* :mod:`dataflow.annotations`: ``read_annotations`` (files, labels, boxes, wnids;
  no pixels, numpy only), ``check_root``.
* :mod:`dataflow.tinyimagenet`: ``load_split`` / ``Split`` / ``TinyImageNet``,
  ``split_holdout`` / ``holdout_indices``.
* :mod:`dataflow.cache`: the verified decoded-image cache of ``load_split``.
* :mod:`dataflow.builders`: ``build_train_dataflow`` / ``build_eval_dataflow``.

The reader and builders import tensorpack (hence TensorFlow), so they are
re-exported lazily: ``import dataflow.synthetic`` stays free of TensorFlow,
while ``from dataflow import load_split`` works as usual.
"""
import importlib

from errors import UserError


class DataError(UserError):
    """A dataset on disk is missing, malformed or corrupt; the message names the file (and line)."""


_LAZY = {
    "Annotations": "dataflow.annotations",
    "read_annotations": "dataflow.annotations",
    "check_root": "dataflow.annotations",
    "Split": "dataflow.tinyimagenet",
    "load_split": "dataflow.tinyimagenet",
    "split_holdout": "dataflow.tinyimagenet",
    "holdout_indices": "dataflow.tinyimagenet",
    "TinyImageNet": "dataflow.tinyimagenet",
    "build_train_dataflow": "dataflow.builders",
    "build_eval_dataflow": "dataflow.builders",
}

__all__ = ["DataError", *_LAZY]


def __getattr__(name):
    # PEP 562: import the tensorpack-based modules on first use only.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dataflow' has no attribute {name!r}")
