"""Which trainer, and how the towers take their part of the paper's whole minibatch.

The paper's batch size is the whole minibatch (paper sec. 3, docs/sources.md). tensorpack's
examples split it over GPUs, ``batch // num_gpus`` per tower, with BatchNorm
statistics per tower; ``--cluster`` adds the GPUs of other machines as towers.  How many towers
and the per-tower batch follow from the flags (``runrecord.command.towers``, ``split_batch``).
"""

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)

import tensorflow as tf
from tensorpack import QueueInput
from tensorpack.tfutils.tower import get_current_tower_context
from tensorpack.train import SimpleTrainer, SyncMultiGPUTrainerReplicated


def make_trainer(num_towers):
    """The tensorpack trainer: the synchronous replicated trainer for several towers (GPUs,
    ``--towers`` on the CPU, or every GPU of a ``--cluster``), else SimpleTrainer (one GPU or the CPU)."""
    if num_towers > 1:
        return SyncMultiGPUTrainerReplicated(list(range(num_towers)), average=True)
    return SimpleTrainer()


class SplitQueueInput(QueueInput):
    """tensorpack's QueueInput over whole minibatches, one dequeue per step, tower i taking part i.

    With QueueInput itself each tower dequeues a batch of its own, and which tower gets which
    batch of the stream is the order in which TensorFlow happens to run the dequeues: the
    towers' BatchNorm statistics, hence the weights, would change from run to run.
    """

    def __init__(self, ds, num_towers):
        super().__init__(ds)
        self._towers, self._parts = num_towers, None

    def _get_input_tensors(self):
        if self._parts is None:  # the first tower's call builds the one dequeue
            whole = super()._get_input_tensors()
            with tf.device("/cpu:0"), self.cached_name_scope():
                self._parts = list(
                    zip(
                        *[tf.split(t, self._towers, name=f"split_{i}") for i, t in enumerate(whole)]
                    )
                )
        return list(self._parts[get_current_tower_context().index])


def train_input(flow, num_towers):
    """The InputSource of ``flow`` (whole minibatches): QueueInput, or :class:`SplitQueueInput`
    for several towers."""
    return SplitQueueInput(flow, num_towers) if num_towers > 1 else QueueInput(flow)
