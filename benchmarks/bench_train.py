"""Training speed (img/s) of the CAM ResNet: through train.py and through the bare graph.

Examples::

    python -m benchmarks.bench_train                                  # depth 18 and 34, batch 32/128/256
    python -m benchmarks.bench_train --depth 18 --batch 32 --steps 10  # one short cell
    python -m benchmarks.bench_train --depth 18 --batch 32 --amp       # bf16 on CPU / fp16 on GPU
    python -m benchmarks.bench_train --depth 18 --batch 32 --determinism both   # the cost of op determinism
    python -m benchmarks.bench_train --depth 18 --batch 256 --modes train --record   # into results/rates.json

For each (depth, batch) two fresh processes measure the same network at
64x64 with 200 classes (the paper's Tiny ImageNet shape) on the current device:

* ``graph``: the bare training graph (forward, backward, Nesterov update,
  BatchNorm updates) fed from a constant in-memory batch: the lower bound;
* ``train``: ``training.trainer.run`` itself (QueueInput, GR augmentation, tensorpack's
  callbacks, summaries) on a generated dataset held in memory, timed per step
  by a callback, within one epoch (the per-epoch checkpoint is not timed).

Both use train.py's session config (intra-op threads unthrottled) and, as train.py by
default, TensorFlow's op determinism (``--determinism off``: as ``--nondeterministic``;
``both``: each cell measured both ways, alternating). The first
``--warmup`` steps are not timed; with ``--repeat N`` the modes alternate N
times and the fastest of each is kept (the least disturbed by other load). Forward FLOPs per image are counted from
the graph's convolutions and matmul (2 x multiply-adds). On a CPU the full sweep takes
long (docs/measurements.md, "Speed", has this project's figures); timings vary with machine load.
"""

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from tabulate import tabulate

from errors import UserError, run_main

IMAGE_SIZE = 64  # Tiny ImageNet images are 64x64 (README "Tiny ImageNet")
NUM_CLASSES = 200  # Tiny ImageNet: 200 classes


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--depth", type=int, nargs="+", default=[18, 34], choices=[18, 34])
    p.add_argument("--batch", type=int, nargs="+", default=[32, 128, 256])
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--amp", action="store_true", help="train.py's --amp (bf16 on CPU, fp16 on GPU)")
    p.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure each mode this many times, alternating, and keep the fastest",
    )
    p.add_argument("--modes", nargs="+", default=["graph", "train"], choices=["graph", "train"])
    p.add_argument(
        "--determinism",
        choices=["on", "off", "both"],
        default="on",
        help="TensorFlow's op determinism (default on, as train.py; off = --nondeterministic)",
    )
    p.add_argument("--width-mult", type=float, default=1.0, help="1.0 = the paper's widths")
    p.add_argument(
        "--record",
        action="store_true",
        help="store the train.py rate (else the graph's) of each cell in results/rates.json, which "
        "the table scripts read (runrecord.cost; the paper's widths and op determinism only)",
    )
    p.add_argument("--worker", choices=["graph", "train"], help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def train_argv(args, depth, batch, data, logdir):
    """The train.py command line that both workers mirror."""
    argv = [
        "--data",
        data,
        "--depth",
        str(depth),
        "--aug",
        "gr",
        "--batch",
        str(batch),
        "--epochs",
        "1",
    ]
    argv += [
        "--steps-per-epoch",
        str(args.warmup + args.steps),
        "--width-mult",
        str(args.width_mult),
    ]
    argv += ["--val-every", "1", "--logdir", logdir]
    return (
        argv
        + (["--amp"] if args.amp else [])
        + (["--nondeterministic"] if args.determinism == "off" else [])
    )


def forward_flops(graph):
    """2 x multiply-adds of the Conv2D and MatMul ops outside the gradients, per image
    (output H x W x kernel volume for a convolution, the weight size for the FC)."""
    macs = 0
    for op in graph.get_operations():
        if op.name.startswith(("gradients", "tower-pred")) or op.type not in ("Conv2D", "MatMul"):
            continue
        out = op.outputs[0].shape.as_list()
        kernel = op.inputs[1].shape.as_list()
        if op.type == "Conv2D":
            macs += int(np.prod(out[1:3])) * int(np.prod(kernel))
        else:
            macs += int(np.prod(kernel))
    return 2 * macs


def worker_graph(args):
    """Time the bare training graph on a constant batch; return (img/s, forward FLOPs per image)."""
    import tensorflow as tf
    from models.resnet import CAMModel
    from runrecord.command import parse_args
    from runrecord import ModelSettings, TrainSettings
    from tensorpack.tfutils.tower import TowerContext
    from training import session

    tf1 = tf.compat.v1
    tf1.disable_eager_execution()
    depth, batch = args.depth[0], args.batch[0]
    targs = parse_args(train_argv(args, depth, batch, args.data, "unused"))
    session.use_op_determinism(not targs.nondeterministic)  # before the graph (training.session)
    env = {"amp": False}
    if (
        args.amp
    ):  # the same resolution as runrecord.command.amp_mode, without its data/logdir checks
        from training import machine

        env["amp"] = "fp16" if machine.visible_gpus() else "bf16"
    model = CAMModel(
        ModelSettings(
            depth,
            NUM_CLASSES,
            [IMAGE_SIZE, IMAGE_SIZE],
            width_mult=args.width_mult,
            mean_bgr=[104.0, 114.0, 122.0],
            std_bgr=[58.0, 57.0, 57.0],
        ),
        TrainSettings(aug=targs.aug, batch=batch, amp=env["amp"]),
    )
    rng = np.random.RandomState(0)
    with tf.Graph().as_default() as g:
        tf1.set_random_seed(0)  # op determinism (SessionCreator) refuses unseeded random ops
        image = tf.constant(
            rng.randint(0, 256, (batch, IMAGE_SIZE, IMAGE_SIZE, 3)).astype(np.uint8)
        )
        label = tf.constant(rng.randint(0, NUM_CLASSES, batch).astype(np.int32))
        with TowerContext("", is_training=True):
            cost = model.build_graph(image, label)
        with tf.control_dependencies(tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)):  # BN statistics
            train_op = model.get_optimizer().minimize(
                cost, global_step=tf1.train.get_or_create_global_step()
            )
        flops = forward_flops(g)
        creator = session.SessionCreator(
            session.session_config(threads=targs.threads, amp=env["amp"]),
            deterministic=not targs.nondeterministic,
        )
        sess = creator.create_session()
        for _ in range(args.warmup):
            sess.run(train_op)
        start = time.perf_counter()
        for _ in range(args.steps):
            sess.run(train_op)
        seconds = time.perf_counter() - start
    return {"img_s": batch * args.steps / seconds, "flops": flops}


def worker_train(args):
    """Time training.trainer.run's steps after the warm-up; return img/s."""
    from tensorpack.callbacks import Callback

    from evaluation.watch import LocalizationInferencer
    from runrecord.command import parse_args
    from training import machine, trainer

    class StepTimer(Callback):
        _chief_only = False

        def __init__(self):
            self.times = []

        def _before_train(self):
            self._last = time.perf_counter()

        def _trigger_step(self):
            now = time.perf_counter()
            self.times.append(now - self._last)
            self._last = now

    depth, batch = args.depth[0], args.batch[0]
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as logdir:
        targs = parse_args(train_argv(args, depth, batch, args.data, logdir))
        trainer.run(
            targs, machine.facts(), extra_callbacks=[timer], localization=LocalizationInferencer
        )
    timed = timer.times[args.warmup :]
    return {"img_s": batch * len(timed) / sum(timed)}


def measure(args, mode, depth, batch, data, determinism):
    """Run one worker in a fresh process; return its JSON result."""
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [sys.executable, "-m", "benchmarks.bench_train", "--worker", mode, "--data", data]
        cmd += ["--depth", str(depth), "--batch", str(batch), "--steps", str(args.steps)]
        cmd += ["--warmup", str(args.warmup), "--width-mult", str(args.width_mult)]
        cmd += ["--out", out.name, "--determinism", determinism]
        if args.amp:
            cmd.append("--amp")
        proc = subprocess.run(
            cmd,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            sys.exit(f"{mode} worker failed (depth {depth}, batch {batch}):\n{proc.stderr[-3000:]}")
        with open(out.name) as f:
            return json.load(f)


def row(args, depth, batch, det, graph, trainpath):
    overhead = (
        f"{100 * (graph['img_s'] / trainpath['img_s'] - 1):+.1f}%" if graph and trainpath else "-"
    )
    return [
        depth,
        batch,
        "on" if args.amp else "off",
        det,
        f"{graph['img_s']:.1f}" if graph else "-",
        f"{trainpath['img_s']:.1f}" if trainpath else "-",
        overhead,
        f"{graph['flops'] / 1e9:.2f}" if graph else "-",
    ]


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        result = worker_graph(args) if args.worker == "graph" else worker_train(args)
        with open(args.out, "w") as f:
            json.dump(result, f)
        return 0
    from dataflow.synthetic import generate
    from runrecord import cost
    from training.machine import visible_gpus

    gpus = visible_gpus()
    if args.record and (args.width_mult != 1 or args.determinism != "on"):
        raise UserError(
            "--record: only the paper's network (--width-mult 1) with op determinism on, "
            "as the table scripts run it"
        )
    # nvidia-smi's first listed GPU, or the first of CUDA_VISIBLE_DEVICES
    first = [os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]] if gpus else []
    dev = cost.device_name(first)
    device = f"{gpus} x {dev}" if gpus else dev
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        per_class = -(-max(args.batch) // NUM_CLASSES)  # at least one batch of training images
        data = generate(
            os.path.join(tmp, "data"),
            classes=NUM_CLASSES,
            train_per_class=per_class,
            val_per_class=1,
            height=IMAGE_SIZE,
            width=IMAGE_SIZE,
        )
        settings = ["on", "off"] if args.determinism == "both" else [args.determinism]
        for depth in args.depth:
            for batch in args.batch:
                res = {}
                for _ in range(
                    args.repeat
                ):  # alternate the modes; the fastest run is the least disturbed
                    for mode in args.modes:
                        for det in settings:
                            got = measure(args, mode, depth, batch, data, det)
                            if (mode, det) not in res or got["img_s"] > res[mode, det]["img_s"]:
                                res[mode, det] = got
                best = res.get(("train", "on")) or res.get(("graph", "on"))
                if args.record and best:
                    prec = cost.precision(
                        ("fp16" if gpus else "bf16") if args.amp else False, gpus, dev
                    )
                    cost.record_rate(
                        dev,
                        depth,
                        batch,
                        prec,
                        best["img_s"],
                        "python -m benchmarks.bench_train " + " ".join(argv or sys.argv[1:]),
                    )
                for det in settings:
                    rows.append(
                        row(
                            args,
                            depth,
                            batch,
                            det,
                            res.get(("graph", det), {}),
                            res.get(("train", det), {}),
                        )
                    )
                    print(tabulate(rows[-1:], tablefmt="plain"), flush=True)
    print(
        f"\nTraining speed, {IMAGE_SIZE}x{IMAGE_SIZE}, {NUM_CLASSES} classes, width x{args.width_mult}, "
        f"{device}; {args.steps} timed steps after {args.warmup}, best of {args.repeat}"
    )
    print(
        tabulate(
            rows,
            headers=[
                "depth",
                "batch",
                "amp",
                "determinism",
                "graph img/s",
                "train.py img/s",
                "train.py step time vs graph",
                "fwd GFLOP/img",
            ],
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
