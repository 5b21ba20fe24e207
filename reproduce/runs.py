"""The runs of a table, one per cell and seed: names, folders, train.py / evaluate.py commands, the
settings each will train with, its state, and the table's result from their eval.json (docs/tables.md)."""

import fnmatch
import functools
import os
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, replace
from typing import Optional

import cv2

import runrecord
from errors import UserError
from runrecord import CONFLICT, EVALUATED, NEW, RESUMABLE, TRAINED  # the states
from runrecord.command import command_settings
from runrecord.machine import Machine
from runrecord.machine import describe as describe_machine
from reproduce import schedule
from reproduce.paper import LAYOUTS, check_claims


@dataclass(frozen=True)
class Config:
    depth: int  # ResNet depth, 18 or 34
    aug: str  # augmentation method, one of augment.registry.names()
    batch: int  # whole minibatch size (split over the run's GPUs by train.py)
    seed: int = 0  # train.py --seed
    holdout: int = 0  # train.py --holdout: training images per class held out

    @property
    def cell(self):
        """The table cell this run belongs to (its name without the seed): ``r18-gr-b256``, ``r18-gr-b256-h10``."""
        return runrecord.run_name(self.depth, self.aug, self.batch, self.holdout)

    @property
    def name(self):
        """Also the run's folder: the cell for seed 0 (the paper's single run), else ``<cell>-s<seed>``."""
        return runrecord.run_name(self.depth, self.aug, self.batch, self.holdout, self.seed)


def table_configs(table, batch_map=None, depths=None, seeds=(0,), holdout=0, methods=None):
    """The runs of paper Table 1 (10 per seed) or Table 2 (18 per seed) in the paper's order, seeds of a
    cell side by side; ``batch_map``: the paper's batch -> the one trained (the demo's); ``depths``: only
    those; ``methods``: Table 1's columns (default the paper's five; reproduce.paper.Table1)."""
    cells = []
    for c in LAYOUTS[table].cells(batch_map or {}, depths, methods):
        cfg = Config(c.depth, c.method, c.trained_batch, holdout=holdout)
        if cfg not in cells:
            cells.append(cfg)
    return [replace(c, seed=s) for c in cells for s in seeds]


def select(configs, only):
    """The configs matching one of ``--only``'s comma-separated patterns: a run or cell name, a glob
    (``r34-*-b32``), a prefix ending at a dash (``r18-gr``, not ``r18-gr_after_hns``); UserError if none."""
    if not only:
        return list(configs)
    keep = set()
    for p in (p.strip() for p in only.split(",") if p.strip()):
        hits = [
            c
            for c in configs
            if any(
                fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(n, p + "-*")
                for n in (c.name, c.cell)
            )
        ]
        if not hits:
            raise UserError(
                f"--only {p!r} matches no run of this table; runs are: "
                + ", ".join(c.name for c in configs)
                + " (--methods sets Table 1's columns: other augment/ methods too)"
            )
        keep.update(hits)
    return [c for c in configs if c in keep]


class Expectation:
    """Builds the expected RunSettings of train.py commands on one dataset and GPU count
    (no pixels are decoded but the first image's, for its shape)."""

    def __init__(self, data, gpus_per_run):
        from dataflow.annotations import read_annotations

        self.data = os.path.abspath(data)
        # the machine assumed: this one, with the run's GPUs, TensorFlow's oneDNN on (tf_env.py)
        self.machine = Machine(gpus=gpus_per_run)
        self.train, self.val = (
            read_annotations(self.data, "train"),
            read_annotations(self.data, "val"),
        )
        first = os.path.join(self.data, self.train.files[0])
        image = cv2.imread(first, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise UserError(f"{first}: cannot be decoded as an image ({self.train.lines[0]})")
        self.image_shape = list(image.shape[:2])
        # fingerprint(holdout), once per holdout
        self.fingerprint = functools.lru_cache(None)(
            functools.partial(runrecord.dataset_fingerprint, self.train, self.val)
        )

    def settings(self, train_argv):
        """RunSettings of ``train.py <train_argv>``, from train.py's own parser, environment and settings
        (``runrecord.command``: they refuse unknown and abbreviated flags), with the dataset fingerprint
        of the annotations."""
        try:
            return command_settings(
                train_argv, self.machine, self.fingerprint, len(self.train.wnids), self.image_shape
            )
        except SystemExit as e:
            if e.code:
                raise UserError(
                    "train.py refuses a run's command (its message is above: an option after --, "
                    "or a --logdir it cannot create); nothing was run"
                ) from None
            raise


TO_TRAIN = (NEW, RESUMABLE)
# the key of collect's per-image views in a result: kept in memory, not saved
PER_IMAGE = "per_image"
FIGURE_DIR = "figure2"  # evaluate.py --vis output of a run, read by reproduce.report (Figure 2)
FIGURE_IMAGES = 4  # validation images per run in Figure 2 (evaluate.py --vis-count)
FIGURE_SCALE = 2  # pixel upscale of the panels (evaluate.py --vis-scale)
# train.py flags the scripts set for every run; passing them (or any prefix of them) is refused.
RESERVED_TRAIN_FLAGS = ("--data", "--depth", "--aug", "--batch", "--logdir", "--gpus", "--seed")
RESERVED_TRAIN_FLAGS += ("--holdout",)
HINTS = {
    "--gpus": "use --gpus-per-run for GPUs per run",
    "--seed": "use --seeds",
    "--holdout": "use the table option --holdout, before --",
}


@dataclass
class Run:
    """One run (a config and a seed): commands are argv lists without the GPU environment."""

    config: Config
    logdir: str
    train_cmd: list
    eval_cmd: list
    expected: Optional[runrecord.RunSettings] = None  # what train_cmd trains; None: not compared
    problem: Optional[str] = None  # why train_cmd cannot train here (a run not selected to run)

    name = property(lambda self: self.config.name)
    eval_json = property(lambda self: os.path.join(self.logdir, runrecord.EVAL))
    figure_dir = property(lambda self: os.path.join(self.logdir, FIGURE_DIR))
    train_log = property(lambda self: os.path.join(self.logdir, "train.out"))
    eval_log = property(lambda self: os.path.join(self.logdir, "eval.out"))


def check_passthrough(train_args):
    """UserError for a pass-through flag the scripts set per run, or any abbreviation of one (``--dep``),
    even where train.py would not take it: no parser version can turn it into a flag naming the cell."""
    for flag in (a.split("=", 1)[0] for a in train_args):
        hit = next((r for r in RESERVED_TRAIN_FLAGS if r.startswith(flag)), None)
        if flag.startswith("--") and len(flag) >= 3 and hit:
            name = flag if flag == hit else f"{flag} (an abbreviation of {hit})"
            hint = f" ({HINTS[hit]})" if hit in HINTS else ""
            raise UserError(
                f"{name} is set by the table script for each run and cannot be passed "
                f"to train.py{hint}"
            )


def make_runs(
    configs,
    *,
    data,
    logroot,
    train_args=(),
    gpus_per_run=0,
    python=None,
    repo=None,
    expectation=None,
    strict=True,
    eval_args=(),
):
    """A :class:`Run` per config (``gpus_per_run`` 0: CPU, no ``--gpus``).  ``expectation``: an
    :class:`Expectation` of ``data`` to compare each folder with, or None (--report-only); ``strict``: a run
    train.py would refuse is a UserError, else its ``problem`` (runs that are only reported)."""
    python = python or sys.executable
    repo = repo or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = os.path.abspath(data) if data else None
    runs = []
    for c in configs:
        logdir = os.path.join(logroot, c.name)
        holdout = ["--holdout", str(c.holdout)] if c.holdout else []
        argv = ["--data", data, "--depth", str(c.depth), "--aug", c.aug, "--batch", str(c.batch)]
        argv += ["--seed", str(c.seed), "--logdir", logdir] + holdout
        argv += (["--gpus", str(gpus_per_run)] if gpus_per_run else []) + list(train_args)
        ev = [python, os.path.join(repo, "evaluate.py"), "--load", logdir, "--data", data]
        ev += ["--json", os.path.join(logdir, runrecord.EVAL)]
        ev += ["--vis", os.path.join(logdir, FIGURE_DIR)]
        ev += ["--vis-count", str(FIGURE_IMAGES), "--vis-scale", str(FIGURE_SCALE)]
        # the CAM threshold chosen on the held-out training images; then the demo's --protocol
        ev += (["--threshold-from-holdout"] if c.holdout else []) + list(eval_args)
        expected = problem = None
        try:
            expected = expectation.settings(argv) if expectation else None
        except UserError as e:
            if strict:
                raise
            problem = f"train.py would refuse it here: {e}"
        runs.append(
            Run(c, logdir, [python, os.path.join(repo, "train.py")] + argv, ev, expected, problem)
        )
    return runs


def run_state(run):
    """(state, reason, eval): ``runrecord.folder_state`` of the run's folder (``eval``: the EvalDoc of an
    EVALUATED run, else None), CONFLICT for a run train.py would refuse, and TRAINED for one evaluated
    without the figure panels (docs/tables.md, "Interruptions")."""
    if run.problem:
        return CONFLICT, run.problem, None
    state, reason, doc = runrecord.folder_state(run.logdir, run.expected)
    if state == EVALUATED and not os.path.isdir(run.figure_dir):
        return TRAINED, f"evaluated without the figure panels ({FIGURE_DIR}/)", None
    return state, reason, doc


def refuse_conflicts(runs, states):
    """UserError naming every run whose folder holds other settings, or that train.py would refuse."""
    bad = [
        f"  {r.name}: " + states[r.name][1].replace("\n", "\n    ")
        for r in runs
        if states[r.name][0] == CONFLICT
    ]
    if bad:
        raise UserError(
            "refusing to run: these folders hold runs with other settings than this command's "
            "(another dataset, other train.py settings, or run files without settings.json):\n"
            + "\n".join(bad)
            + "\nUse another --logroot, or remove those folders; nothing was run or written"
        )


def describe(run, state, env):
    """Shell lines that would carry out ``run`` with ``env`` (``CUDA_VISIBLE_DEVICES=0``), for --dry-run."""
    lines = []
    if state in TO_TRAIN:
        lines.append(f"{env} {shlex.join(run.train_cmd)} >> {shlex.quote(run.train_log)} 2>&1")
    if state in TO_TRAIN + (TRAINED,):
        lines.append(f"{env} {shlex.join(run.eval_cmd)} >> {shlex.quote(run.eval_log)} 2>&1")
    return lines


# ---- the result: each run's values from its eval.json, and per cell their mean ± std over the seeds


def stat(by_seed):
    """``{seed: value}`` -> ``{"mean", "std", "n", "seeds"}``; std is the sample std (n - 1), 0 for one seed."""
    vals = list(by_seed.values())
    n = len(vals)
    return {
        "mean": round(statistics.fmean(vals), 2) if n else None,
        "std": round(statistics.stdev(vals), 2) if n > 1 else (0.0 if n else None),
        "n": n,
        "seeds": {str(s): round(v, 2) for s, v in sorted(by_seed.items())},
    }


def run_entry(run, state, reason, doc, outcome):
    """What the result keeps of one run: status ok / missing / failed, its values (``doc.values()``,
    ``doc``: the EvalDoc of an EVALUATED run) and protocol."""
    entry = {
        "cell": run.config.cell,
        "seed": run.config.seed,
        "logdir": run.logdir,
        "eval_json": run.eval_json,
        "status": "missing",
        "values": None,
        "protocol": None,
    }
    settings, _ = runrecord.read_settings(os.path.join(run.logdir, runrecord.SETTINGS))
    # [] before issue 24
    entry["machines"] = [describe_machine(m) for m in (settings or {}).get("machine") or []]
    if outcome is not None and outcome.status == "failed":
        entry.update(status="failed", message=outcome.message, log=outcome.log)
    elif state == EVALUATED:
        try:
            entry.update(values=doc.values(), protocol=doc.protocol, status="ok")
        except ValueError as e:
            entry["message"] = f"{run.eval_json} unusable: {e}"
    else:
        entry["message"] = "not run" if state == NEW and not os.path.isdir(run.logdir) else reason
    return entry


def collect(
    table,
    runs,
    *,
    batch_map=None,
    outcomes=None,
    depths=None,
    holdout=0,
    demo=False,
    info=None,
    methods=None,
):
    """The result of paper Table ``table`` from ``runs`` (all its cells x seeds), as saved in tableN.json
    (docs/tables.md), with the claims tested on it (``claims``, reproduce.paper.check_claims); ``outcomes``:
    {run name: executor.Outcome} of this invocation; ``info``: facts to save.  Each run's eval.json is read
    once: its values go into the runs' entries, its records into ``result[PER_IMAGE]`` ({eval.json path:
    PerImage or why not}, for the claims and the IoU figure; not saved); ``methods``: Table 1's columns
    (:func:`table_configs`)."""
    layout, outcomes = LAYOUTS[table], outcomes or {}
    entries, images = {}, {}
    for r in runs:
        state, reason, doc = run_state(r)
        entries[r.name] = run_entry(r, state, reason, doc, outcomes.get(r.name))
        if entries[r.name]["status"] == "ok":
            try:
                images[r.eval_json] = doc.per_image()
            except ValueError as e:  # the claims say why
                images[r.eval_json] = f"{r.eval_json}: {e}"
    cells, extra = [], {}
    for c in layout.cells(batch_map or {}, depths, methods):
        name = Config(c.depth, c.method, c.trained_batch, holdout=holdout).cell
        oks = [e for e in entries.values() if e["status"] == "ok" and e["cell"] == name]
        s = stat({e["seed"]: e["values"][c.metric] for e in oks})
        diff = None if s["mean"] is None or c.paper is None else round(s["mean"] - c.paper, 2)
        cells.append(
            {
                "run": name,
                "depth": c.depth,
                "method": c.method,
                "batch": c.batch,
                "trained_batch": c.trained_batch,
                "metric": c.metric,
                **s,
                "paper": c.paper,
                "diff": diff,
            }
        )
        keys = sorted({k for e in oks for k in e["values"]} - set(layout.metrics))
        extra[name] = {
            k: stat({e["seed"]: e["values"][k] for e in oks if k in e["values"]}) for k in keys
        }
    result = {
        "table": table,
        "demo": demo,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "info": info or {},
        "seeds": sorted({r.config.seed for r in runs}),
        "depths": sorted({r.config.depth for r in runs}, reverse=True),
        "protocols": sorted({e["protocol"] for e in entries.values() if e["protocol"]}),
        "cells": cells,
        "extra": extra,
        "runs": entries,
        "schedule": sorted(
            {
                x
                for r in runs
                if entries[r.name]["status"] == "ok"
                for x in schedule.changes(r.logdir)
            }
        ),
    }
    result["claims"] = check_claims(result, images)
    result[PER_IMAGE] = images
    return result
