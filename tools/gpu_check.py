"""Self-check of every trainer path on this host, in about five minutes: run it before long runs.

    make gpu-check                                  # same as: python -m tools.gpu_check
    python -m tools.gpu_check --keep /tmp/gpu-check # keep the generated data and logdirs

Trains train.py for a few steps on a generated 64x64 dataset (dataflow.synthetic) in a
temporary folder and prints one line per path: PASS/FAIL/SKIP, images per second, detail.
Exits 1 if any path fails.

With GPUs: 1 GPU; all visible GPUs replicated (per-tower batch, per-tower BatchNorm,
every tower's variables identical, via tools/tower_probe.py); each run twice, and
whether the two ended with bit-identical variables (docs/reproducibility.md); the speed
of op determinism (the default) against ``--nondeterministic`` as a ratio; NCHW against
NHWC; fp16 ``--amp``; ``--xla``; whether the training DataFlow with the default workers
feeds the measured rate of all GPUs; evaluate.py on the 1-GPU and the NCHW checkpoints.
Without a GPU it says so, runs the CPU part (two replicated towers on the CPU, twice, with
the same checks and ratio; the DataFlow rate; evaluate.py), prints SKIP for the GPU lines
and exits 0 if the CPU part passes.
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
from dataflow import build_train_dataflow, load_split
from dataflow.synthetic import generate
from tools.tower_probe import PROBE
from training import devices, session

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = dict(classes=10, train_per_class=60, val_per_class=10, seed=0, height=64, width=64)
GPU_RUN = ["--depth", "18", "--aug", "gr", "--batch", "256", "--epochs", "2", "--steps-per-epoch", "15",
           "--val-every", "2"]   # the paper's net and whole batch; epoch 2 is timed
CPU_RUN = ["--depth", "18", "--aug", "gr", "--batch", "16", "--width-mult", "0.125", "--epochs", "2",
           "--steps-per-epoch", "4", "--val-every", "2"]   # narrow: the code path, not the speed
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
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="") if cpu_only else None   # towers would take the GPUs
    with open(log, "w") as f:
        proc = subprocess.run([sys.executable, *args], cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env)
    with open(log) as f:
        tail = [ln.strip() for ln in f.read().splitlines() if ln.strip()][-1:]
    return proc.returncode == 0, (tail[0][:150] if tail else "")


def train(report, name, work, data, flags, probe_checks=None, cpu_only=False):
    """tools/tower_probe.py (train.py's path) with ``flags``; report one line;
    return (logdir, img/s), or (None, None) if it failed."""
    logdir = os.path.join(work, name.replace(" ", "-"))
    shutil.rmtree(logdir, ignore_errors=True)   # a fresh run, also with --keep
    ok, tail = run(["-m", "tools.tower_probe", "--data", data, "--logdir", logdir, *flags], logdir + ".log",
                   cpu_only)
    if not ok:
        report.line("FAIL", name, detail=f"{tail} (log: {logdir}.log)")
        return None, None
    with open(os.path.join(logdir, PROBE)) as f:
        probe = json.load(f)
    batch = sum(probe["steps"][0]["images"])
    rate = batch * probe["steps_per_epoch"] / probe["epoch_seconds"][-1]
    problems = tower_problems(probe, batch) if probe_checks else []
    report.line("FAIL" if problems else "PASS", name, rate, "; ".join(problems) or probe_checks or "")
    return logdir, rate


def tower_problems(probe, batch):
    """What the probe found wrong with the towers (tools/tower_probe.py), as short sentences."""
    n, out = probe["towers"], []
    if any(s["images"] != [batch // n] * n for s in probe["steps"]):
        out.append(f"towers got {[s['images'] for s in probe['steps']]} images, expected {batch // n} each")
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
    differ = [n for n in names if not np.array_equal(*(tf.train.load_variable(p, n) for p in prefixes))]
    detail = f"{len(differ)} of {len(names)} variables differ" + (f" (first: {differ[0]})" if differ else "")
    report.line("FAIL" if differ else "PASS", name, detail=detail)


def determinism_cost(report, name, work, data, flags, rate, cpu_only=False):
    """A run of ``flags`` with --nondeterministic; print the speed ratio of op determinism to it."""
    _, fast = train(report, name + " --nondeterministic", work, data, flags + ["--nondeterministic"],
                    cpu_only=cpu_only)
    if rate and fast:
        print(f"      deterministic / --nondeterministic speed ({name}): {rate / fast:.2f}", flush=True)


def evaluate(report, name, work, data, logdir):
    """evaluate.py on ``logdir``; PASS if it runs and ``cams.mean() + bias == logit``."""
    if logdir is None:
        report.line("FAIL", name, detail="no checkpoint (its training failed)")
        return
    out = os.path.join(work, name.replace(" ", "-") + ".npz")
    ok, tail = run(["evaluate.py", "--load", logdir, "--data", data, "--save-cams", out], out + ".log")
    if not ok:
        report.line("FAIL", name, detail=f"{tail} (log: {out}.log)")
        return
    cams = np.load(out)
    n, labels = np.arange(len(cams["labels"])), cams["labels"]
    gap = np.abs(cams["cams"].mean(axis=(1, 2)) + cams["fc_bias"][labels] - cams["logits"][n, labels]).max()
    status = "PASS" if gap < 1e-3 * max(1.0, np.abs(cams["logits"]).max()) else "FAIL"
    report.line(status, name, detail=f"{len(labels)} images; cams.mean() + bias == logit within {gap:.1e}")


def data_feed(report, data, workers, need):
    """The training DataFlow ("hns_after_gr", the costliest) with ``workers`` processes, for
    ``FEED_SECONDS``; PASS if it yields at least ``need`` img/s."""
    split = load_split(data, "train")
    flow = build_train_dataflow(split, "hns_after_gr", 256, seed=0,
                                num_workers=workers)
    flow.reset_state()
    images, start, batches = 0, None, 0
    while start is None or time.perf_counter() - start < FEED_SECONDS:
        for batch, *_ in flow:   # one pass over the training images per loop
            batches += 1
            if batches == 3:
                start, images = time.perf_counter(), 0   # after the workers have started
            images += len(batch)
            if start and time.perf_counter() - start >= FEED_SECONDS:
                break
    rate = images / (time.perf_counter() - start)
    ok = need is None or rate >= need
    detail = f"{workers} workers" + (f", need {need:.0f} img/s (all GPUs)" if need else "")
    report.line("PASS" if ok else "FAIL", "data feed", rate, detail + ("" if ok else ": raise --workers"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")
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
    data = generate(os.path.join(work, "data"), **DATA)
    report, gpus = Report(), devices.visible_gpus()
    threads = ["--threads", str(session.available_cores())]
    print(f"gpu-check in {work}: {gpus} GPU(s) visible, {session.available_cores()} CPU cores", flush=True)

    # the CPU part: the replicated trainer's towers on the CPU, and evaluation
    cpu = CPU_RUN + ["--gpus", "0", "--towers", "2", *threads]
    logdir, rate_cpu = train(report, "2 towers on the CPU", work, data, cpu, "batch split, BN, sync checked",
                             cpu_only=True)
    again, _ = train(report, "2 towers on the CPU, again", work, data, cpu, cpu_only=True)
    identical(report, "rerun identical (CPU, 2 towers)", logdir, again)
    determinism_cost(report, "2 towers on the CPU", work, data, cpu, rate_cpu, cpu_only=True)
    evaluate(report, "evaluate (2-tower checkpoint)", work, data, logdir)
    if not gpus:
        data_feed(report, data, 0, None)
        for name in ("rerun identical (1 GPU)", "rerun identical (GPUs replicated)"):
            report.line("SKIP", name, detail="no GPU visible")
        print("      deterministic / --nondeterministic speed (GPU): not measured, no GPU visible", flush=True)
        print("no GPU visible (no NVIDIA driver, or CUDA_VISIBLE_DEVICES empty): the GPU paths were not "
              "run; run `make gpu-check` on the GPU host", flush=True)
        return 1 if report.failed else 0

    one, rate1 = train(report, "1 GPU NHWC", work, data, GPU_RUN + ["--gpus", "1"])
    again, _ = train(report, "1 GPU NHWC, again", work, data, GPU_RUN + ["--gpus", "1"])
    identical(report, "rerun identical (1 GPU)", one, again)
    determinism_cost(report, "1 GPU", work, data, GPU_RUN + ["--gpus", "1"], rate1)
    evaluate(report, "evaluate (1 GPU)", work, data, one)
    if gpus > 1:
        replicated = GPU_RUN + ["--gpus", str(gpus)]
        many, rate_all = train(report, f"{gpus} GPUs replicated", work, data, replicated,
                               "batch split, BN, sync checked")
        again, _ = train(report, f"{gpus} GPUs replicated, again", work, data, replicated)
        identical(report, "rerun identical (GPUs replicated)", many, again)
    else:
        rate_all = rate1
        report.line("SKIP", "GPUs replicated", detail="one GPU visible")
        report.line("SKIP", "rerun identical (GPUs replicated)", detail="one GPU visible")
    nchw, rate_nchw = train(report, "1 GPU NCHW", work, data, GPU_RUN + ["--gpus", "1", "--data-format", "NCHW"])
    if rate_nchw and rate1:
        print(f"      NCHW / NHWC speed: {rate_nchw / rate1:.2f}", flush=True)
    evaluate(report, "evaluate (NCHW checkpoint)", work, data, nchw)
    train(report, "1 GPU fp16 --amp", work, data, GPU_RUN + ["--gpus", "1", "--amp"])
    train(report, "1 GPU --xla", work, data, GPU_RUN + ["--gpus", "1", "--xla"])
    workers = min(8, session.available_cores() // 2)   # train.py's default with GPUs
    data_feed(report, data, workers, rate_all or rate1)
    print(f"{len(report.failed)} failed: {', '.join(report.failed)}" if report.failed else "all passed",
          flush=True)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
