"""One table run: its folder, its train.py / evaluate.py commands, and its state.

Each run is two subprocesses in its log folder ``<logroot>/<name>``:
``train.py ... --seed S --logdir <logdir>`` (output to ``<logdir>/train.out``), then
``evaluate.py --load <logdir> ... --json <logdir>/eval.json --vis <logdir>/figure2``
(``<logdir>/eval.out``); the ``figure2/`` panels feed the tables' Figure 2.

The state of a run is read from its folder (:func:`run_state`):

* ``evaluated``: ``done.json``, an ``eval.json`` at least as new and the figure panels: skipped;
* ``trained``: ``done.json`` without all of those: only evaluated;
* ``new`` / ``resumable``: train.py is started (it resumes from its last checkpoint), then evaluated;
* ``conflict``: the folder holds a run finished with other settings (``tables_run.json``,
  written when training ends, differs).  Any conflict refuses the whole invocation before
  anything runs or is written.
"""
import hashlib
import json
import os
import shlex
import sys
from dataclasses import dataclass

from errors import UserError

NEW, RESUMABLE, TRAINED, EVALUATED, CONFLICT = "new", "resumable", "trained", "evaluated", "conflict"
TO_TRAIN = (NEW, RESUMABLE)
RECORD = "tables_run.json"   # what the scripts trained this folder with
FIGURE_DIR = "figure2"       # evaluate.py --vis output of a run, read by tables.figure
FIGURE_IMAGES = 4            # validation images per run in Figure 2 (evaluate.py --vis-count)
FIGURE_SCALE = 2             # pixel upscale of the panels (evaluate.py --vis-scale)
# train.py flags the scripts set for every run; passing them (or any prefix of them) is refused.
RESERVED_TRAIN_FLAGS = ("--data", "--depth", "--aug", "--batch", "--logdir", "--gpus", "--seed", "--holdout")
HINTS = {"--gpus": "use --gpus-per-run for GPUs per run", "--seed": "use --seeds",
         "--holdout": "use the table option --holdout, before --"}
# train.py flags that change speed, not results (its rundir.NOT_COMPARED): a finished run is
# reused whatever their values.
NEUTRAL_TRAIN_FLAGS = ("--threads", "--workers", "--val-every", "--val-batch", "--keep-checkpoints",
                       "--xla", "--data-format")
# files that identify a dataset for the record (small; the images are covered by train.py's check)
DATA_ID_FILES = ("wnids.txt", os.path.join("val", "val_annotations.txt"), "synthetic.json")


@dataclass
class Run:
    """One run (a config and a seed): commands are argv lists without the GPU environment."""
    config: object        # tables.configs.Config
    logdir: str
    train_cmd: list
    eval_cmd: list
    record: dict          # compared with <logdir>/tables_run.json: data, depth, aug, batch, train args

    @property
    def name(self):
        return self.config.name

    @property
    def eval_json(self):
        return os.path.join(self.logdir, "eval.json")

    @property
    def figure_dir(self):
        return os.path.join(self.logdir, FIGURE_DIR)

    @property
    def train_log(self):
        return os.path.join(self.logdir, "train.out")

    @property
    def eval_log(self):
        return os.path.join(self.logdir, "eval.out")


def check_passthrough(train_args):
    """Refuse pass-through flags that the scripts set per run, and any abbreviation of one (UserError).

    ``--dep 34`` is refused like ``--depth 34``: a prefix of a reserved flag is refused even
    where train.py would not take it, so that no version of train.py's parser can turn it
    into the flag that names the cell.
    """
    for a in train_args:
        flag = a.split("=", 1)[0]
        if not flag.startswith("--") or len(flag) < 3:
            continue
        hit = next((r for r in RESERVED_TRAIN_FLAGS if r.startswith(flag)), None)
        if hit:
            name = flag if flag == hit else f"{flag} (an abbreviation of {hit})"
            hint = f" ({HINTS[hit]})" if hit in HINTS else ""
            raise UserError(f"{name} is set by the table script for each run and cannot be passed "
                            f"to train.py{hint}")


def _semantic_args(train_args):
    """Pass-through args as {flag: value(s)} without the speed-only flags, independent of order."""
    groups, cur = {}, None
    for a in train_args:
        if a.startswith("--"):
            flag, eq, value = a.partition("=")
            cur = groups.setdefault(flag, [])
            cur.clear()
            if eq:
                cur.append(value)
        elif cur is not None:
            cur.append(a)
        else:
            groups.setdefault("", []).append(a)
    return {f: (v[0] if len(v) == 1 else v) for f, v in sorted(groups.items()) if f not in NEUTRAL_TRAIN_FLAGS}


def data_id(root):
    """A short hash of the dataset's class list and val annotations (and synthetic.json if any)."""
    h = hashlib.sha1()
    for rel in DATA_ID_FILES:
        try:
            with open(os.path.join(root, rel), "rb") as f:
                h.update(rel.encode() + b"\0" + f.read())
        except OSError:
            pass
    return h.hexdigest()[:16]


def make_runs(configs, *, data, logroot, train_args=(), gpus_per_run=0, python=None,
              repo=None):
    """A :class:`Run` per config; ``gpus_per_run`` 0 means CPU (no ``--gpus`` flag to train.py)."""
    python = python or sys.executable
    repo = repo or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = os.path.abspath(data) if data else None
    ident = data_id(data) if data else None
    runs = []
    for c in configs:
        logdir = os.path.join(logroot, c.name)
        train = [python, os.path.join(repo, "train.py"), "--data", data, "--depth", str(c.depth),
                 "--aug", c.aug, "--batch", str(c.batch), "--seed", str(c.seed), "--logdir", logdir]
        if c.holdout:
            train += ["--holdout", str(c.holdout)]
        if gpus_per_run:
            train += ["--gpus", str(gpus_per_run)]
        train += list(train_args)
        ev = [python, os.path.join(repo, "evaluate.py"), "--load", logdir, "--data", data,
              "--json", os.path.join(logdir, "eval.json"), "--vis", os.path.join(logdir, FIGURE_DIR),
              "--vis-count", str(FIGURE_IMAGES), "--vis-scale", str(FIGURE_SCALE)]
        if c.holdout:   # the CAM threshold chosen on the held-out training images, per protocol
            ev.append("--threshold-from-holdout")
        # the seed is in the folder's name, so it needs no place in the record; no data
        # (--report-only): no record, nothing is compared
        record = data and {"data_id": ident, "depth": c.depth, "aug": c.aug, "batch": c.batch,
                           "train_args": _semantic_args(train_args)}
        runs.append(Run(c, logdir, train, ev, record))
    return runs


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return None


def valid_json(path):
    try:
        with open(path) as f:
            json.load(f)
        return True
    except (OSError, ValueError):
        return False


def run_state(run):
    """(state, reason) of a run from the files in its log folder; see the module docstring."""
    rec_path = os.path.join(run.logdir, RECORD)
    if run.record is not None and os.path.exists(rec_path):
        try:
            with open(rec_path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = None
        if old != run.record:
            old = old if isinstance(old, dict) else {}
            diff = "; ".join(f"{k} was {old.get(k)!r}, now {v!r}" for k, v in run.record.items()
                             if old.get(k) != v)
            return CONFLICT, f"{run.logdir} holds a run finished with other settings ({diff})"
    done = _mtime(os.path.join(run.logdir, "done.json"))
    if done is None:
        if os.path.exists(os.path.join(run.logdir, "checkpoint")):
            return RESUMABLE, "resuming from its last checkpoint"
        return NEW, "not trained yet"
    ev = _mtime(run.eval_json)
    if ev is None:
        return TRAINED, "trained, not evaluated"
    if ev < done:
        return TRAINED, "eval.json older than done.json"
    if not valid_json(run.eval_json):
        return TRAINED, "eval.json unreadable"
    if not os.path.isdir(run.figure_dir):
        return TRAINED, f"evaluated without the figure panels ({FIGURE_DIR}/)"
    return EVALUATED, "finished"


def refuse_conflicts(runs, states):
    """UserError naming every run whose folder holds a run with other settings (nothing is run)."""
    bad = [f"  {r.name}: {states[r.name][1]}" for r in runs if states[r.name][0] == CONFLICT]
    if bad:
        raise UserError("refusing to run: these folders hold runs finished with other settings "
                        "(another dataset or other train.py settings):\n" + "\n".join(bad)
                        + "\nUse another --logroot, or remove those folders; nothing was run or written")


def describe(run, state, env):
    """Shell lines that would carry out ``run`` with ``env`` (e.g. ``CUDA_VISIBLE_DEVICES=0``), for --dry-run."""
    lines = []
    if state in TO_TRAIN:
        lines.append(f"{env} {shlex.join(run.train_cmd)} >> {run.train_log} 2>&1")
    if state in TO_TRAIN + (TRAINED,):
        lines.append(f"{env} {shlex.join(run.eval_cmd)} >> {run.eval_log} 2>&1")
    return lines
