"""Run train.py's own training path with a probe that checks the replicated towers.

Takes exactly train.py's flags and trains as train.py does (same settings,
same trainer, same logdir rules), with one extra callback that:

* at the first ``PROBED_STEPS`` steps fetches from each training tower, alongside
  the training op (so the same batch), its input images -> how many images each
  tower gets, and whether the towers got different images; and the first
  convolution's output and its BatchNorm's batch mean -> whether each tower
  normalises with the statistics of its own images (not of the whole batch);
* without GPUs, traces the first step: the devices its ops ran on (``ran_on``);
* after a step in mid-epoch, then after training, compares every tower's copy of
  every variable with tower 0's (mid-epoch: trainable variables and optimizer
  slots, which the all-reduce keeps in step; after training: all variables, after
  tensorpack's end-of-epoch sync of the BatchNorm moving averages);
* times the steps of each epoch (``epoch_seconds``): the last epoch, fetching
  nothing extra, gives the training speed.

Writes the findings to ``<logdir>/towers.json``. Used by tests/test_gpu_towers.py
and tools/gpu_check.py. Example::

    python -m tools.tower_probe --data demo_data --aug gr --batch 8 --towers 2 \\
        --width-mult 0.125 --epochs 1 --steps-per-epoch 3 --logdir /tmp/probe
"""

import tf_env  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS)

import hashlib
import json
import os
import sys
import threading
import time

import numpy as np
import tensorflow as tf
from tensorpack.callbacks import Callback

from errors import run_main
from evaluation.watch import LocalizationInferencer
from models.resnet import INPUT_IMAGE
from runrecord.command import parse_args
from training import machine, trainer

tf1 = tf.compat.v1
PROBE = "towers.json"
PROBED_STEPS = 3
BN_INPUT, BN_MEAN = (
    "conv0/Conv2D:0",
    "conv0/bn/FusedBatchNormV3:1",
)  # models.resnet stem, tensorpack names


def tower_copies(variables):
    """``{name in tower 0: [variable in tower 0, tower 1, ...]}`` for replicated variables
    (tensorpack's replicated trainer names tower i's copy ``tower{i}/<name>``)."""
    by_name = {v.op.name: v for v in variables}
    groups = {}
    for name, v in sorted(by_name.items()):
        if not name.startswith("tower"):
            groups.setdefault(name, [v])
    for name, v in sorted(by_name.items()):
        head, _, rest = name.partition("/")
        if head.startswith("tower") and head[5:].isdigit() and rest in groups:
            groups[rest].append(v)
    return groups


def read_ops(groups):
    """Read ops (built before the graph is finalized) for the groups with several copies."""
    return {n: [v.read_value() for v in vs] for n, vs in groups.items() if len(vs) > 1}


def max_differences(sess, reads):
    """``{name: max |tower i - tower 0| over i}`` for the output of :func:`read_ops`."""
    values = sess.run(reads)
    return {
        n: max(
            float(np.max(np.abs(np.asarray(c, np.float64) - np.asarray(copies[0], np.float64))))
            for c in copies[1:]
        )
        for n, copies in values.items()
    }


class TowerProbe(Callback):
    """The checks described in the module docstring; results in ``self.report`` and ``path``."""

    _chief_only = False

    def __init__(self, path, data_format="NHWC"):
        self._path = path
        self._axes = (0, 2, 3) if data_format == "NCHW" else (0, 1, 2)
        self.report = {"steps": [], "epoch_seconds": []}

    def _setup_graph(self):
        handles = self.trainer.towers.training()
        self._fetch = [
            {
                "images": h.get_tensor(INPUT_IMAGE),
                "bn_in": h.get_tensor(BN_INPUT),
                "bn_mean": h.get_tensor(BN_MEAN),
            }
            for h in handles
        ]
        self.report["towers"] = len(handles)
        self.report["devices"] = [h.get_tensor(BN_INPUT).device for h in handles]  # as requested
        self._mid_epoch_done = False
        self._trace = not machine.visible_gpus()  # a GPU trace needs CUPTI, which a host may lack
        slots = [
            v for v in tf1.global_variables() + tf1.local_variables() if "/Momentum" in v.op.name
        ]
        self._trained = read_ops(tower_copies(tf1.trainable_variables() + slots))
        self._all = read_ops(tower_copies(tf1.global_variables() + tf1.local_variables()))

    def _before_epoch(self):
        self._start = time.perf_counter()

    def _after_epoch(self):
        self.report["epoch_seconds"].append(time.perf_counter() - self._start)

    def _before_run(self, _):
        if not self.report["steps"] and self._trace:  # where the first step's ops really ran
            return tf1.train.SessionRunArgs(
                self._fetch, options=tf1.RunOptions(trace_level=tf1.RunOptions.FULL_TRACE)
            )
        if len(self.report["steps"]) < PROBED_STEPS:
            return tf1.train.SessionRunArgs(self._fetch)
        return None

    def _after_run(self, _, run_values):
        towers = run_values.results
        if towers is None:
            return
        if not self.report["steps"] and self._trace:
            self.report["ran_on"] = sorted(
                {d.device for d in run_values.run_metadata.step_stats.dev_stats}
            )
        whole = np.concatenate([t["bn_in"] for t in towers]).mean(axis=self._axes)
        step = {
            "images": [int(t["images"].shape[0]) for t in towers],
            # the mean each tower normalised with, against its own images and the whole batch
            "bn_vs_own": [
                float(np.max(np.abs(t["bn_mean"] - t["bn_in"].mean(axis=self._axes))))
                for t in towers
            ],
            "bn_vs_whole": [float(np.max(np.abs(t["bn_mean"] - whole))) for t in towers],
            "distinct_images": len({t["images"].tobytes() for t in towers}) == len(towers),
            "images_sha1": [hashlib.sha1(t["images"].tobytes()).hexdigest() for t in towers],
        }
        self.report["steps"].append(step)

    def _trigger_step(self):
        # once, after a step that is not the last of its epoch (no end-of-epoch sync ran yet)
        if self._mid_epoch_done or self.local_step + 1 >= self.trainer.steps_per_epoch:
            return
        self.report["mid_epoch_max_diff"] = max_differences(self.trainer.sess, self._trained)
        self._mid_epoch_done = True

    def _after_train(self):
        self.report["final_max_diff"] = max_differences(self.trainer.sess, self._all)
        self.report["steps_per_epoch"] = self.trainer.steps_per_epoch
        with open(self._path, "w") as f:
            json.dump(self.report, f, indent=1, sort_keys=True)


def main(argv=None):
    args = parse_args(argv)
    probe = TowerProbe(os.path.join(args.logdir, PROBE), args.data_format)
    trainer.run(args, machine.facts(), extra_callbacks=[probe], localization=LocalizationInferencer)
    # trainer.run joins QueueInput's feeding thread (trainer.train_steps): none may outlive it
    path = os.path.join(args.logdir, PROBE)
    with open(path) as f:
        report = json.load(f)
    report["feeders_after_run"] = [
        t.name for t in threading.enumerate() if t.name.startswith("EnqueueThread")
    ]
    with open(path, "w") as f:
        json.dump(report, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
