"""Which trainer, and how the towers take their part of the paper's whole minibatch.

The paper's batch size is the whole minibatch (paper sec. 3, docs/sources.md). tensorpack's
examples split it over GPUs, ``batch // num_gpus`` per tower, with BatchNorm
statistics per tower; ``--cluster`` adds the GPUs of other machines as towers.  How many towers
and the per-tower batch follow from the flags (``runrecord.command.towers``, ``split_batch``).
"""
import tf_env  # noqa: F401

import os
import shutil
import sys

import tensorflow as tf
from tensorpack import QueueInput
from tensorpack.tfutils.tower import get_current_tower_context
from tensorpack.train import SimpleTrainer, SyncMultiGPUTrainerReplicated


def visible_gpus():
    """Number of GPUs TensorFlow can see, without creating a CUDA context.

    On Linux without an NVIDIA driver (no /dev/nvidiactl) the answer is 0 without
    asking TensorFlow, whose CUDA probe would print a "failed call to cuInit" error line.

    Not ``tensorpack.utils.gpu.get_num_gpu`` (0.11): it counts the entries of
    ``CUDA_VISIBLE_DEVICES`` as GPUs (1 for the usual ``-1`` that hides them all), raises a
    TypeError when that variable is set and NVML is absent (a CPU machine), and on a CPU
    machine falls back to the same TensorFlow probe, printing the cuInit error.
    """
    if sys.platform.startswith("linux") and not os.path.exists("/dev/nvidiactl"):
        return 0
    return len(tf.config.list_physical_devices("GPU"))


def nvidia_device():
    """Evidence of an NVIDIA device that ``CUDA_VISIBLE_DEVICES`` does not hide ("/dev/nvidiactl",
    "nvidia-smi on PATH"), or None.  Where TensorFlow then sees no GPU, its CUDA install is
    broken: train.py refuses to fall back to the CPU silently (``runrecord.command.make_env``)."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and (not hidden.strip() or hidden.strip().startswith("-")):
        return None   # hidden on purpose ("" or "-1": the table scripts' CPU runs, tools/gpu_check.py)
    if os.path.exists("/dev/nvidiactl"):
        return "/dev/nvidiactl"
    return "nvidia-smi on PATH" if shutil.which("nvidia-smi") else None


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
        if self._parts is None:   # the first tower's call builds the one dequeue
            whole = super()._get_input_tensors()
            with tf.device("/cpu:0"), self.cached_name_scope():
                self._parts = list(zip(*[tf.split(t, self._towers, name=f"split_{i}")
                                         for i, t in enumerate(whole)]))
        return list(self._parts[get_current_tower_context().index])


def train_input(flow, num_towers):
    """The InputSource of ``flow`` (whole minibatches): QueueInput, or :class:`SplitQueueInput`
    for several towers."""
    return SplitQueueInput(flow, num_towers) if num_towers > 1 else QueueInput(flow)
