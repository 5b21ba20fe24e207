"""The training and evaluation DataFlows over an in-memory :class:`dataflow.Split`.

Training: each epoch shuffles the indices, cuts ``len(split) // batch_size``
batches (the remainder is dropped, so every batch has the same size), and
passes each image of a batch through one tensorpack ``imgaug.AugmentorList``
(``augment.augmentors_for``).  One DataFlow step per batch, not per image,
keeps one process far above the GPU's need (``python -m benchmarks.bench_dataflow``).

Evaluation: the split in file order, no augmentation, with boxes; the last
batch may be smaller.

As for any tensorpack DataFlow, call ``reset_state()`` once before iterating
(tensorpack's trainers and ``InferenceRunner`` do).
"""
import ctypes
import multiprocessing
import os
import signal
import sys

import numpy as np

import tf_env  # noqa: F401  (before tensorpack, INTERFACES.md)
from augment import augmentors_for, seed_augmentors
from tensorpack.dataflow import BatchData, MultiProcessRunnerZMQ, RNGDataFlow
from tensorpack.utils import logger

from dataflow import DataError
from dataflow.tinyimagenet import TinyImageNet

_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def worker_index():
    """This process's index among the workers of a ``MultiProcessRunnerZMQ`` (0 .. N-1), or None outside one.

    tensorpack 0.11 runs each worker as a ``MultiProcessRunnerZMQ._Worker`` process that knows its index.
    """
    proc = multiprocessing.current_process()
    return proc.idx if isinstance(proc, MultiProcessRunnerZMQ._Worker) else None


def die_with_parent():
    """Ask Linux to SIGKILL this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``).

    tensorpack does this itself when python-prctl is installed; it does not build here, so a
    killed trainer would leave its data workers running.  ctypes reaches the same system call.
    The signal comes when the *thread* that forked this process ends: fork from the main
    thread (tensorpack's trainers do).  Elsewhere than Linux: a warning, nothing else.
    """
    if not sys.platform.startswith("linux"):
        logger.warn("data workers cannot follow their parent's death on this system; kill them by hand")
        return
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        logger.warn(f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}")
    if os.getppid() != parent:  # the parent died before the call: nobody will send the signal
        os._exit(1)


def stream_seed(seed, worker):
    """The ``np.random.SeedSequence`` of a flow seeded with ``seed`` in worker ``worker``.

    Worker 0 and the in-process flow (``worker`` None) use ``seed`` itself, so one worker yields
    what ``num_workers=0`` yields; worker k > 0 uses the entropy ``[seed, k]``.
    """
    return np.random.SeedSequence(seed if not worker else [seed, worker])


class TrainBatches(RNGDataFlow):
    """Shuffled, augmented batches ``[images, labels]`` of a split, one epoch = ``len(split) // batch_size``.

    images: (B, H, W, 3) uint8 BGR, each image passed through ``augmentor`` (an
    ``imgaug.AugmentorList``; empty = unchanged); labels: (B,) int32.

    With ``seed``, the shuffle and the augmentors are seeded in ``reset_state`` and the flow
    repeats exactly.  The stream is a function of ``seed`` and the worker index only
    (:func:`stream_seed`): ``worker`` None finds the index at ``reset_state``
    (:func:`worker_index`; None in the main process); tests pass it to replay one worker.
    """

    def __init__(self, split, augmentor, batch_size, seed=None, worker=None):
        self.split, self.augmentor, self.batch_size = split, augmentor, batch_size
        self.seed, self.worker = seed, worker

    def __len__(self):
        return len(self.split) // self.batch_size

    def reset_state(self):
        super().reset_state()
        self.augmentor.reset_state()
        worker = worker_index()
        if worker is not None:
            die_with_parent()
        if self.seed is not None:
            seq = stream_seed(self.seed, worker if self.worker is None else self.worker)
            self.rng = np.random.RandomState(np.random.MT19937(seq))
            seed_augmentors(self.augmentor, self.rng.randint(2 ** 31))

    def __iter__(self):
        order = self.rng.permutation(len(self.split))
        augment = self.augmentor.augment if self.augmentor.augmentors else None
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            images = self.split.images[idx]  # a copy: augmentors never touch the split
            if augment is not None:
                for i in range(len(images)):
                    images[i] = augment(images[i])
            yield [images, self.split.labels[idx]]


def train_augmentors(split, method, *, flip=False, jitter=False):
    """``augment.augmentors_for(method, ...)`` for training on ``split``.

    The one place that decides Hide-and-Seek's fill: ``split.mean_bgr()``, the BGR mean of the
    training images (Singh & Lee fill hidden pixels with the dataset mean; docs/sources.md).
    """
    return augmentors_for(method, fill=split.mean_bgr(), flip=flip, jitter=jitter)


def build_train_dataflow(split, method, batch_size, *, seed=None, num_workers=0, flip=False, jitter=False):
    """The training DataFlow: shuffled batches augmented by ``method`` (one of ``augment.METHODS``).

    Args:
        split: the training :class:`dataflow.Split` (after any hold-out: ``split_holdout``).
        method: "cam", "hns", "gr", "hns_after_gr" or "gr_after_hns" (paper Table 1).
        batch_size: images per batch; at most ``len(split)``.
        seed: makes the batches a function of the seed (and, with workers, of the worker index).
        num_workers: 0 runs in this process; N > 0 runs N forked copies under tensorpack's
            ``MultiProcessRunnerZMQ`` (non-strict: copy k yields its own seeded stream, see
            :func:`stream_seed`; the consumer gets them interleaved in arrival order, so an
            "epoch" is ``len(split) // batch_size`` batches drawn from all of them).  The copies
            die with the process that forked them (:func:`die_with_parent`).
        flip: append a random horizontal flip (not in the paper; SN-ResNet, docs/sources.md).
        jitter: append SN-ResNet's colour jitter before the flip (``augment.colour_jitter``).

    Hide-and-Seek fills with ``split.mean_bgr()`` (:func:`train_augmentors`).

    Yields ``[images (B, H, W, 3) uint8 BGR, labels (B,) int32]``.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise DataError(f"batch size must be a positive integer, got {batch_size}")
    if batch_size > len(split):
        raise DataError(f"batch size {batch_size} is larger than the {len(split)} training images")
    if num_workers < 0:
        raise DataError(f"num_workers must be >= 0, got {num_workers}")
    augmentor = train_augmentors(split, method, flip=flip, jitter=jitter)
    flow = TrainBatches(split, augmentor, int(batch_size), seed=seed)
    if num_workers > 0:
        # Not MultiProcessMapData(strict=True): it hung in 5 of 12 runs on our machines (an open tensorpack issue).
        flow = MultiProcessRunnerZMQ(flow, num_proc=num_workers)
    return flow


def build_eval_dataflow(split, batch_size):
    """The evaluation DataFlow: every image once, in file order, no augmentation.

    Yields ``[images (b, H, W, 3) uint8 BGR, labels (b,) int32, boxes (b, 4) int32 [x0, y0, x1, y1]
    inclusive]`` with ``b = batch_size``, except the last batch, which holds the remainder.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise DataError(f"batch size must be a positive integer, got {batch_size}")
    return BatchData(TinyImageNet(split, shuffle=False), int(batch_size), remainder=True)
