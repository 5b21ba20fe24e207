"""Plan and run the trainings and evaluations behind a table, several at once.

Each run is two subprocesses in its log folder ``<logroot>/<name>``:
``train.py ... --logdir <logdir>`` (output to ``<logdir>/train.out``), then
``evaluate.py --load <logdir> ... --json <logdir>/eval.json`` (``<logdir>/eval.out``).

The state of a run is read from its folder (:func:`run_state`):

* ``finished``: ``done.json`` and an ``eval.json`` at least as new: skipped;
* ``evaluate``: ``done.json`` without a current ``eval.json``: only evaluated;
* ``train``: anything else: train.py is started, and resumes from the last
  checkpoint if there is one (train.py's own behaviour), then evaluated;
* ``conflict``: the folder holds a run these scripts finished with other
  settings (``tables_run.json``, written when training ends, differs): not
  touched, reported as a failure.  (train.py itself refuses to resume an
  unfinished run with other settings.)

Runs are spread over *slots* (:func:`make_slots`): a group of GPUs each
(``CUDA_VISIBLE_DEVICES`` set to the group), or, without GPUs, ``parallel``
CPU slots.  A lock file in each folder keeps two scripts (Table 1 and Table 2
started side by side) from training the same run at once.
"""
import collections
import fcntl
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import fileio
from errors import UserError

FINISHED, EVALUATE, TRAIN, CONFLICT = "finished", "evaluate", "train", "conflict"
RECORD = "tables_run.json"   # what the scripts trained this folder with
LOCK = ".tables.lock"
# train.py flags the scripts set for every run; passing them through is refused.
RESERVED_TRAIN_FLAGS = ("--data", "--depth", "--aug", "--batch", "--logdir", "--gpus")
# train.py flags that change speed, not results (its rundir.NOT_COMPARED): a finished run is
# reused whatever their values.
NEUTRAL_TRAIN_FLAGS = ("--threads", "--workers", "--val-every", "--val-batch", "--keep-checkpoints",
                       "--xla", "--data-format")
# files that identify a dataset for the record (small; the images are covered by train.py's check)
DATA_ID_FILES = ("wnids.txt", os.path.join("val", "val_annotations.txt"), "synthetic.json")


@dataclass
class Run:
    """One cell's training + evaluation (commands are argv lists without the GPU environment)."""
    name: str
    logdir: str
    train_cmd: list
    eval_cmd: list
    record: dict          # compared with <logdir>/tables_run.json: data, depth, aug, batch, train args

    @property
    def eval_json(self):
        return os.path.join(self.logdir, "eval.json")

    @property
    def train_log(self):
        return os.path.join(self.logdir, "train.out")

    @property
    def eval_log(self):
        return os.path.join(self.logdir, "eval.out")


@dataclass
class Outcome:
    """What happened to a run: ``ok`` (with ``did`` = skipped/evaluated/trained) or ``failed``."""
    status: str
    did: str = ""
    message: str = ""
    log: str = ""
    seconds: float = 0.0


def check_passthrough(train_args):
    """Refuse pass-through flags that the scripts set per run (UserError)."""
    for a in train_args:
        flag = a.split("=", 1)[0]
        if flag in RESERVED_TRAIN_FLAGS:
            hint = " (use --gpus-per-run for GPUs per run)" if flag == "--gpus" else ""
            raise UserError(f"{flag} is set by the table script for each run and cannot be passed to train.py{hint}")


def _semantic_args(train_args):
    """Pass-through args as {flag: value(s)} without the speed-only flags, independent of order.

    ``--epochs 2 --lr-step-epochs=1`` -> ``{"--epochs": "2", "--lr-step-epochs": "1"}``; a flag
    without value maps to ``[]``; the last occurrence wins, as in argparse.
    """
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
    data = os.path.abspath(data)
    ident = data_id(data)
    runs = []
    for c in configs:
        logdir = os.path.join(logroot, c.name)
        train = [python, os.path.join(repo, "train.py"), "--data", data, "--depth", str(c.depth),
                 "--aug", c.aug, "--batch", str(c.batch), "--logdir", logdir]
        if gpus_per_run:
            train += ["--gpus", str(gpus_per_run)]
        train += list(train_args)
        ev = [python, os.path.join(repo, "evaluate.py"), "--load", logdir, "--data", data,
              "--json", os.path.join(logdir, "eval.json")]
        record = {"data_id": ident, "depth": c.depth, "aug": c.aug, "batch": c.batch,
                  "train_args": _semantic_args(train_args)}
        runs.append(Run(c.name, logdir, train, ev, record))
    return runs


def _mtime(path):
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return None


def _valid_json(path):
    try:
        with open(path) as f:
            json.load(f)
        return True
    except (OSError, ValueError):
        return False


def run_state(run):
    """(state, reason) of a run from the files in its log folder; see the module docstring."""
    rec_path = os.path.join(run.logdir, RECORD)
    if os.path.exists(rec_path):
        try:
            with open(rec_path) as f:
                old = json.load(f)
        except (OSError, ValueError):
            old = None
        if old != run.record:
            old = old if isinstance(old, dict) else {}
            diff = "; ".join(f"{k} was {old.get(k)!r}, now {v!r}" for k, v in run.record.items()
                             if old.get(k) != v)
            return CONFLICT, (f"{run.logdir} holds a run finished with other settings ({diff}); "
                              f"use another --logroot or remove that folder")
    done = _mtime(os.path.join(run.logdir, "done.json"))
    if done is None:
        started = os.path.exists(os.path.join(run.logdir, "checkpoint"))
        return TRAIN, "resuming from its last checkpoint" if started else "not trained yet"
    ev = _mtime(run.eval_json)
    if ev is None:
        return EVALUATE, "trained, not evaluated"
    if ev < done:
        return EVALUATE, "eval.json older than done.json"
    if not _valid_json(run.eval_json):
        return EVALUATE, "eval.json unreadable"
    return FINISHED, "finished"


def detect_gpus(env=None, smi="nvidia-smi"):
    """Visible GPU ids: from ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi -L``; [] for none."""
    env = os.environ if env is None else env
    if "CUDA_VISIBLE_DEVICES" in env:
        ids = [g.strip() for g in env["CUDA_VISIBLE_DEVICES"].split(",")]
        out = []
        for g in ids:
            if not g or g == "-1":  # CUDA stops at the first invalid id
                break
            out.append(g)
        return out
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in listing.splitlines() if l.startswith("GPU "))]


def parse_gpus(text):
    """``--gpus`` value: "0,1,3" -> ["0", "1", "3"]; "none"/"cpu"/"" -> []."""
    if text.strip().lower() in ("", "none", "cpu"):
        return []
    return [g.strip() for g in text.split(",") if g.strip()]


def make_slots(gpus, gpus_per_run=1, parallel=1):
    """Where runs go: a list of GPU-id lists (one per concurrent run), or ``parallel`` CPU slots (None).

    >>> make_slots(["0", "1", "2", "3"], 2)
    [['0', '1'], ['2', '3']]
    >>> make_slots([], parallel=2)
    [None, None]
    """
    if gpus:
        if gpus_per_run < 1:
            raise UserError(f"--gpus-per-run must be at least 1, got {gpus_per_run}")
        if gpus_per_run > len(gpus):
            raise UserError(f"--gpus-per-run {gpus_per_run} but only {len(gpus)} GPU(s) available: {','.join(gpus)}")
        return [gpus[i:i + gpus_per_run] for i in range(0, len(gpus) - gpus_per_run + 1, gpus_per_run)]
    if parallel < 1:
        raise UserError(f"--parallel must be at least 1, got {parallel}")
    return [None] * parallel


def slot_env(slot, base=None):
    """The environment of a subprocess in ``slot``: its GPUs, or none at all for a CPU slot."""
    env = dict(os.environ if base is None else base)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(slot) if slot else ""
    return env


def show(path):
    """``path`` relative to the current folder when it is inside it, else as given."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def slot_name(slot):
    return f"GPU {','.join(slot)}" if slot else "CPU"


def describe(run, state, slot):
    """Shell lines that would carry out ``run`` in ``slot`` (for --dry-run)."""
    env = f"CUDA_VISIBLE_DEVICES={','.join(slot) if slot else ''}"
    lines = []
    if state == TRAIN:
        lines.append(f"{env} {shlex.join(run.train_cmd)} >> {run.train_log} 2>&1")
    if state in (TRAIN, EVALUATE):
        lines.append(f"{env} {shlex.join(run.eval_cmd)} >> {run.eval_log} 2>&1")
    return lines


def tail(path, n=5):
    """The last ``n`` lines of a log file ('' if unreadable)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(collections.deque(f, maxlen=n))
    except OSError:
        return ""


class Executor:
    """Runs :class:`Run` s over slots with one worker thread per slot; see :meth:`run_all`."""

    def __init__(self, slots, log=print):
        self.slots = slots
        self._log = log
        self._print_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._procs = set()
        self._stopping = threading.Event()

    def log(self, msg):
        with self._print_lock:
            self._log(f"[{time.strftime('%H:%M:%S')}] {msg}")

    # -- one subprocess -------------------------------------------------
    def _call(self, cmd, env, log_path):
        """Run ``cmd`` with output appended to ``log_path``; its exit status (None if stopped)."""
        with open(log_path, "a") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(cmd)}\n")
            out.flush()
            with self._queue_lock:
                if self._stopping.is_set():
                    return None
                p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL)
                self._procs.add(p)
            try:
                return p.wait()
            finally:
                with self._queue_lock:
                    self._procs.discard(p)

    # -- one run --------------------------------------------------------
    def _do(self, run, slot):
        t0 = time.time()
        state, reason = run_state(run)
        if state == FINISHED:
            return Outcome("ok", "skipped", reason)
        if state == CONFLICT:
            return Outcome("failed", message=reason, log=os.path.join(run.logdir, RECORD))
        env = slot_env(slot)
        did = "evaluated"
        if state == TRAIN:
            self.log(f"train    {run.name} on {slot_name(slot)} ({reason}); log {show(run.train_log)}")
            rc = self._call(run.train_cmd, env, run.train_log)
            if rc is None:
                return Outcome("failed", message="stopped", log=run.train_log)
            if rc != 0:
                return Outcome("failed", message=f"train.py exited with status {rc}", log=run.train_log,
                               seconds=time.time() - t0)
            if not os.path.exists(os.path.join(run.logdir, "done.json")):
                return Outcome("failed", message="train.py exited 0 but wrote no done.json",
                               log=run.train_log, seconds=time.time() - t0)
            # recorded once finished: an unfinished run is guarded by train.py's own settings check
            fileio.write_json(os.path.join(run.logdir, RECORD), run.record)
            did = "trained"
        self.log(f"evaluate {run.name} on {slot_name(slot)}; log {show(run.eval_log)}")
        rc = self._call(run.eval_cmd, env, run.eval_log)
        if rc is None:
            return Outcome("failed", message="stopped", log=run.eval_log)
        if rc != 0 or not _valid_json(run.eval_json):
            why = f"evaluate.py exited with status {rc}" if rc else "evaluate.py wrote no readable eval.json"
            return Outcome("failed", message=why, log=run.eval_log, seconds=time.time() - t0)
        return Outcome("ok", did, seconds=time.time() - t0)

    def _locked_do(self, run, slot, lock_file):
        try:
            return self._do(run, slot)
        except OSError as e:
            return Outcome("failed", message=f"{type(e).__name__}: {e}", log=run.train_log)
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)
            lock_file.close()

    def _next(self, queue):
        """Pop the next run whose folder is not locked by another process; (run, open lock) or None.

        Runs locked elsewhere go to the back of the queue; when only such runs are left,
        wait for the first one.
        """
        with self._queue_lock:
            for _ in range(len(queue)):
                if self._stopping.is_set() or not queue:
                    return None
                run = queue.popleft()
                os.makedirs(run.logdir, exist_ok=True)
                f = open(os.path.join(run.logdir, LOCK), "w")
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return run, f
                except BlockingIOError:
                    f.close()
                    queue.append(run)
            if not queue or self._stopping.is_set():
                return None
            run = queue.popleft()
        self.log(f"wait     {run.name}: running in another process (lock {show(os.path.join(run.logdir, LOCK))})")
        f = open(os.path.join(run.logdir, LOCK), "w")
        while not self._stopping.is_set():
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return run, f
            except BlockingIOError:
                time.sleep(5)
        f.close()
        return None

    def _worker(self, slot, queue, outcomes):
        while True:
            got = self._next(queue)
            if got is None:
                return
            run, lock_file = got
            out = self._locked_do(run, slot, lock_file)
            outcomes[run.name] = out
            if out.status == "ok" and out.did != "skipped":
                self.log(f"done     {run.name}: {out.did} in {out.seconds / 60:.1f} min; {show(run.eval_json)}")
            elif out.status == "ok":
                self.log(f"skip     {run.name}: finished; {show(run.eval_json)}")
            elif not self._stopping.is_set():
                lines = tail(out.log).rstrip()
                self.log(f"FAILED   {run.name}: {out.message}; log {show(out.log)}"
                         + ("\n    " + lines.replace("\n", "\n    ") if lines else ""))

    def run_all(self, runs):
        """Run everything; {name: Outcome}. Ctrl-C / SIGTERM stops the children and re-raises."""
        queue = collections.deque(runs)
        outcomes = {}
        workers = [threading.Thread(target=self._worker, args=(s, queue, outcomes), daemon=True)
                   for s in self.slots[:max(1, len(runs))]]
        for w in workers:
            w.start()
        try:
            while any(w.is_alive() for w in workers):
                for w in workers:
                    w.join(timeout=0.5)
        except BaseException:
            self.stop()
            for w in workers:
                w.join(timeout=60)
            raise
        return outcomes

    def stop(self):
        """Terminate the subprocesses this executor started (SIGTERM, then SIGKILL after 30 s)."""
        with self._queue_lock:
            self._stopping.set()
            procs = list(self._procs)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.time() + 30
        for p in procs:
            try:
                p.wait(timeout=max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
