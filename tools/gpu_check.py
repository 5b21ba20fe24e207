"""Self-check of every trainer path on this host (meant for ten minutes; not yet run on a GPU): run it first.

    make gpu-check                                  # same as: python -m tools.gpu_check
    python -m tools.gpu_check --keep /tmp/gpu-check # keep the generated data and logdirs

First the host (tools/gpu_host.py): TensorFlow's CUDA build, each GPU's compute capability and
driver, and a FAIL where an NVIDIA device exists but TensorFlow sees no GPU, or where the driver
cannot run TensorFlow's kernels on the GPU (then it stops there). Then it trains train.py for a
few steps on a generated 64x64 dataset (dataflow.synthetic) in a temporary folder and prints one
line per path: PASS/FAIL/SKIP, images per second, detail. Exits 1 if any line is a FAIL.

With GPUs: 1 GPU; all visible GPUs replicated (a whole minibatch the GPU count divides; 8 GPUs
take tensorpack's hierarchical all-reduce), with per-tower batch, per-tower BatchNorm and every
tower's variables identical checked via tools/tower_probe.py; 1 GPU, fp16 ``--amp`` and ``--xla``
each run twice, and whether the two ended with bit-identical variables (docs/reproducibility.md);
the speed of op determinism against ``--nondeterministic`` (plain and ``--xla``); NCHW against NHWC;
ResNet-18 and -34 at batch 32 and 256, plain and ``--amp`` (the rates go to runrecord.cost, which
prints the GPU-hours of Tables 1 and 2 at the paper's schedule); whether the training DataFlow of
the sn-resnet recipe (jitter, flip) with the default workers feeds the fastest measured rate;
evaluate.py on the 1-GPU and the NCHW checkpoints. Without a GPU it says so, runs the CPU part (two
replicated towers on the CPU, twice, with the same checks and ratio; the DataFlow rate;
evaluate.py) and prints SKIP for the GPU lines.
"""

import tf_env  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS)

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

import runrecord
from dataflow.builders import build_train_dataflow
from dataflow.tinyimagenet import load_split
from dataflow.synthetic import generate
from runrecord import cost, resolve_recipe
from tools import gpu_host
from tools.tower_probe import PROBE
from procs import available_cores
from runrecord.machine import nvidia_smi
from training import machine

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = dict(classes=10, train_per_class=60, val_per_class=10, seed=0, height=64, width=64)
# the paper's net and whole batch; epoch 2 is timed
GPU_RUN = "--depth 18 --aug gr --batch 256 --epochs 2 --steps-per-epoch 15 --val-every 2".split()
PAPER_BATCHES = (32, 256)  # paper Table 2's smallest and largest batch
PAPER_DEPTHS = (18, 34)  # paper sec. 3
# narrow: the code path, not the speed
CPU_RUN = "--depth 18 --aug gr --batch 16 --width-mult 0.125 --epochs 2 --steps-per-epoch 4".split()
CPU_RUN += ["--val-every", "2"]
FEED_SECONDS = 10


class Report:
    def __init__(self):
        self.failed = []

    def line(self, status, name, rate=None, detail=""):
        figure = f"{rate:9.1f} img/s" if rate is not None else " " * 15
        print(f"{status:4}  {name:<30} {figure}  {detail}", flush=True)
        if status == "FAIL":
            self.failed.append(name)


def run(args, log, cpu_only=False):
    """Run ``python args...`` in the repo; (ok, last line of output). Output goes to ``log``."""
    # towers would take the GPUs
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="") if cpu_only else None
    with open(log, "w") as f:
        proc = subprocess.run(
            [sys.executable, *args], cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env
        )
    with open(log) as f:
        tail = [ln.strip() for ln in f.read().splitlines() if ln.strip()][-1:]
    return proc.returncode == 0, (tail[0][:150] if tail else "")


def train(report, name, work, data, flags, probe_checks=None, cpu_only=False):
    """tools/tower_probe.py (train.py's path) with ``flags``; report one line;
    return (logdir, img/s), or (None, None) if it failed."""
    logdir = os.path.join(work, name.replace(" ", "-"))
    shutil.rmtree(logdir, ignore_errors=True)  # a fresh run, also with --keep
    ok, tail = run(
        ["-m", "tools.tower_probe", "--data", data, "--logdir", logdir, *flags],
        logdir + ".log",
        cpu_only,
    )
    if not ok:
        report.line("FAIL", name, detail=f"{tail} (log: {logdir}.log)")
        return None, None
    with open(os.path.join(logdir, PROBE)) as f:
        probe = json.load(f)
    batch = sum(probe["steps"][0]["images"])
    rate = batch * probe["steps_per_epoch"] / probe["epoch_seconds"][-1]
    problems = tower_problems(probe, batch) if probe_checks else []
    report.line(
        "FAIL" if problems else "PASS", name, rate, "; ".join(problems) or probe_checks or ""
    )
    return logdir, rate


def tower_problems(probe, batch):
    """What the probe found wrong with the towers (tools/tower_probe.py), as short sentences."""
    n, out = probe["towers"], []
    if any(s["images"] != [batch // n] * n for s in probe["steps"]):
        out.append(
            f"towers got {[s['images'] for s in probe['steps']]} images, expected {batch // n} each"
        )
    if not all(s["distinct_images"] for s in probe["steps"]):
        out.append("towers got the same images")
    if max(max(s["bn_vs_own"]) for s in probe["steps"]) > 1e-3:
        out.append("BatchNorm did not normalise with each tower's own statistics")
    for when in ("mid_epoch_max_diff", "final_max_diff"):
        diffs = probe.get(when, {})
        if n > 1 and (not diffs or max(diffs.values()) > 0):
            out.append(f"{when}: tower copies differ (max {max(diffs.values(), default='none')})")
    return out


def identical(report, name, first, second):
    """PASS if the newest checkpoints of logdirs ``first`` and ``second`` hold bit-identical variables."""
    if first is None or second is None:
        report.line("FAIL", name, detail="a run failed (see its line)")
        return
    prefixes = [runrecord.latest_checkpoint(logdir)[0] for logdir in (first, second)]
    names = [n for n, _ in tf.train.list_variables(prefixes[0])]
    differ = [
        n for n in names if not np.array_equal(*(tf.train.load_variable(p, n) for p in prefixes))
    ]
    detail = f"{len(differ)} of {len(names)} variables differ" + (
        f" (first: {differ[0]})" if differ else ""
    )
    report.line("FAIL" if differ else "PASS", name, detail=detail)


def determinism_cost(report, name, work, data, flags, rate, cpu_only=False):
    """A run of ``flags`` with --nondeterministic; print the speed ratio of op determinism to it."""
    _, fast = train(
        report,
        name + " --nondeterministic",
        work,
        data,
        flags + ["--nondeterministic"],
        cpu_only=cpu_only,
    )
    if rate and fast:
        print(
            f"      deterministic / --nondeterministic speed ({name}): {rate / fast:.2f}",
            flush=True,
        )


def evaluate(report, name, work, data, logdir):
    """evaluate.py on ``logdir``; PASS if it runs and ``cams.mean() + bias == logit``."""
    if logdir is None:
        report.line("FAIL", name, detail="no checkpoint (its training failed)")
        return
    out = os.path.join(work, name.replace(" ", "-") + ".npz")
    ok, tail = run(
        ["evaluate.py", "--load", logdir, "--data", data, "--save-cams", out], out + ".log"
    )
    if not ok:
        report.line("FAIL", name, detail=f"{tail} (log: {out}.log)")
        return
    cams = np.load(out)
    n, labels = np.arange(len(cams["labels"])), cams["labels"]
    # evaluate.py computes in float32 whatever --tf32 trained with (evaluation.runner): float32 rounding's tolerance
    gap = np.abs(
        cams["cams"].mean(axis=(1, 2)) + cams["fc_bias"][labels] - cams["logits"][n, labels]
    ).max()
    status = "PASS" if gap < 1e-3 * max(1.0, np.abs(cams["logits"]).max()) else "FAIL"
    report.line(
        status, name, detail=f"{len(labels)} images; cams.mean() + bias == logit within {gap:.1e}"
    )


def data_feed(report, data, workers, need):
    """The training DataFlow of the costliest augmentation ("hns_after_gr") with the sn-resnet recipe's
    jitter and flip, ``workers`` processes, for ``FEED_SECONDS``; PASS if it yields ``need`` img/s."""
    split = load_split(data, "train")
    recipe = resolve_recipe("sn-resnet")
    flow = build_train_dataflow(
        split,
        "hns_after_gr",
        256,
        seed=0,
        num_workers=workers,
        flip=recipe["flip"],
        jitter=recipe["jitter"],
    )
    flow.reset_state()
    images, start, batches = 0, None, 0
    while start is None or time.perf_counter() - start < FEED_SECONDS:
        for batch, *_ in flow:  # one pass over the training images per loop
            batches += 1
            if batches == 3:
                start, images = time.perf_counter(), 0  # after the workers have started
            images += len(batch)
            if start and time.perf_counter() - start >= FEED_SECONDS:
                break
    rate = images / (time.perf_counter() - start)
    ok = need is None or rate >= need
    detail = f"sn-resnet recipe, {workers} workers" + (
        f", need {need:.0f} img/s (fastest run)" if need else ""
    )
    report.line(
        "PASS" if ok else "FAIL", "data feed", rate, detail + ("" if ok else ": raise --workers")
    )


def twice(report, name, work, data, flags):
    """Train ``flags`` twice; PASS if both end with bit-identical variables.  Returns (logdir, img/s)."""
    first, rate = train(report, name, work, data, flags)
    again, _ = train(report, name + ", again", work, data, flags)
    identical(report, f"rerun identical ({name})", first, again)
    return first, rate


def speeds(report, work, data, device):
    """ResNet-18/34 at the paper's smallest and largest batch, plain and --amp, on 1 GPU; each rate
    recorded (runrecord.cost), then the GPU-hours of the tables.  Returns the fastest rate."""
    rates = []
    for depth in PAPER_DEPTHS:
        for batch in PAPER_BATCHES:
            for precision, extra in (("fp32", []), ("fp16", ["--amp"])):
                name = f"speed R{depth} b{batch} {precision}"
                flags = GPU_RUN + ["--gpus", "1", "--depth", str(depth), "--batch", str(batch)]
                flags += extra
                _, rate = train(report, name, work, data, flags)
                if rate:
                    cost.record_rate(
                        device, depth, batch, precision, rate, "python train.py " + " ".join(flags)
                    )
                    rates.append(rate)
    for line in cost.cost_lines(device):
        print(f"      {line}", flush=True)
    return max(rates, default=None)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument(
        "--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)"
    )
    args = p.parse_args(argv)
    work = args.keep or tempfile.mkdtemp(prefix="gpu-check-")
    code = check(work)
    if code == 0 and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    elif code:
        print(f"logs and logdirs kept in {work}", flush=True)
    return code


def check(work):
    """Run every path in ``work``; 0 if all passed, else 1."""
    os.makedirs(work, exist_ok=True)
    report, gpus = Report(), machine.visible_gpus()
    lines, problems = gpu_host.report(visible=gpus)
    print(f"gpu-check in {work}: {available_cores()} CPU cores", *lines, sep="\n", flush=True)
    for problem in problems:
        report.line("FAIL", "GPU host", detail=problem)
    if gpus and problems:  # the driver cannot run TensorFlow's kernels: every GPU line would fail
        print("the GPU paths were not run: fix the FAIL above first", flush=True)
        return 1
    data = generate(os.path.join(work, "data"), **DATA)
    threads = ["--threads", str(available_cores())]

    # the CPU part: the replicated trainer's towers on the CPU, and evaluation
    cpu = CPU_RUN + ["--gpus", "0", "--towers", "2", *threads]
    logdir, rate_cpu = train(
        report,
        "2 towers on the CPU",
        work,
        data,
        cpu,
        "batch split, BN, sync checked",
        cpu_only=True,
    )
    again, _ = train(report, "2 towers on the CPU, again", work, data, cpu, cpu_only=True)
    identical(report, "rerun identical (CPU, 2 towers)", logdir, again)
    determinism_cost(report, "2 towers on the CPU", work, data, cpu, rate_cpu, cpu_only=True)
    evaluate(report, "evaluate (2-tower checkpoint)", work, data, logdir)
    if not gpus:
        data_feed(report, data, 0, None)
        report.line("SKIP", "GPU paths", detail="no GPU visible")
        print(
            "no GPU visible: the GPU paths were not run; on a GPU host see docs/training.md, "
            '"The first hour on a GPU host"',
            flush=True,
        )
        return 1 if report.failed else 0
    gpu_part(report, work, data, gpus)
    print(
        f"{len(report.failed)} failed: {', '.join(report.failed)}"
        if report.failed
        else "all passed",
        flush=True,
    )
    return 1 if report.failed else 0


def gpu_part(report, work, data, gpus):
    """The GPU lines (module docstring), on ``gpus`` visible GPUs."""
    one = GPU_RUN + ["--gpus", "1"]
    first, rate1 = twice(report, "1 GPU", work, data, one)
    determinism_cost(report, "1 GPU", work, data, one, rate1)
    evaluate(report, "evaluate (1 GPU)", work, data, first)
    if gpus > 1:
        # a whole minibatch the GPU count divides (256 does not divide by 3, 5, 6 or 7)
        replicated = GPU_RUN + ["--gpus", str(gpus), "--batch", str(256 // gpus * gpus)]
        # tensorpack 0.11 SyncMultiGPUTrainerReplicated's choice
        mode = "hierarchical" if gpus == 8 else "gpu"
        many, rate_all = train(
            report,
            f"{gpus} GPUs replicated ({mode})",
            work,
            data,
            replicated,
            "batch split, BN, sync checked",
        )
        again, _ = train(report, f"{gpus} GPUs replicated, again", work, data, replicated)
        identical(report, f"rerun identical ({gpus} GPUs)", many, again)
    else:
        rate_all = None
        report.line("SKIP", "GPUs replicated", detail="one GPU visible")
    nchw, rate_nchw = train(report, "1 GPU NCHW", work, data, one + ["--data-format", "NCHW"])
    if rate_nchw and rate1:
        print(f"      NCHW / NHWC speed: {rate_nchw / rate1:.2f}", flush=True)
    evaluate(report, "evaluate (NCHW checkpoint)", work, data, nchw)
    twice(report, "1 GPU fp16 --amp", work, data, one + ["--amp"])
    _, rate_xla = twice(report, "1 GPU --xla", work, data, one + ["--xla"])
    determinism_cost(report, "1 GPU --xla", work, data, one + ["--xla"], rate_xla)
    if rate_xla and rate1:
        print(f"      --xla / plain speed (both deterministic): {rate_xla / rate1:.2f}", flush=True)
    device = next((g["name"] for g in nvidia_smi()), "GPU")
    fastest = max(
        r for r in (speeds(report, work, data, device), rate_all, rate1, 0.0) if r is not None
    )
    workers = cost.default_workers(
        gpus, available_cores(), jitter=True
    )  # train.py's default, sn-resnet
    data_feed(report, data, workers, fastest or None)


if __name__ == "__main__":
    sys.exit(main())
