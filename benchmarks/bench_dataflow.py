"""Throughput of the training DataFlow per augmentation method, with 0 and 2 workers; the cache checksum's cost.

Examples::

    python -m benchmarks.bench_dataflow                       # a generated 64x64 set in a temp dir
    python -m benchmarks.bench_dataflow --data tiny-imagenet-200 --batch 256 --batches 100
    python -m benchmarks.bench_dataflow --methods gr --workers 0 2 4 --hash-images 0
    python -m benchmarks.bench_dataflow --methods gr --workers 8 --hash-images 0   # the consumer's ceiling

Loads the training split into memory (decoding it, or from the cache), then
for each method drives ``build_train_dataflow`` with tensorpack's
``TestDataSpeed`` for ``--batches`` batches (after one warm-up batch) and
prints images per second of wall time and per CPU-second (this process plus
its data workers, read from /proc: the per-core figure), and with workers the wall rate per worker
process (with more workers than cores they share the cores); both targets are in
docs/measurements.md, "Speed".  With workers, two more rows: ``cam`` (no augmentation, so the
workers are nearly free) measures the ceiling of the one consumer that receives every batch (issue 25),
and the last method with ``--recipe sn-resnet``'s jitter and flip, the costliest stream.  The
workers yield the in-process stream in its order (dataflow.builders.OrderedWorkers).  "+sn" rows add
SN-ResNet's colour jitter and flip.  The evaluation flow, the JPEG decoding of the split and the checksum
that verifies a cached split at every load (``dataflow.cache.checksum``, on
``--hash-images`` random 64x64x3 images) are measured too.  Timings vary with
machine load; compare rows of one run.
"""

import argparse
import os
import tempfile
import time

import numpy as np
from tabulate import tabulate

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
from augment.registry import names
from dataflow.builders import build_eval_dataflow, build_train_dataflow
from dataflow.tinyimagenet import load_split
from procs import child_processes
from dataflow.cache import checksum
from dataflow.synthetic import generate
from dataflow.tinyimagenet import decode_images
from errors import UserError, run_main
from tensorpack.dataflow import RepeatedData, TestDataSpeed

HASH_SHAPE = (64, 64, 3)  # Tiny ImageNet's image size


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument(
        "--data", help="Tiny ImageNet root (default: generate 10 classes x 500 images of 64x64)"
    )
    p.add_argument("--batch", type=int, default=256, help="batch size (default 256, paper Table 1)")
    p.add_argument("--batches", type=int, default=40, help="batches timed per row (default 40)")
    p.add_argument("--methods", nargs="+", default=list(names()), choices=names())
    p.add_argument(
        "--workers",
        nargs="+",
        type=int,
        default=[0, 2],
        help="worker counts to time (default 0 2; 2 workers only for the last method)",
    )
    p.add_argument(
        "--hash-images",
        type=int,
        default=100000,
        help="images in the checksum timing (default 100000, the train split; 0 skips it)",
    )
    return p.parse_args(argv)


def throughput(flow, batches, batch_size):
    """(images, wall s, CPU s of this process and its workers) for ``batches`` batches of ``flow``.

    tensorpack's ``TestDataSpeed`` drives the flow (repeated over epochs) and shows its progress bar;
    one batch before it starts the workers and warms up.
    """
    flow = RepeatedData(flow, -1)
    test = TestDataSpeed(flow, size=batches)
    test.reset_state()
    warm = iter(flow)
    next(warm)
    warm.close()
    wall0, cpu0, workers0 = (
        time.perf_counter(),
        time.process_time(),
        sum(child_processes().values()),
    )
    test.start()
    wall, cpu = (
        time.perf_counter() - wall0,
        time.process_time() - cpu0 + sum(child_processes().values()) - workers0,
    )
    return batches * batch_size, wall, cpu


def _row(name, n, wall, cpu, workers=0):
    return [name, n / wall, n / cpu, 1e6 * cpu / n, n / wall / workers if workers else None]


def run(root, args):
    split = load_split(root, "train", progress=False)
    print(
        f"{root}: {len(split)} training images of {split.image_shape[0]}x{split.image_shape[1]}, "
        f"batch {args.batch}, {os.cpu_count()} cores on the machine"
    )
    rows = []
    for method in args.methods:
        for sn in (False, True):
            flow = build_train_dataflow(split, method, args.batch, seed=0, flip=sn, jitter=sn)
            rows.append(
                _row(
                    f"train {method}{' +sn' if sn else ''}",
                    *throughput(flow, args.batches, args.batch),
                )
            )
    for workers in (w for w in args.workers if w > 0):
        method = args.methods[-1]
        for name, m, sn in (
            (method, method, False),
            (f"{method} +sn", method, True),
            ("cam, the consumer's ceiling", "cam", False),
        ):
            flow = build_train_dataflow(
                split, m, args.batch, seed=0, num_workers=workers, flip=sn, jitter=sn
            )
            rows.append(
                _row(
                    f"train {name}, {workers} workers",
                    *throughput(flow, args.batches, args.batch),
                    workers,
                )
            )
            del flow  # stops the workers
    rows.append(
        _row(
            "eval (no augmentation)",
            *throughput(build_eval_dataflow(split, args.batch), args.batches, args.batch),
        )
    )

    paths = [os.path.join(root, f) for f in split.files[:5000]]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    decode_images(paths, progress=False)
    rows.append(
        _row(
            f"JPEG decoding ({len(paths)} files, thread pool)",
            len(paths),
            time.perf_counter() - wall0,
            time.process_time() - cpu0,
        )
    )
    if args.hash_images:
        images = np.random.default_rng(0).integers(
            0, 256, (args.hash_images,) + HASH_SHAPE, np.uint8
        )
        wall0, cpu0 = time.perf_counter(), time.process_time()
        checksum(images)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        rows.append(
            _row(
                f"cache checksum ({args.hash_images}x{'x'.join(map(str, HASH_SHAPE))} uint8, "
                f"{images.nbytes / 2**30:.2f} GiB: {wall:.2f} s, {cpu:.2f} CPU-s)",
                len(images),
                wall,
                cpu,
            )
        )
    print(
        tabulate(
            rows,
            headers=["flow", "img/s", "img/CPU-s", "CPU us/img", "img/s per worker"],
            floatfmt=(None, ".0f", ".0f", ".2f", ".0f"),
        )
    )


def main(argv=None):
    args = parse_args(argv)
    if args.batch < 1 or args.batches < 1 or args.hash_images < 0 or min(args.workers) < 0:
        raise UserError("--batch and --batches must be positive, --hash-images and --workers >= 0")
    if args.data:
        return run(args.data, args)
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(
            os.path.join(tmp, "data"),
            classes=10,
            train_per_class=500,
            val_per_class=1,
            seed=0,
            height=64,
            width=64,
        )  # Tiny ImageNet's image size
        return run(root, args)


if __name__ == "__main__":
    run_main(main)
