"""Where runs go: GPU groups (``CUDA_VISIBLE_DEVICES`` per run) or CPU slots.

A *slot* is a list of GPU ids given to one run at a time, or ``None`` for a CPU slot.
"""
import os
import subprocess

import argtypes
from errors import UserError


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
