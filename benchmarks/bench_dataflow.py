"""Throughput of the training DataFlow (one process) for each augmentation method.

Examples::

    python -m benchmarks.bench_dataflow                       # a generated 64x64 set in a temp dir
    python -m benchmarks.bench_dataflow --data tiny-imagenet-200 --batch 256 --seconds 5

Loads the training split into memory (decoding it, or from the cache), then
for each method iterates ``build_train_dataflow`` for about ``--seconds`` and
prints images per second of wall time and per CPU-second of this process
(the per-core figure; the target is 10,000 img/s for GR and HnS at 64x64).
The evaluation flow and the JPEG decoding of the split are measured too.
Timings vary with machine load.
"""
import argparse
import os
import tempfile
import time

from tabulate import tabulate

import tf_env  # noqa: F401
from augment import METHODS
from dataflow import build_eval_dataflow, build_train_dataflow, load_split
from dataflow.synthetic import generate
from dataflow.tinyimagenet import decode_images
from errors import UserError, run_main


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", help="Tiny ImageNet root (default: generate 10 classes x 500 images of 64x64)")
    p.add_argument("--batch", type=int, default=256, help="batch size (default 256, paper Table 1)")
    p.add_argument("--seconds", type=float, default=3.0, help="time per method (default 3)")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    return p.parse_args(argv)


def throughput(flow, seconds):
    """(images, wall s, CPU s of this process) for iterating ``flow`` for about ``seconds``, after one warm-up batch."""
    flow.reset_state()
    it = iter(flow)
    next(it)
    images, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        try:
            batch = next(it)
        except StopIteration:  # a small split: start another epoch
            it = iter(flow)
            continue
        images += len(batch[0])
    return images, time.perf_counter() - wall0, time.process_time() - cpu0


def run(root, args):
    split = load_split(root, "train", progress=False)
    print(f"{root}: {len(split)} training images of {split.image_shape[0]}x{split.image_shape[1]}, "
          f"batch {args.batch}, one process, {os.cpu_count()} cores on the machine")
    rows = []
    for method in args.methods:
        n, wall, cpu = throughput(build_train_dataflow(split, method, args.batch, seed=0), args.seconds)
        rows.append([f"train {method}", n / wall, n / cpu, 1e6 * cpu / n])
    n, wall, cpu = throughput(build_eval_dataflow(split, args.batch), args.seconds)
    rows.append(["eval (no augmentation)", n / wall, n / cpu, 1e6 * cpu / n])

    paths = [os.path.join(root, f) for f in split.files[:5000]]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    decode_images(paths, progress=False)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    rows.append([f"JPEG decoding ({len(paths)} files, thread pool)", len(paths) / wall, len(paths) / cpu,
                 1e6 * cpu / len(paths)])
    print(tabulate(rows, headers=["flow", "img/s", "img/CPU-s", "CPU us/img"], floatfmt=(None, ".0f", ".0f", ".1f")))


def main(argv=None):
    args = parse_args(argv)
    if args.batch < 1 or args.seconds <= 0:
        raise UserError("--batch and --seconds must be positive")
    if args.data:
        return run(args.data, args)
    with tempfile.TemporaryDirectory() as tmp:
        root = generate(os.path.join(tmp, "data"), classes=10, train_per_class=500, val_per_class=1,
                        seed=0, height=64, width=64)  # Tiny ImageNet's image size (facts.md)
        return run(root, args)


if __name__ == "__main__":
    run_main(main)
