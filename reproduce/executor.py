"""Carry out a table's runs over slots, one subprocess at a time per slot: a slot is the GPU ids of one
run (``CUDA_VISIBLE_DEVICES``) or None for a CPU slot.  One table script per log root (reproduce.__main__)."""

import collections
import itertools
import os
import queue
import shlex
import signal
import subprocess
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass

import runrecord
from errors import UserError
from procs import die_with_parent
from runrecord.machine import nvidia_smi
from reproduce import runs as rs

LOCK = ".tables.lock"  # in the log root: held by the one table script that runs there


def detect_gpus(env=None, smi="nvidia-smi"):
    """Visible GPU ids: from ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi``'s; [] for none.
    A ``CUDA_VISIBLE_DEVICES`` entry that is not what ``--gpu-ids`` takes (ids; CUDA's GPU-/MIG- UUIDs too)
    is a UserError: a typo there would plan every run on a GPU that does not exist."""
    env = os.environ if env is None else env
    if "CUDA_VISIBLE_DEVICES" in env:  # CUDA stops at the first invalid id
        text = env["CUDA_VISIBLE_DEVICES"]
        gpus = list(
            itertools.takewhile(lambda g: g not in ("", "-1"), (g.strip() for g in text.split(",")))
        )
        bad = [g for g in gpus if not (g.isdigit() or g.startswith(("GPU-", "MIG-")))]
        if bad:
            raise UserError(
                f"CUDA_VISIBLE_DEVICES={text!r}: {bad[0]!r} is not a GPU id (expected ids like "
                "0,1,3, or empty or -1 for none); correct it, or give --gpu-ids"
            )
        return gpus
    return [g["index"] for g in nvidia_smi(smi)]


def make_slots(gpus, gpus_per_run=1, parallel=1, runs_per_gpu=1):
    """GPU-id lists of ``gpus_per_run`` each (an odd GPU stays idle), each group ``runs_per_gpu`` times
    (packing: the first slots are distinct groups, so runs spread over the GPUs first), or ``parallel``
    CPU slots (None)."""
    if gpus:
        if gpus_per_run > len(gpus):
            raise UserError(
                f"--gpus-per-run {gpus_per_run} but only {len(gpus)} GPU(s) available: {','.join(gpus)}"
            )
        groups = [
            gpus[i : i + gpus_per_run] for i in range(0, len(gpus) - gpus_per_run + 1, gpus_per_run)
        ]
        return [g for _ in range(runs_per_gpu) for g in groups]
    if runs_per_gpu > 1:
        raise UserError(
            f"--runs-per-gpu {runs_per_gpu}: no GPU is used; use --parallel on a machine without GPUs"
        )
    return [None] * parallel


def slot_env(slot, base=None):
    """The environment of a subprocess in ``slot``: its GPUs, or none at all for a CPU slot."""
    env = dict(os.environ if base is None else base)
    env["CUDA_VISIBLE_DEVICES"] = ",".join(slot) if slot else ""
    return env


def slot_name(slot):
    return f"GPU {','.join(slot)}" if slot else "CPU"


def env_prefix(slot):
    """``CUDA_VISIBLE_DEVICES=...`` as a shell prefix (for --dry-run)."""
    return f"CUDA_VISIBLE_DEVICES={','.join(slot) if slot else ''}"


@dataclass
class Outcome:
    """What happened to a run: ``ok`` (with ``did`` = skipped/evaluated/trained) or ``failed``."""

    status: str
    did: str = ""
    message: str = ""
    log: str = ""
    seconds: float = 0.0  # train and evaluate, wall
    train_seconds: float = 0.0  # train.py alone (0: not trained in this invocation)
    eval_seconds: float = 0.0  # evaluate.py alone


def show(path):
    """``path`` relative to the current folder when it is inside it, else as given."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def tail(path, n=5):
    """The last ``n`` lines of a log file ('' if unreadable)."""
    try:
        with open(path, errors="replace") as f:
            return "".join(collections.deque(f, maxlen=n))
    except OSError:
        return ""


class Executor:
    """Runs :class:`reproduce.runs.Run` s over ``slots``: a worker per slot takes the next run and a free slot."""

    def __init__(self, slots, log=print, watch=None, progress_every=0):
        """``watch``: a :class:`reproduce.progress.Watch` told of each run's phases, whose line is logged
        every ``progress_every`` seconds (0: never) and with each finished run."""
        self.slots, self._log, self.watch, self.progress_every = slots, log, watch, progress_every
        self._lock = threading.Lock()
        self._procs = set()
        self._stopping = threading.Event()
        self._free = queue.Queue()

    def log(self, msg):
        with self._lock:
            self._log(f"[{time.strftime('%H:%M:%S')}] {msg}")

    def call(self, cmd, env, log_path):
        """Run ``cmd`` with output appended to ``log_path``; its exit status (None if stopped)."""
        with open(log_path, "a") as out:
            out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(cmd)}\n")
            out.flush()
            with self._lock:
                if self._stopping.is_set():
                    return None
                # the child gets SIGKILL when this script dies, even by kill -9: no orphan train.py
                # keeps training (and holding its logdir's lock) after the table script is gone
                p = subprocess.Popen(
                    cmd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=die_with_parent,
                )
                self._procs.add(p)
            try:
                return p.wait()
            finally:
                with self._lock:
                    self._procs.discard(p)

    def phase(self, run, phase):
        """``run`` enters ``phase`` ("train" or "evaluate"), for the progress line."""
        if self.watch is not None:
            with self._lock:
                self.watch.started(run, phase)

    def _task(self, run):
        slot = self._free.get()
        try:
            os.makedirs(run.logdir, exist_ok=True)
            return carry_out(self, run, slot)
        except OSError as e:
            return Outcome("failed", message=f"{type(e).__name__}: {e}", log=run.train_log)
        finally:
            self._free.put(slot)

    def run_all(self, runs):
        """Run everything; {name: Outcome}. Ctrl-C / SIGTERM stops the children and re-raises."""
        for s in self.slots:
            self._free.put(s)
        outcomes = {}
        pool = ThreadPoolExecutor(max_workers=len(self.slots))
        futures = {pool.submit(self._task, r): r for r in runs}
        shown = time.time()
        try:
            while futures:
                done, _ = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
                ran = []
                for f in done:
                    run = futures.pop(f)
                    ran.append(run)
                    outcomes[run.name] = f.result()
                    if self.watch is not None:
                        with self._lock:
                            self.watch.finished(run, outcomes[run.name])
                    self._report(run, outcomes[run.name])
                worked = any(
                    outcomes[r.name].did != "skipped" for r in ran
                )  # not after each skipped run
                if self.watch is not None and (
                    worked or self.progress_every and time.time() - shown >= self.progress_every
                ):
                    shown = time.time()
                    with self._lock:
                        line = self.watch.line() if futures else None
                    if line:
                        self.log(line)
        except BaseException:
            self.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        return outcomes

    def _report(self, run, out):
        if out.status == "ok" and out.did != "skipped":
            took = (
                f"trained in {out.train_seconds / 60:.1f} min, evaluated in {out.eval_seconds / 60:.1f} min"
                if out.did == "trained"
                else f"evaluated in {out.eval_seconds / 60:.1f} min"
            )
            self.log(f"done     {run.name}: {took}; {show(run.eval_json)}")
        elif out.status == "ok":
            self.log(f"skip     {run.name}: finished; {show(run.eval_json)}")
        elif not self._stopping.is_set():
            lines = tail(out.log).rstrip()
            self.log(
                f"FAILED   {run.name}: {out.message}; log {show(out.log)}"
                + ("\n    " + lines.replace("\n", "\n    ") if lines else "")
            )

    def stop(self):
        """Terminate the subprocesses this executor started (SIGTERM, then SIGKILL after 30 s)."""
        with self._lock:
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


def carry_out(ex, run, slot):
    """Train (if needed) and evaluate one run in ``slot``, through ``ex.call``; its :class:`Outcome`."""
    t0 = time.time()
    state, reason, _ = rs.run_state(run)
    if state == rs.EVALUATED:
        return Outcome("ok", "skipped", reason)
    if state == rs.CONFLICT:  # the folder changed since the up-front check
        return Outcome("failed", message=reason, log=run.train_log)
    env = slot_env(slot)
    did = "evaluated"
    if state in rs.TO_TRAIN:
        ex.log(f"train    {run.name} on {slot_name(slot)} ({reason}); log {show(run.train_log)}")
        ex.phase(run, "train")
        rc = ex.call(run.train_cmd, env, run.train_log)
        if rc is None:
            return Outcome("failed", message="stopped", log=run.train_log)
        if rc != 0:
            return Outcome(
                "failed",
                message=f"train.py exited with status {rc}",
                log=run.train_log,
                seconds=time.time() - t0,
            )
        if not os.path.exists(os.path.join(run.logdir, runrecord.DONE)):
            return Outcome(
                "failed",
                message="train.py exited 0 but wrote no done.json",
                log=run.train_log,
                seconds=time.time() - t0,
            )
        did = "trained"
    t1 = time.time()
    ex.log(f"evaluate {run.name} on {slot_name(slot)}; log {show(run.eval_log)}")
    ex.phase(run, "evaluate")
    rc = ex.call(run.eval_cmd, env, run.eval_log)
    if rc is None:
        return Outcome("failed", message="stopped", log=run.eval_log)
    problem = (
        f"evaluate.py exited with status {rc}" if rc else runrecord.read_evaluation(run.logdir)[1]
    )
    if problem:
        return Outcome("failed", message=problem, log=run.eval_log, seconds=time.time() - t0)
    t2 = time.time()
    return Outcome(
        "ok",
        did,
        seconds=t2 - t0,
        train_seconds=t1 - t0 if did == "trained" else 0.0,
        eval_seconds=t2 - t1,
    )
