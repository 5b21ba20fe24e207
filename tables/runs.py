"""One table run: its folder, its train.py / evaluate.py commands, and its state.

Each run is two subprocesses in its log folder ``<logroot>/<name>``:
``train.py ... --seed S --logdir <logdir>`` (output to ``<logdir>/train.out``), then
``evaluate.py --load <logdir> ... --json <logdir>/eval.json --vis <logdir>/figure2``
(``<logdir>/eval.out``); the ``figure2/`` panels feed the tables' Figure 2.

The state of a run is ``runrecord.run_state`` of its folder against the settings the
run will train with (:mod:`tables.expect`), plus one condition of the tables' own:

* ``evaluated`` (done.json, a usable eval.json) and the figure panels: skipped;
* ``trained``: only evaluated (also when evaluated before the panels were asked for);
* ``new`` / ``resumable``: train.py is started (it resumes from its newest checkpoint), then evaluated;
* ``conflict``: the folder holds a run with other settings (another dataset, other
  train.py settings that change results).  Any conflict refuses the whole invocation
  before anything runs or is written.
"""
import os
import shlex
import sys
from dataclasses import dataclass
from typing import Optional

import runrecord
from errors import UserError
from runrecord import CONFLICT, EVALUATED, NEW, RESUMABLE, TRAINED  # noqa: F401 (the states)

TO_TRAIN = (NEW, RESUMABLE)
FIGURE_DIR = "figure2"       # evaluate.py --vis output of a run, read by tables.figure
FIGURE_IMAGES = 4            # validation images per run in Figure 2 (evaluate.py --vis-count)
FIGURE_SCALE = 2             # pixel upscale of the panels (evaluate.py --vis-scale)
# train.py flags the scripts set for every run; passing them (or any prefix of them) is refused.
RESERVED_TRAIN_FLAGS = ("--data", "--depth", "--aug", "--batch", "--logdir", "--gpus", "--seed", "--holdout")
HINTS = {"--gpus": "use --gpus-per-run for GPUs per run", "--seed": "use --seeds",
         "--holdout": "use the table option --holdout, before --"}


@dataclass
class Run:
    """One run (a config and a seed): commands are argv lists without the GPU environment."""
    config: object        # tables.configs.Config
    logdir: str
    train_cmd: list
    eval_cmd: list
    expected: Optional[runrecord.RunSettings] = None   # what train_cmd trains; None: not compared
    problem: Optional[str] = None   # why train_cmd cannot train here (a run not selected to run)

    @property
    def name(self):
        return self.config.name

    @property
    def eval_json(self):
        return os.path.join(self.logdir, runrecord.EVAL)

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


def make_runs(configs, *, data, logroot, train_args=(), gpus_per_run=0, python=None, repo=None,
              expectation=None, strict=True, eval_args=()):
    """A :class:`Run` per config; ``gpus_per_run`` 0 means CPU (no ``--gpus`` flag to train.py).

    ``expectation``: a :class:`tables.expect.Expectation` of ``data``, to compare each run's
    folder with the settings it will train with; None (--report-only): nothing is compared.
    ``strict``: a run train.py would refuse is a UserError; else its ``problem`` (for runs
    that are only reported).
    """
    python = python or sys.executable
    repo = repo or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    data = os.path.abspath(data) if data else None
    runs = []
    for c in configs:
        logdir = os.path.join(logroot, c.name)
        argv = ["--data", data, "--depth", str(c.depth), "--aug", c.aug, "--batch", str(c.batch),
                "--seed", str(c.seed), "--logdir", logdir]
        if c.holdout:
            argv += ["--holdout", str(c.holdout)]
        if gpus_per_run:
            argv += ["--gpus", str(gpus_per_run)]
        argv += list(train_args)
        ev = [python, os.path.join(repo, "evaluate.py"), "--load", logdir, "--data", data,
              "--json", os.path.join(logdir, runrecord.EVAL), "--vis", os.path.join(logdir, FIGURE_DIR),
              "--vis-count", str(FIGURE_IMAGES), "--vis-scale", str(FIGURE_SCALE)]
        if c.holdout:   # the CAM threshold chosen on the held-out training images, per protocol
            ev.append("--threshold-from-holdout")
        ev += list(eval_args)   # the demo's --protocol (tables/demo.py EVAL_ARGS)
        expected = problem = None
        try:
            expected = expectation.settings(argv) if expectation else None
        except UserError as e:
            if strict:
                raise
            problem = f"train.py would refuse it here: {e}"
        runs.append(Run(c, logdir, [python, os.path.join(repo, "train.py")] + argv, ev, expected, problem))
    return runs


def run_state(run):
    """(state, reason) of a run from the files in its log folder; see the module docstring."""
    if run.problem:
        return CONFLICT, run.problem
    state, reason = runrecord.run_state(run.logdir, run.expected)
    if state == EVALUATED and not os.path.isdir(run.figure_dir):
        return TRAINED, f"evaluated without the figure panels ({FIGURE_DIR}/)"
    return state, reason


def refuse_conflicts(runs, states):
    """UserError naming every run whose folder holds a run with other settings, or one train.py
    would refuse (nothing is run)."""
    bad = [f"  {r.name}: " + states[r.name][1].replace("\n", "\n    ") for r in runs
           if states[r.name][0] == CONFLICT]
    if bad:
        raise UserError("refusing to run: these folders hold runs with other settings than this command's "
                        "(another dataset, other train.py settings, or run files without settings.json):\n"
                        + "\n".join(bad)
                        + "\nUse another --logroot, or remove those folders; nothing was run or written")


def describe(run, state, env):
    """Shell lines that would carry out ``run`` with ``env`` (e.g. ``CUDA_VISIBLE_DEVICES=0``), for --dry-run."""
    lines = []
    if state in TO_TRAIN:
        lines.append(f"{env} {shlex.join(run.train_cmd)} >> {run.train_log} 2>&1")
    if state in TO_TRAIN + (TRAINED,):
        lines.append(f"{env} {shlex.join(run.eval_cmd)} >> {run.eval_log} 2>&1")
    return lines
