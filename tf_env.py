"""Environment for TensorFlow + tensorpack; import this before anything imports TensorFlow.

Every entry point (train.py, evaluate.py, benchmarks, previews) starts with
``import tf_env  # noqa: F401`` so that:

* ``TF_USE_LEGACY_KERAS=1``: tensorpack 0.11 builds layers with ``tf.layers``,
  which Keras 3 removed; tf-keras brings it back.
* ``TF_CPP_MIN_LOG_LEVEL=2`` (unless the user set it): hides ~600 lines of
  device-placement chatter on a machine without a GPU.

* ``TF_ENABLE_ONEDNN_OPTS=1`` (unless the user set it): TensorFlow turns its oneDNN
  kernels on by default only on CPUs with AVX-512 (VNNI, BF16, AMX). On a 2-core
  AMD EPYC without AVX-512, training ResNet-18 (width 0.25, 64x64, batch 32) took
  54 s with oneDNN against 79 s without (40 steps, same load), and TensorFlow's own
  CPU Conv2D refuses NCHW, which oneDNN's accepts. ``TF_ENABLE_ONEDNN_OPTS=0`` turns
  it off.
"""
import os
import sys

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise ImportError("tf_env must be imported before tensorflow (TF_USE_LEGACY_KERAS must be set first)")
os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def onednn_enabled():
    """Whether TensorFlow's oneDNN CPU kernels are on (the setting TensorFlow reads at import)."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("1", "true")
