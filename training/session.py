"""Session configuration and creator for training and prediction: unthrottled CPU threads,
mixed precision, XLA; op determinism.  A predictor uses the same creator::

    PredictConfig(..., session_creator=SessionCreator(session_config()))

tensorpack's default session config sets ``intra_op_parallelism_threads=1``,
which leaves all cores but one idle in each CPU kernel, and its
``NewSessionCreator`` builds the local-variable initializer after running the
global one, which makes TensorFlow print "... will trigger an error in the
future" (tensorpack 0.11 tfutils/sesscreate.py). :class:`SessionCreator` fixes both.
"""

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)

import tensorflow as tf
from tensorflow.core.protobuf import rewriter_config_pb2
from tensorflow.python.framework import config as tf_config
from tensorpack.tfutils.sesscreate import NewSessionCreator

from procs import available_cores

tf1 = tf.compat.v1


def use_op_determinism(on=True):
    """Turn TensorFlow's op determinism on for this process (``on=False`` leaves it as it is:
    off in a fresh process).  Call it before any graph is built: some ops choose their kernel
    when the graph is built, not when it runs.  ``tf.nn.sparse_softmax_cross_entropy_with_logits``
    emits a deterministic composite only when determinism is already on, and otherwise the fused
    op, whose GPU kernel then refuses to run (TF 2.21 tensorflow/python/ops/nn_ops.py,
    ``_sparse_softmax_cross_entropy_with_rank_2_logits``; docs/reproducibility.md)."""
    if on:
        tf.config.experimental.enable_op_determinism()


def use_tf32(on=False):
    """TensorFloat-32 in float32 convolutions and matmuls on Ampere and newer GPUs, on or off for this
    process (TensorFlow's default: on); before the graph and the session, as train.py's ``--tf32`` says.
    No effect on CPUs (docs/sources.md, "TF32")."""
    tf.config.experimental.enable_tensor_float_32_execution(bool(on))


def session_config(*, threads=None, amp=False, xla=False):
    """A ``tf.ConfigProto`` for training or prediction.

    Args:
        threads: intra-op threads for CPU kernels (None: all available cores;
            0 lets TensorFlow choose).  CPU results depend on it (docs/reproducibility.md).
        amp: False, "bf16" (TF's oneDNN bf16 graph rewrite, CPU kernels only) or
            "fp16" (TF's auto mixed precision graph rewrite, GPU kernels only).
        xla: XLA auto-clustering (GPU kernels only).
    """
    config = tf1.ConfigProto(allow_soft_placement=True)
    config.intra_op_parallelism_threads = available_cores() if threads is None else int(threads)
    config.inter_op_parallelism_threads = 0
    config.gpu_options.allow_growth = True
    rewrite = config.graph_options.rewrite_options
    if amp == "bf16":
        rewrite.auto_mixed_precision_onednn_bfloat16 = rewriter_config_pb2.RewriterConfig.ON
    elif amp == "fp16":
        rewrite.auto_mixed_precision = rewriter_config_pb2.RewriterConfig.ON
    elif amp:
        raise ValueError(f"amp must be False, 'bf16' or 'fp16', got {amp!r}")
    if xla:
        config.graph_options.optimizer_options.global_jit_level = tf1.OptimizerOptions.ON_1
    return config


def not_bit_identical(train):
    """Why a run with these ``runrecord.TrainSettings`` may differ from a rerun (empty: it should not;
    docs/reproducibility.md lists what is tested)."""
    reasons = []
    if not train.deterministic:
        reasons.append("--nondeterministic turns TensorFlow's op determinism off")
    if train.xla:
        reasons.append("--xla: XLA-compiled kernels are not tested for determinism")
    if train.amp:
        reasons.append(f"--amp ({train.amp}): mixed precision is not tested for determinism")
    return reasons


class SessionCreator(NewSessionCreator):
    """Creates the session with ``config`` and initialises every variable; for tensorpack's
    trainers and for ``PredictConfig`` (whose ``session_init`` then restores a checkpoint).

    A ``NewSessionCreator`` subclass, the type tensorpack's trainers expect (``--cluster``
    sets ``target`` before the session is created).
    All initializer ops are built before the first ``sess.run``.

    ``deterministic``: the session is for a graph built under op determinism
    (:func:`use_op_determinism`: deterministic kernels, e.g. cuDNN's, or an error naming an
    op that has none; random ops built without a seed are refused).  A deterministic
    session whose graph was built before determinism was turned on is refused: such a graph
    may hold ops whose GPU kernels refuse to run under it.
    """

    def __init__(self, config, target="", deterministic=True):
        # NewSessionCreator.__init__ only stores these, plus two warnings about GPU
        # options that do not apply when nothing touched the GPU before (none does here)
        self.target = target
        self.config = config
        self.user_provided_config = True
        self.deterministic = deterministic

    def create_session(self):
        if self.deterministic and not tf_config.is_op_determinism_enabled():
            raise RuntimeError(
                "op determinism must be on before the graph is built "
                "(training.session.use_op_determinism); it is off"
            )
        init_ops = [
            tf1.global_variables_initializer(),
            tf1.local_variables_initializer(),
            tf1.tables_initializer(),
        ]
        sess = tf1.Session(target=self.target, config=self.config)
        sess.run(init_ops)
        return sess
