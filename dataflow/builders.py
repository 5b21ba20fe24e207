"""The training and evaluation DataFlows over an in-memory :class:`dataflow.Split`.

Training: each epoch shuffles the indices, cuts ``len(split) // batch_size``
batches (the remainder is dropped, so every batch has the same size), and
augments the images of a batch in one loop with ``augment.augmentors_for``.
One DataFlow step per batch, not per image, keeps a single process above
10,000 img/s at 64x64 (``python -m benchmarks.bench_dataflow``).

Evaluation: the split in file order, no augmentation, with boxes; the last
batch may be smaller.

As for any tensorpack DataFlow, call ``reset_state()`` once before iterating
(tensorpack's trainers and ``InferenceRunner`` do).
"""
import os

import numpy as np

import tf_env  # noqa: F401  (before tensorpack, INTERFACES.md)
from augment import augmentors_for, seed_augmentors
from tensorpack.dataflow import BatchData, MultiProcessRunnerZMQ, RNGDataFlow

from dataflow import DataError
from dataflow.tinyimagenet import TinyImageNet


class TrainBatches(RNGDataFlow):
    """Shuffled, augmented batches ``[images, labels]`` of a split, one epoch = ``len(split) // batch_size``.

    images: (B, H, W, 3) uint8 BGR, each image passed through ``augmentors`` in list order;
    labels: (B,) int32.

    With ``seed``, the shuffle and the augmentors are seeded in ``reset_state``
    and the flow repeats exactly; in a forked worker the process id is mixed
    into the seed, so that workers do not all yield the same batches.
    """

    def __init__(self, split, augmentors, batch_size, seed=None):
        self.split, self.augmentors, self.batch_size, self.seed = split, list(augmentors), batch_size, seed
        self._parent_pid = os.getpid()

    def __len__(self):
        return len(self.split) // self.batch_size

    def reset_state(self):
        super().reset_state()
        for aug in self.augmentors:
            aug.reset_state()
        if self.seed is not None:
            seed = self.seed if os.getpid() == self._parent_pid else [self.seed, os.getpid()]
            self.rng = np.random.RandomState(np.random.MT19937(np.random.SeedSequence(seed)))
            seed_augmentors(self.augmentors, self.rng.randint(2 ** 31))

    def __iter__(self):
        order = self.rng.permutation(len(self.split))
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            images = self.split.images[idx]  # a copy: augmentors never touch the split
            if self.augmentors:
                for i in range(len(images)):
                    img = images[i]
                    for aug in self.augmentors:
                        img = aug.augment(img)
                    images[i] = img
            yield [images, self.split.labels[idx]]


def build_train_dataflow(split, method, batch_size, *, fill=None, seed=None, num_workers=0, flip=False):
    """The training DataFlow: shuffled batches augmented by ``method`` (one of ``augment.METHODS``).

    Args:
        split: the training :class:`dataflow.Split`.
        method: "cam", "hns", "gr", "hns_after_gr" or "gr_after_hns" (paper Table 1).
        batch_size: images per batch; at most ``len(split)``.
        fill: Hide-and-Seek's fill value, BGR; default ``split.mean_bgr()`` (facts.md: the dataset mean).
        seed: makes the batches reproducible (with ``num_workers=0``).
        num_workers: 0 runs in this process; N > 0 runs N forked copies under tensorpack's
            ``MultiProcessRunnerZMQ`` (non-strict: the copies are independent, so an "epoch"
            is ``len(split) // batch_size`` batches drawn from all of them).
        flip: add a random horizontal flip (not in the paper; the authors' code had one, facts.md).

    Yields ``[images (B, H, W, 3) uint8 BGR, labels (B,) int32]``.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise DataError(f"batch size must be a positive integer, got {batch_size}")
    if batch_size > len(split):
        raise DataError(f"batch size {batch_size} is larger than the {len(split)} training images")
    if num_workers < 0:
        raise DataError(f"num_workers must be >= 0, got {num_workers}")
    fill = split.mean_bgr() if fill is None else fill
    flow = TrainBatches(split, augmentors_for(method, fill=fill, flip=flip), int(batch_size), seed=seed)
    if num_workers > 0:
        # Not MultiProcessMapData(strict=True): it hangs in 5 of 12 runs here (tensorpack-notes.md).
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
