"""Bit-identical training (issue 17): every comparison is of every checkpoint variable, max |diff| 0.0.

Tiny runs on their own generated data (3 classes x 24 training images of 24x40, the net at
width x0.125, batch 8, 2 epochs of 3 steps: 9 batches a pass, so epochs and passes over the
data do not line up), all made once by the module fixture, two at a time (``--threads 1``
each, which is part of the compared settings).  A run is killed with SIGKILL by a callback
of its own in epoch 2 (after step 5, not a checkpoint), then resumed by the same train.py
command; with ``--checkpoint-every 3`` (7 epochs of 1 step: checkpoints at steps 3, 6 and 7) one is
killed after step 5, between two checkpoints, and compared with the same 7 epochs saved every epoch.
docs/reproducibility.md says what is and is not covered.
"""

import concurrent.futures
import json
import os
import signal

import numpy as np
import pytest

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
import tensorflow as tf

from dataflow.synthetic import generate
from tests.conftest import run_script

RUN = "--depth 18 --aug gr --batch 8 --width-mult 0.125 --threads 1".split()
RUN += "--epochs 2 --steps-per-epoch 3 --val-every 2 --flip --jitter".split()
KILL_AFTER = 5  # global step: in epoch 2, after the checkpoint of step 3
# 7 epochs of one step, a checkpoint every 3 epochs and after the last: steps 3, 6, 7 (killed after step 5)
EVERY3 = ["--epochs", "7", "--steps-per-epoch", "1"]
# train.py's own path with one extra callback that SIGKILLs the process after KILL_AFTER steps
KILLED = """
import os, signal, sys
from tensorpack.callbacks import Callback
from evaluation.watch import LocalizationInferencer
from runrecord.command import parse_args
from training import machine, trainer

class Kill(Callback):
    _chief_only = False
    def _trigger_step(self):
        if self.global_step >= {kill}:
            os.kill(os.getpid(), signal.SIGKILL)

args = parse_args(sys.argv[1:])
trainer.run(args, machine.facts(), extra_callbacks=[Kill()], localization=LocalizationInferencer)
"""
TIMING = ("QueueInput/queue_size",)  # stats.json: how full tensorpack's queue was, a timing


def python(*args, expect=0):
    proc = run_script(*args, timeout=600)
    assert proc.returncode == expect, (args, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc.stdout + proc.stderr


def train(data, logdir, *flags):
    return python("train.py", "--data", data, "--logdir", logdir, *RUN, *flags)


def killed_and_resumed(data, logdir, *flags, kill=KILL_AFTER, saved=3, unsaved=6):
    args = ["--data", data, "--logdir", logdir, *RUN, *flags]
    python("-c", KILLED.format(kill=kill), *args, expect=-signal.SIGKILL)
    assert os.path.exists(os.path.join(logdir, f"model-{saved}.index"))
    # really killed before it
    assert not os.path.exists(os.path.join(logdir, f"model-{unsaved}.index"))
    return train(data, logdir, *flags)


def evaluate_twice(data, logdir):
    for name in ("eval1.json", "eval2.json"):
        python(
            "evaluate.py", "--load", logdir, "--data", data, "--json", os.path.join(logdir, name)
        )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``{name: logdir}`` of every run, made two at a time; the data root is ``runs["data"]``."""
    root = tmp_path_factory.mktemp("determinism")
    data = generate(
        root / "data", classes=3, train_per_class=24, val_per_class=4, seed=0, height=24, width=40
    )
    names = "base workers seed1 towers towers_again resumed resumed_workers every1 every3".split()
    d = {name: str(root / name) for name in names}
    jobs = [
        lambda: (train(data, d["base"]), evaluate_twice(data, d["base"])),
        lambda: train(data, d["workers"], "--workers", "2"),
        lambda: train(data, d["seed1"], "--seed", "1"),
        lambda: train(data, d["towers"], "--towers", "2"),
        lambda: train(data, d["towers_again"], "--towers", "2", "--workers", "2"),
        lambda: d.update(resumed_log=killed_and_resumed(data, d["resumed"])),
        lambda: killed_and_resumed(data, d["resumed_workers"], "--workers", "2"),
        lambda: train(data, d["every1"], *EVERY3),
        lambda: d.update(
            every3_log=killed_and_resumed(data, d["every3"], *EVERY3, "--checkpoint-every", "3")
        ),
    ]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for job in [pool.submit(j) for j in jobs]:
            job.result()
    return dict(d, data=data)


def variables(logdir, step=6):
    prefix = os.path.join(logdir, f"model-{step}")
    names = [name for name, _ in tf.train.list_variables(prefix)]
    return {name: tf.train.load_variable(prefix, name) for name in names}


def differing(a, b, step=6):
    """Names of the variables of two runs' final checkpoints that are not bit-identical."""
    va, vb = variables(a, step), variables(b, step)
    assert va.keys() == vb.keys() and len(va) > 100
    diff = {n: np.asarray(va[n], np.float64) - np.asarray(vb[n], np.float64) for n in va}
    return sorted(n for n in va if np.max(np.abs(diff[n])) > 0)


def stats(logdir):
    with open(os.path.join(logdir, "stats.json")) as f:
        return [{k: v for k, v in entry.items() if k not in TIMING} for entry in json.load(f)]


@pytest.mark.slow
def test_workers_change_nothing(runs):
    assert differing(runs["base"], runs["workers"]) == []
    assert stats(runs["base"]) == stats(runs["workers"])


@pytest.mark.slow
def test_two_towers_twice(runs):
    """The second also with 2 workers: which tower gets which images is fixed (one dequeue, split)."""
    assert differing(runs["towers"], runs["towers_again"]) == []


@pytest.mark.slow
def test_killed_and_resumed_equals_never_interrupted(runs):
    assert "Resuming from" in runs["resumed_log"] and "global step 3" in runs["resumed_log"]
    assert differing(runs["base"], runs["resumed"]) == []
    assert stats(runs["base"]) == stats(runs["resumed"])  # epoch 1 kept, epoch 2 trained again


@pytest.mark.slow
def test_killed_and_resumed_with_workers(runs):
    assert differing(runs["base"], runs["resumed_workers"]) == []


@pytest.mark.slow
def test_two_seeds_differ(runs):
    assert len(differing(runs["base"], runs["seed1"])) > 100


@pytest.mark.slow
def test_evaluate_twice_gives_the_same_eval_json(runs):
    reports = []
    for name in ("eval1.json", "eval2.json"):
        with open(os.path.join(runs["base"], name)) as f:
            # timing: seconds per stage
            reports.append({k: v for k, v in json.load(f).items() if k != "timing"})
    assert reports[0]["summary"] and reports[0] == reports[1]


@pytest.mark.slow
def test_checkpoint_every_3_killed_between_checkpoints_equals_never_interrupted(runs):
    """Resumed from step 3 after a kill after step 5: epochs 4-7 again, equal to saving every epoch."""
    assert "Resuming from" in runs["every3_log"] and "global step 3" in runs["every3_log"]
    saved = sorted(int(f[6:-6]) for f in os.listdir(runs["every3"]) if f.endswith(".index"))
    assert saved == [3, 6, 7]
    assert differing(runs["every1"], runs["every3"], step=7) == []
    assert stats(runs["every1"]) == stats(runs["every3"])


@pytest.mark.slow
def test_localisation_in_stats_equals_evaluate(runs):
    """The last validation's GT-known / Top-1 Loc (evaluation/watch.py) are evaluate.py's, default protocol."""
    with open(os.path.join(runs["base"], "eval1.json")) as f:
        ev = json.load(f)
    last = stats(runs["base"])[-1]
    assert last["epoch_num"] == 2 and ev["protocol"] == "authors"
    assert last["val-gt-known-loc"] == pytest.approx(ev["summary"]["gt_known_loc"])
    assert last["val-top1-loc"] == pytest.approx(ev["summary"]["top1_loc"])
    every1 = stats(runs["every1"])
    assert "val-gt-known-loc" in every1[1] and "val-gt-known-loc" not in every1[0]
    base = runs["base"]
    events = [os.path.join(base, f) for f in os.listdir(base) if f.startswith("events.out")]
    records = [e for path in events for e in tf.compat.v1.train.summary_iterator(path)]
    tags = {v.tag for e in records for v in e.summary.value}
    assert {"val-gt-known-loc", "val-top1-loc", "xentropy-loss"} <= tags  # TensorBoard's scalars
