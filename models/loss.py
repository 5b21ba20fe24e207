"""What the training graph adds to the loss and its gradients: weight decay, a finiteness
check, and the static loss scale of fp16 training (used by :class:`models.resnet.CAMModel`)."""

import tf_env  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tensorflow is imported)

import tensorflow as tf
from tensorpack.models import regularize_cost
from tensorpack.tfutils import optimizer as tp_optimizer

NONFINITE_LOSS = "non-finite training loss"  # the check_numerics message train.py recognises
# the same for a gradient that overflowed the loss scale
NONFINITE_GRADIENT = "non-finite fp16 gradient"
# static loss scale for fp16 (NVIDIA's mixed-precision guide uses 128 for ResNets)
FP16_LOSS_SCALE = 128.0
# conv kernels and the FC weight are named ".../W" in tensorpack; BN's gamma/beta and
# the FC bias ("b") are not decayed (paper sec. 3: weight decay 1e-4)
WEIGHT_DECAY_PATTERN = r"/W$"


def weight_decay_cost(weight_decay):
    """``weight_decay * sum(w**2) / 2`` over the weights matching WEIGHT_DECAY_PATTERN
    (gradient ``weight_decay * w``, the usual SGD weight decay); named ``wd_cost``."""
    return regularize_cost(
        WEIGHT_DECAY_PATTERN, lambda w: weight_decay * tf.nn.l2_loss(w), name="wd_cost"
    )


def check_finite(loss):
    """``loss`` unchanged, but its gradient waits for a check that it is finite, so a NaN/inf
    loss stops the training step with an InvalidArgumentError naming NONFINITE_LOSS before
    any weight changes.  A plain ``check_numerics(loss)`` would be pruned: the gradients do
    not read the loss's value (the seed gradient's shape is folded to a constant)."""

    @tf.custom_gradient
    def checked(x):
        check = tf.debugging.check_numerics(x, NONFINITE_LOSS)

        def grad(dy):
            with tf.control_dependencies([check]):
                return tf.identity(dy)

        return tf.identity(x), grad

    return checked(loss)


class StaticLossScale(tp_optimizer.ProxyOptimizer):
    """Multiply the loss by ``scale`` before differentiating and divide the gradients after.

    For fp16 training, so that small gradients do not underflow. A static
    scale works with every tensorpack trainer (a dynamic one would update its
    state once per tower in the replicated trainer).
    """

    def __init__(self, opt, scale):
        super().__init__(opt, name="StaticLossScale")
        self._scale = float(scale)

    def compute_gradients(self, loss, *args, **kwargs):
        """The unscaled gradients, each released only after a check that all of them are finite: an
        fp16 gradient that overflowed stops the step with an InvalidArgumentError naming
        NONFINITE_GRADIENT before any weight changes (a finite loss can have an infinite gradient)."""
        grads = [
            (None if g is None else g / self._scale, v)
            for g, v in self._opt.compute_gradients(loss * self._scale, *args, **kwargs)
        ]
        present = [g for g, _ in grads if g is not None]
        if not present:
            return grads
        finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(g)) for g in present]))
        check = tf.debugging.Assert(finite, [NONFINITE_GRADIENT], name="check_gradients")
        with tf.control_dependencies([check]):
            return [(None if g is None else tf.identity(g), v) for g, v in grads]
