"""Tiny ImageNet data layer: reader, in-memory splits, training/evaluation DataFlows.

Import from the module that owns a name:

* :mod:`dataflow.annotations`: ``read_annotations`` (files, labels, boxes, wnids; no pixels,
  NumPy only), ``check_root``.
* :mod:`dataflow.tinyimagenet`: ``load_split`` / ``Split`` / ``TinyImageNet``,
  ``split_holdout`` / ``holdout_indices``.
* :mod:`dataflow.cache`: the verified decoded-image cache of ``load_split``.
* :mod:`dataflow.builders`: ``build_train_dataflow`` / ``build_eval_dataflow``.
* :mod:`dataflow.synthetic`: writes a generated dataset in the Tiny ImageNet layout.
* :mod:`dataflow.words`: readable class names from ``words.txt``.

``dataflow.tinyimagenet`` and ``dataflow.builders`` import tensorpack (hence TensorFlow); the
annotations, the generator and the words do not, so the table scripts use them without it.
"""

from errors import UserError


class DataError(UserError):
    """A dataset on disk is missing, malformed or corrupt; the message names the file (and line)."""
