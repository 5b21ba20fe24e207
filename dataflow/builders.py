"""The training and evaluation DataFlows over an in-memory :class:`dataflow.tinyimagenet.Split`.

Training: each pass over the split shuffles the indices, cuts ``len(split) // batch_size``
batches (the remainder is dropped, so every batch has the same size), and
passes each image of a batch through one tensorpack ``imgaug.AugmentorList``
(``augment.augmentors_for``).  One DataFlow step per batch, not per image,
keeps the per-image overhead of the flow small (``python -m benchmarks.bench_dataflow``).
Every batch is a pure function of the seed and its index in the stream
(:class:`TrainBatches`), also when worker processes make it (:class:`OrderedWorkers`):
see docs/reproducibility.md.

Evaluation: the split in file order, no augmentation, with boxes; the last
batch may be smaller.

As for any tensorpack DataFlow, call ``reset_state()`` once before iterating
(tensorpack's trainers and ``InferenceRunner`` do).
"""

import itertools
import mmap
import multiprocessing
import signal

import numpy as np

import tf_env  # noqa: F401  (before tensorpack: see tf_env.py)
from augment.methods import augmentors_for, seed_augmentors
from tensorpack.dataflow import BatchData, DataFlow

from dataflow import DataError
from dataflow.tinyimagenet import TinyImageNet
from procs import die_with_parent


class TrainBatches(DataFlow):
    """Shuffled, augmented batches ``[images, labels]`` of a split, as one stream indexed by batch number.

    images: (B, H, W, 3) uint8 BGR, each image passed through ``augmentor`` (an
    ``imgaug.AugmentorList``; empty = unchanged); labels: (B,) int32.

    Batch ``g`` of the stream is batch ``b = g % len(self)`` of pass ``p = g // len(self)`` over
    the split, and a pure function of ``(seed, p, b)`` (:meth:`batch`): pass p's order is a
    permutation drawn from ``SeedSequence(seed, spawn_key=(p, 0))``, and before batch b the
    augmentors are reseeded from ``SeedSequence(seed, spawn_key=(p, b + 1))``.  So the stream
    depends neither on where it started nor on which process made a batch.

    Iterating yields from the current position ``next`` (``start`` at first) to the end of the
    current pass; iterating again continues with the next pass (tensorpack's ``RepeatedData``,
    which QueueInput uses, does).  ``seed`` None: a random seed, drawn once here.
    """

    def __init__(self, split, augmentor, batch_size, seed=None, start=0):
        self.split, self.augmentor, self.batch_size = split, augmentor, batch_size
        self.seed = np.random.SeedSequence().entropy if seed is None else int(seed)
        self.start = self.next = int(start)
        self._order = (None, None)  # (pass, its permutation): computed once per pass

    def __len__(self):
        return len(self.split) // self.batch_size

    def reset_state(self):
        self.augmentor.reset_state()  # tensorpack's; the streams are set per batch

    def order(self, p):
        """The permutation of the split's indices for pass ``p``."""
        if self._order[0] != p:
            rng = np.random.RandomState(
                np.random.MT19937(np.random.SeedSequence(self.seed, spawn_key=(p, 0)))
            )
            self._order = (p, rng.permutation(len(self.split)))
        return self._order[1]

    def batch(self, g):
        """Batch ``g`` of the stream (see the class docstring)."""
        p, b = divmod(g, len(self))
        idx = self.order(p)[b * self.batch_size : (b + 1) * self.batch_size]
        images = self.split.images[idx]  # a copy: augmentors never touch the split
        if self.augmentor.augmentors:
            seed_augmentors(self.augmentor, np.random.SeedSequence(self.seed, spawn_key=(p, b + 1)))
            for i in range(len(images)):
                images[i] = self.augmentor.augment(images[i])
        return [images, self.split.labels[idx]]

    def __iter__(self):
        end = (self.next // len(self) + 1) * len(self)
        while self.next < end:
            self.next += 1
            yield self.batch(self.next - 1)


class Ring:
    """``slots`` batches of fixed shapes in anonymous shared memory (``mmap``, inherited by a forked
    worker, freed with the last process that maps it), each slot headed by its batch index; ``free``
    and ``full`` count the slots the worker may write and the consumer may read."""

    def __init__(self, ctx, slots, shapes):
        self.slots, self.shapes = slots, [(tuple(s), np.dtype(d)) for s, d in shapes]
        self.size = 8 + sum(
            int(np.prod(s)) * d.itemsize for s, d in self.shapes
        )  # int64 index + arrays
        self.memory = mmap.mmap(-1, slots * self.size)
        self.free, self.full = ctx.Semaphore(slots), ctx.Semaphore(0)

    def views(self, n):
        """``(index view (1,) int64, [array views])`` of slot ``n % slots``."""
        offset = (n % self.slots) * self.size
        index = np.frombuffer(self.memory, np.int64, 1, offset)
        arrays, offset = [], offset + 8
        for shape, dtype in self.shapes:
            count = int(np.prod(shape))
            arrays.append(np.frombuffer(self.memory, dtype, count, offset).reshape(shape))
            offset += count * dtype.itemsize
        return index, arrays


def _work(flow, first, step, ring):
    """A worker of :class:`OrderedWorkers`: batches ``first, first + step, ...`` of ``flow`` into ``ring``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the trainer, which ends us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the trainer's handler, inherited by fork
    die_with_parent()
    flow.reset_state()
    for n, g in enumerate(itertools.count(first, step)):
        batch = flow.batch(g)
        ring.free.acquire()
        index, views = ring.views(n)
        for view, array in zip(views, batch):
            # the shapes are fixed: every batch has batch_size images (TrainBatches)
            view[...] = array
        index[0] = g
        ring.full.release()


class OrderedWorkers(DataFlow):
    """The stream of a :class:`TrainBatches`, made by ``num_workers`` forked processes, in its own order.

    Worker k makes batches ``start + k, start + k + N, ...`` (N workers) into a :class:`Ring` of its own
    in shared memory, at most ``AHEAD`` batches ahead; the consumer copies batch g out of worker
    ``(g - start) % N``'s ring (one memory copy, no pickling through a pipe: issue 25). So the output
    is the flow's, bit for bit, whatever N and whichever worker is faster (unlike tensorpack's
    ``MultiProcessRunnerZMQ``, which yields in arrival order).  The workers are forked once, at
    ``reset_state`` (from the main thread: :func:`die_with_parent`), and die with the process that
    forked them; one that dies stops the consumer with an error naming it.
    """

    AHEAD = 4

    def __init__(self, flow, num_workers):
        self.flow, self.num_workers = flow, num_workers
        self.start = self.next = flow.next
        self.procs, self.rings = [], []

    def __len__(self):
        return len(self.flow)

    def reset_state(self):
        ctx = multiprocessing.get_context("fork")  # the split is shared, not copied
        split, size = self.flow.split, self.flow.batch_size
        shapes = [
            ((size,) + split.images.shape[1:], split.images.dtype),
            ((size,), split.labels.dtype),
        ]
        self.rings = [Ring(ctx, self.AHEAD, shapes) for _ in range(self.num_workers)]
        self.procs = [
            ctx.Process(
                target=_work,
                args=(self.flow, self.start + k, self.num_workers, ring),
                daemon=True,
                name=f"TrainBatches-worker-{k}",
            )
            for k, ring in enumerate(self.rings)
        ]
        for proc in self.procs:
            proc.start()

    def _get(self, g):
        k, n = (g - self.start) % self.num_workers, (g - self.start) // self.num_workers
        ring = self.rings[k]
        while not ring.full.acquire(timeout=1):
            if not self.procs[k].is_alive():
                raise RuntimeError(
                    f"data worker {k} (pid {self.procs[k].pid}) exited with code "
                    f"{self.procs[k].exitcode}; its error is printed above"
                ) from None
        index, views = ring.views(n)
        batch = [view.copy() for view in views]  # the slot is rewritten once released
        assert index[0] == g, (int(index[0]), g)
        ring.free.release()
        return batch

    def __iter__(self):
        end = (self.next // len(self) + 1) * len(self)
        while self.next < end:
            batch = self._get(self.next)
            self.next += 1
            yield batch

    def __del__(self):
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.join(timeout=5)


def train_augmentors(split, method, *, flip=False, jitter=False):
    """``augment.augmentors_for(method, ...)`` for training on ``split``.

    The one place that decides Hide-and-Seek's fill: ``split.mean_bgr()``, the BGR mean of the
    training images (Singh & Lee fill hidden pixels with the dataset mean; docs/sources.md).
    """
    return augmentors_for(method, fill=split.mean_bgr(), flip=flip, jitter=jitter)


def build_train_dataflow(
    split, method, batch_size, *, seed=None, start=0, num_workers=0, flip=False, jitter=False
):
    """The training DataFlow: shuffled batches augmented by ``method`` (one of ``augment.registry.names()``).

    Args:
        split: the training :class:`dataflow.tinyimagenet.Split` (after any hold-out: ``split_holdout``).
        method: "cam", "hns", "gr", "hns_after_gr" or "gr_after_hns" (paper Table 1), or another
            method declared in augment/ (docs/extending.md).
        batch_size: images per batch; at most ``len(split)``.
        seed: the batches are a function of the seed, the batch's index and the settings only
            (:class:`TrainBatches`); None: a random seed.
        start: the index of the first batch in the stream (a resumed run: the batches trained before).
        num_workers: 0 runs in this process; N > 0 makes the same batches in N forked processes,
            merged in the stream's order (:class:`OrderedWorkers`), which die with the process
            that forked them (:func:`die_with_parent`).
        flip: append a random horizontal flip (not in the paper; SN-ResNet, docs/sources.md).
        jitter: append SN-ResNet's colour jitter before the flip (``augment.methods.colour_jitter``).

    Hide-and-Seek fills with ``split.mean_bgr()`` (:func:`train_augmentors`).

    Yields ``[images (B, H, W, 3) uint8 BGR, labels (B,) int32]``, ``len(split) // batch_size``
    batches per iteration (one pass), then the next pass when iterated again.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise DataError(f"batch size must be a positive integer, got {batch_size}")
    if batch_size > len(split):
        raise DataError(f"batch size {batch_size} is larger than the {len(split)} training images")
    if num_workers < 0:
        raise DataError(f"num_workers must be >= 0, got {num_workers}")
    augmentor = train_augmentors(split, method, flip=flip, jitter=jitter)
    flow = TrainBatches(split, augmentor, int(batch_size), seed=seed, start=start)
    return OrderedWorkers(flow, num_workers) if num_workers > 0 else flow


def build_eval_dataflow(split, batch_size):
    """The evaluation DataFlow: every image once, in file order, no augmentation.

    Yields ``[images (b, H, W, 3) uint8 BGR, labels (b,) int32, boxes (b, 4) int32 [x0, y0, x1, y1]
    inclusive]`` with ``b = batch_size``, except the last batch, which holds the remainder.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise DataError(f"batch size must be a positive integer, got {batch_size}")
    return BatchData(TinyImageNet(split, shuffle=False), int(batch_size), remainder=True)
