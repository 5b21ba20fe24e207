"""Carry out the runs of a table over slots with a thread pool, one subprocess at a time per slot.

A *slot* is a list of GPU ids given to one run at a time (``CUDA_VISIBLE_DEVICES``),
or ``None`` for a CPU slot.  The pool has one worker per slot; a worker takes a free slot, trains and/or
evaluates one run in it (:func:`carry_out`), and gives the slot back.  A lock
file in each run folder keeps two scripts (Table 1 and Table 2 started side by
side) from training the same run at once: a run locked elsewhere is retried
after the others, every ``poll`` seconds.
"""
import collections
import fcntl
import os
import queue
import shlex
import signal
import subprocess
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass

import argtypes
import runrecord
from errors import UserError
from dataflow.builders import die_with_parent
from tables import runs as rs

LOCK = ".tables.lock"
BUSY = "busy"   # a task's answer when the run is locked by another process


def detect_gpus(env=None, smi="nvidia-smi"):
    """Visible GPU ids: from ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi -L``; [] for none."""
    env = os.environ if env is None else env
    if "CUDA_VISIBLE_DEVICES" in env:
        out = []
        for g in (g.strip() for g in env["CUDA_VISIBLE_DEVICES"].split(",")):
            if not g or g == "-1":  # CUDA stops at the first invalid id
                break
            out.append(g)
        return out
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(l for l in listing.splitlines() if l.startswith("GPU "))]


parse_gpus = argtypes.gpu_list   # ``--gpus`` value: "0,1,3" -> ["0", "1", "3"]; "none"/"cpu"/"" -> []


def make_slots(gpus, gpus_per_run=1, parallel=1):
    """A list of GPU-id lists (one per concurrent run), or ``parallel`` CPU slots (None).

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
    seconds: float = 0.0


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
    """Runs :class:`tables.runs.Run` s over ``slots``; see :meth:`run_all`."""

    def __init__(self, slots, log=print, poll=5.0):
        self.slots, self.poll = slots, poll
        self._log = log
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
                p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
                self._procs.add(p)
            try:
                return p.wait()
            finally:
                with self._lock:
                    self._procs.discard(p)

    def _task(self, run):
        """Lock the run's folder, then carry it out in a free slot; ``BUSY`` if locked elsewhere."""
        os.makedirs(run.logdir, exist_ok=True)
        lock = open(os.path.join(run.logdir, LOCK), "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            return BUSY
        try:
            slot = self._free.get()
            try:
                return carry_out(self, run, slot)
            finally:
                self._free.put(slot)
        except OSError as e:
            return Outcome("failed", message=f"{type(e).__name__}: {e}", log=run.train_log)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def run_all(self, runs):
        """Run everything; {name: Outcome}. Ctrl-C / SIGTERM stops the children and re-raises."""
        for s in self.slots:
            self._free.put(s)
        outcomes, waiting, retry = {}, set(), []
        pool = ThreadPoolExecutor(max_workers=len(self.slots))
        futures = {pool.submit(self._task, r): r for r in runs}
        try:
            while futures or retry:
                done, _ = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED) if futures else ((), ())
                for f in done:
                    run, out = futures.pop(f), f.result()
                    if out == BUSY:
                        if run.name not in waiting:
                            waiting.add(run.name)
                            self.log(f"wait     {run.name}: running in another process "
                                     f"(lock {show(os.path.join(run.logdir, LOCK))})")
                        retry.append((time.time() + self.poll, run))
                    else:
                        outcomes[run.name] = out
                        self._report(run, out)
                if not futures and retry:
                    time.sleep(max(0.0, min(t for t, _ in retry) - time.time()))
                due = [r for t, r in retry if t <= time.time()]
                retry = [(t, r) for t, r in retry if t > time.time()]
                futures.update({pool.submit(self._task, r): r for r in due})
        except BaseException:
            self.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        return outcomes

    def _report(self, run, out):
        if out.status == "ok" and out.did != "skipped":
            self.log(f"done     {run.name}: {out.did} in {out.seconds / 60:.1f} min; {show(run.eval_json)}")
        elif out.status == "ok":
            self.log(f"skip     {run.name}: finished; {show(run.eval_json)}")
        elif not self._stopping.is_set():
            lines = tail(out.log).rstrip()
            self.log(f"FAILED   {run.name}: {out.message}; log {show(out.log)}"
                     + ("\n    " + lines.replace("\n", "\n    ") if lines else ""))

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
    state, reason = rs.run_state(run)
    if state == rs.EVALUATED:
        return Outcome("ok", "skipped", reason)
    if state == rs.CONFLICT:   # the folder changed since the up-front check
        return Outcome("failed", message=reason, log=run.train_log)
    env = slot_env(slot)
    did = "evaluated"
    if state in rs.TO_TRAIN:
        ex.log(f"train    {run.name} on {slot_name(slot)} ({reason}); log {show(run.train_log)}")
        rc = ex.call(run.train_cmd, env, run.train_log)
        if rc is None:
            return Outcome("failed", message="stopped", log=run.train_log)
        if rc != 0:
            return Outcome("failed", message=f"train.py exited with status {rc}", log=run.train_log,
                           seconds=time.time() - t0)
        if not os.path.exists(os.path.join(run.logdir, runrecord.DONE)):
            return Outcome("failed", message="train.py exited 0 but wrote no done.json",
                           log=run.train_log, seconds=time.time() - t0)
        did = "trained"
    ex.log(f"evaluate {run.name} on {slot_name(slot)}; log {show(run.eval_log)}")
    rc = ex.call(run.eval_cmd, env, run.eval_log)
    if rc is None:
        return Outcome("failed", message="stopped", log=run.eval_log)
    problem = f"evaluate.py exited with status {rc}" if rc else runrecord.eval_problem(run.logdir)
    if problem:
        return Outcome("failed", message=problem, log=run.eval_log, seconds=time.time() - t0)
    return Outcome("ok", did, seconds=time.time() - t0)
