"""The runs of a table: one (depth, augmentation, batch, seed) each, its folder, its
train.py / evaluate.py commands, the settings it will train with, and its state.

A run's name is also its log folder under the log root: ``r{depth}-{aug}-b{batch}``
for seed 0 (the paper's single run, and the name runs had before ``--seeds``, so
they are reused), ``r{depth}-{aug}-b{batch}-s{seed}`` for other seeds, e.g.
``r18-gr-b256-s1``.  Runs trained with ``--holdout N`` (N > 0) learn from fewer
images, so their cell is another one: ``r18-gr-b256-h10``, ``r18-gr-b256-h10-s1``.
Table 2's batch-256 runs have the same names as Table 1's, so running Table 2
after Table 1 reuses them.

Each run is two subprocesses in its log folder ``<logroot>/<name>``:
``train.py ... --seed S --logdir <logdir>`` (output to ``<logdir>/train.out``), then
``evaluate.py --load <logdir> ... --json <logdir>/eval.json --vis <logdir>/figure2``
(``<logdir>/eval.out``); the ``figure2/`` panels feed the tables' Figure 2.

The state of a run is ``runrecord.run_state`` of its folder against the settings the
run will train with (:class:`Expectation`: built as train.py builds them, so that a
finished run is reused only when its settings.json equals them; speed settings such
as ``--workers`` are not compared, ``--threads`` is, since CPU results depend on it), plus one condition of the tables' own:

* ``evaluated`` (done.json, a usable eval.json) and the figure panels: skipped;
* ``trained``: only evaluated (also when evaluated before the panels were asked for);
* ``new`` / ``resumable``: train.py is started (it resumes from its newest checkpoint), then evaluated;
* ``conflict``: the folder holds a run with other settings (another dataset, other
  train.py settings that change results).  Any conflict refuses the whole invocation
  before anything runs or is written.
"""
import fnmatch
import os
import shlex
import sys
from dataclasses import dataclass, replace
from typing import Optional

import cv2

import runrecord
from errors import UserError
from runrecord import CONFLICT, EVALUATED, NEW, RESUMABLE, TRAINED  # noqa: F401 (the states)
from runrecord.command import Machine, command_settings
from tables.paper import LAYOUTS


@dataclass(frozen=True)
class Config:
    depth: int   # ResNet depth, 18 or 34
    aug: str     # augmentation method, one of augment.METHODS
    batch: int   # whole minibatch size (split over the run's GPUs by train.py)
    seed: int = 0      # train.py --seed
    holdout: int = 0   # train.py --holdout: training images per class held out

    @property
    def cell(self):
        """The table cell this run belongs to (its name without the seed)."""
        return f"r{self.depth}-{self.aug}-b{self.batch}" + (f"-h{self.holdout}" if self.holdout else "")

    @property
    def name(self):
        return self.cell if self.seed == 0 else f"{self.cell}-s{self.seed}"


def parse_seeds(text):
    """``--seeds``: ``"3"`` -> [0, 1, 2] (N seeds from 0); ``"0,4,7"`` -> those seeds.

    A single number is a count; a list (any comma) names the seeds, so ``"5,"`` is seed 5 alone.
    """
    text = str(text).strip()
    try:
        if "," not in text:
            n = int(text)
            if n < 1:
                raise UserError(f"--seeds {text}: the number of seeds must be at least 1")
            return list(range(n))
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {text!r}: expected a count (3) or a comma list of seeds (0,4,7)") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r}: seeds must be distinct non-negative integers")
    return seeds


def table_configs(table, batch_map=None, depths=None, seeds=(0,), holdout=0):
    """The runs of paper Table 1 (10 per seed) or Table 2 (18 per seed), in the paper's order.

    ``batch_map`` maps the paper's batch size to the one actually trained (the demo
    trains smaller batches); ``depths`` keeps only those depths (default all);
    each cell is run once per seed in ``seeds``, seeds of a cell next to each other;
    ``holdout``: train.py --holdout of every run.
    """
    cells = []
    for c in LAYOUTS[table].cells(batch_map or {}, depths):
        cfg = Config(c.depth, c.method, c.trained_batch, holdout=holdout)
        if cfg not in cells:
            cells.append(cfg)
    return [replace(c, seed=s) for c in cells for s in seeds]


def select(configs, only):
    """Keep the configs whose name matches one of the comma-separated patterns in ``only``.

    A pattern matches a run's name or its cell name (without the seed suffix) exactly,
    as a shell glob (``r34-*-b32``), or as a prefix ending at a dash (``r18-gr`` selects
    ``r18-gr-b256`` and ``r18-gr-b256-s1`` but not ``r18-gr_after_hns-b256``).
    A pattern that selects nothing is a UserError listing the names.
    """
    if not only:
        return list(configs)
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    keep = set()
    for p in patterns:
        hits = [c for c in configs if any(fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(n, p + "-*")
                                          for n in (c.name, c.cell))]
        if not hits:
            names = ", ".join(c.name for c in configs)
            raise UserError(f"--only {p!r} matches no run of this table; runs are: {names}")
        keep.update(hits)
    return [c for c in configs if c in keep]


class Expectation:
    """Builds the expected RunSettings of train.py commands on one dataset and GPU count
    (no pixels are decoded but the first image's, for its shape)."""

    def __init__(self, data, gpus_per_run):
        from dataflow import read_annotations
        self.data, self.gpus = os.path.abspath(data), gpus_per_run
        self.train, self.val = read_annotations(self.data, "train"), read_annotations(self.data, "val")
        first = os.path.join(self.data, self.train.files[0])
        image = cv2.imread(first, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise UserError(f"{first}: cannot be decoded as an image ({self.train.lines[0]})")
        self.image_shape = list(image.shape[:2])
        self._fingerprints = {}

    def fingerprint(self, holdout):
        if holdout not in self._fingerprints:
            self._fingerprints[holdout] = runrecord.dataset_fingerprint(self.train, self.val, holdout)
        return self._fingerprints[holdout]

    def settings(self, train_argv):
        """RunSettings of ``train.py <train_argv>``, from train.py's own parser, environment and settings
        (``runrecord.command``: they refuse unknown and abbreviated flags), with the dataset fingerprint
        of the annotations."""
        try:   # the machine assumed: this one, with the run's GPUs, TensorFlow's oneDNN on (tf_env.py)
            return command_settings(train_argv, Machine(gpus=self.gpus), self.fingerprint, len(self.train.wnids),
                                    self.image_shape)
        except SystemExit as e:
            if e.code:
                raise UserError("train.py refuses the options after -- (its message is above); "
                                "nothing was run") from None
            raise


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
    config: Config
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

    ``expectation``: an :class:`Expectation` of ``data``, to compare each run's
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
