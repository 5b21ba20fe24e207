"""Environment for TensorFlow + tensorpack; import this before anything imports TensorFlow.

Every entry point (evaluate.py, benchmarks, previews) starts with ``import tf_env  # noqa: F401``;
train.py imports it once its flags are parsed (its ``--help`` needs no TensorFlow).  So:

* ``TF_USE_LEGACY_KERAS=1``: tensorpack 0.11 builds layers with ``tf.layers``,
  which Keras 3 removed; tf-keras brings it back.
* Quiet by default: ``TF_CPP_MIN_LOG_LEVEL=2`` (unless the user set it) hides ~600
  lines of device-placement chatter; 3 on a machine without an NVIDIA device
  also hides the ``E0000 ... failed call to cuInit`` line that reads as a failure; TensorFlow's
  start-up lines (printed before its logging can be configured, twice) are sent
  to /dev/null while it is imported; tensorpack's per-layer shape lines and its
  warning that the checkpoint's training counters (``global_step``,
  ``learning_rate``) are not in an evaluation graph are dropped.  An entry
  point's ``--verbose`` flag (read here from ``sys.argv``, before TensorFlow is
  imported) keeps all of them, with ``TF_CPP_MIN_LOG_LEVEL=2``.

* ``TF_ENABLE_ONEDNN_OPTS=1`` (unless the user set it): TensorFlow turns its oneDNN
  kernels on by default only on CPUs with AVX-512 (VNNI, BF16, AMX); on the development
  CPU without AVX-512 they train faster than TensorFlow's own (docs/measurements.md,
  "Speed"), and TensorFlow's own CPU Conv2D refuses NCHW, which oneDNN's accepts.
  ``TF_ENABLE_ONEDNN_OPTS=0`` turns it off.
"""

import logging
import os
import sys

if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
    raise ImportError(
        "tf_env must be imported before tensorflow (TF_USE_LEGACY_KERAS must be set first)"
    )
os.environ["TF_USE_LEGACY_KERAS"] = "1"
VERBOSE = "--verbose" in sys.argv[1:]
# 3 also hides C++ errors: only where no NVIDIA device exists, whose one error is the failed cuInit
os.environ.setdefault(
    "TF_CPP_MIN_LOG_LEVEL", "2" if VERBOSE or os.path.exists("/dev/nvidiactl") else "3"
)
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
COUNTERS_WARNING = "are in the checkpoint, but not found in the graph: global_step, learning_rate"


def _import_quietly():
    """Import TensorFlow and tensorpack with file descriptor 2 on /dev/null (their C++ start-up
    lines ignore every log setting), then silence tensorpack's start-up lines."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import tensorflow  # noqa: F401 (imported here, quietly, for every later import)
        import tensorpack  # noqa: F401 (imported here, quietly, for every later import)
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
    from tensorpack.models.registry import disable_layer_logging

    disable_layer_logging()
    logging.getLogger("tensorpack").addFilter(not_counters_warning)


def not_counters_warning(record):
    """A logging filter: False for tensorpack's warning that an evaluation graph lacks the
    checkpoint's training counters (they are not part of the model)."""
    return not str(record.msg).endswith(
        COUNTERS_WARNING
    )  # not getMessage: tensorpack passes bad %-args


if not VERBOSE and "tensorflow" not in sys.modules:
    _import_quietly()


def onednn_enabled():
    """Whether TensorFlow's oneDNN CPU kernels are on (the setting TensorFlow reads at import)."""
    return os.environ.get("TF_ENABLE_ONEDNN_OPTS", "").strip().lower() in ("1", "true")
