"""Environment for TensorFlow + tensorpack; import this before anything imports TensorFlow.

Every entry point (train.py, evaluate.py, benchmarks, previews) starts with
``import tf_env  # noqa: F401`` so that:

* ``TF_USE_LEGACY_KERAS=1``: tensorpack 0.11 builds layers with ``tf.layers``,
  which Keras 3 removed; tf-keras brings it back (tensorpack-notes.md).
* ``TF_CPP_MIN_LOG_LEVEL=2`` (unless the user set it): hides ~600 lines of
  device-placement chatter on a machine without a GPU (tensorpack-notes.md).

oneDNN stays on: ``TF_ENABLE_ONEDNN_OPTS=0`` halves CPU speed (tensorpack-notes.md).
"""
import os
import sys

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise ImportError("tf_env must be imported before tensorflow (TF_USE_LEGACY_KERAS must be set first)")
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
