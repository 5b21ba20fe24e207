"""The state of a run's logdir: settings.json, checkpoints, stats.json, done.json.

A logdir holds one run. Re-running the same command continues it from the
last checkpoint; a command with different settings is refused, naming the
keys that differ. Only what changes the result is compared: the model, the
training settings except those in ``NOT_COMPARED``, and the dataset's
fingerprint (so a dataset moved to another path is accepted).

Resuming derives the epoch from the checkpoint's global step (checkpoints are
written at epoch ends), not from stats.json: a kill between ModelSaver and
the JSON writer would otherwise train one epoch twice.
"""
import hashlib
import json
import os
import subprocess

import numpy as np

import fileio
from errors import UserError

SETTINGS = "settings.json"
DONE = "done.json"
STATS = "stats.json"   # tensorpack's JSONWriter.FILENAME

# training settings that do not change what is learned, so may differ on resume; the
# device count may change as long as the per-tower batch (compared) stays the same
NOT_COMPARED = ("workers", "threads", "val_every", "val_batch", "keep_checkpoints", "xla",
                "data_format", "gpus", "horovod_size")


def write_json(path, obj):
    """Write JSON atomically and fsync'ed (fileio), so a power cut leaves the old or the new file."""
    fileio.write_json(path, obj, sort_keys=True)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read JSON ({e})") from None


def git_commit(repo_dir=None):
    """The commit of the code being run (``git rev-parse HEAD``), or None outside a git checkout."""
    repo_dir = repo_dir or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def dataset_fingerprint(train, val):
    """What identifies a dataset independently of its path: sizes and a hash of
    class order, file names, labels and boxes of both splits (not the pixels)."""
    h = hashlib.sha1()
    for split in (train, val):
        h.update("\n".join(split.wnids).encode())
        h.update("\n".join(split.files).encode())
        h.update(np.ascontiguousarray(split.labels, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(split.boxes, dtype=np.int64).tobytes())
    return {"num_classes": int(train.num_classes), "image_shape": list(train.image_shape),
            "train_images": len(train.labels), "val_images": len(val.labels), "sha1": h.hexdigest()}


def _normalise(obj):
    return json.loads(json.dumps(obj))   # tuples -> lists, numpy scalars refused early


def settings_differences(old, new):
    """Keys (dotted) whose values differ between two settings dicts, with both values."""
    diffs = []
    for section in ("model", "dataset", "train"):
        a, b = _normalise(old.get(section, {})), _normalise(new.get(section, {}))
        for key in sorted(set(a) | set(b)):
            if section == "train" and key in NOT_COMPARED:
                continue
            if a.get(key, "<absent>") != b.get(key, "<absent>"):
                diffs.append(f"{section}.{key}: {a.get(key, '<absent>')} -> {b.get(key, '<absent>')}")
    return diffs


def latest_checkpoint(logdir):
    """``(prefix, global_step)`` of the newest checkpoint in ``logdir``, or None."""
    import tf_env  # noqa: F401
    import tensorflow as tf
    prefix = tf.train.latest_checkpoint(logdir)
    if prefix is None:
        return None
    return prefix, int(tf.train.load_variable(prefix, "global_step"))


def check_logdir(logdir, settings):
    """Refuse a logdir that holds a different run.

    Returns "new" (nothing there yet), "resume" (same settings, not finished) or
    "done" (same settings, done.json present). Raises UserError naming the
    differing keys otherwise.
    """
    path = os.path.join(logdir, SETTINGS)
    if not os.path.exists(path):
        leftovers = [f for f in ("checkpoint", STATS, DONE) if os.path.exists(os.path.join(logdir, f))]
        if leftovers:
            raise UserError(f"{logdir} holds a run ({', '.join(leftovers)}) but no {SETTINGS}: "
                            "refusing to mix it with this one; choose another --logdir")
        return "new"
    diffs = settings_differences(read_json(path), settings)
    if diffs:
        raise UserError(f"{logdir} holds a run with different settings ({path}):\n  "
                        + "\n  ".join(diffs)
                        + "\nRe-run it with its own settings, or choose another --logdir")
    return "done" if os.path.exists(os.path.join(logdir, DONE)) else "resume"


def resume_point(logdir, steps_per_epoch):
    """Where to continue: ``(checkpoint_prefix or None, global_step, starting_epoch)``.

    Checkpoints are written at the end of epochs, so ``global_step`` is a
    multiple of ``steps_per_epoch`` and the next epoch is ``step // spe + 1``.
    """
    found = latest_checkpoint(logdir)
    if found is None:
        return None, 0, 1
    prefix, step = found
    if step % steps_per_epoch:
        raise UserError(f"{prefix}: global step {step} is not at an epoch end of {steps_per_epoch} "
                        "steps; the checkpoint was not written by this train.py with these settings")
    return prefix, step, step // steps_per_epoch + 1


def trim_stats(logdir, global_step, last_epoch):
    """Drop stats.json entries written after the checkpoint we resume from, so that
    tensorpack's JSONWriter appends to a history without the lost epoch.

    If the last epoch before the checkpoint has no entry (killed between the
    checkpoint and the JSON write) a bare ``{epoch_num, global_step}`` entry is added,
    which is what JSONWriter needs to accept the history instead of moving it aside.
    """
    path = os.path.join(logdir, STATS)
    if not os.path.exists(path):
        return
    stats = [s for s in read_json(path) if int(s.get("global_step", 0)) <= global_step]
    if last_epoch > 0 and (not stats or int(stats[-1]["epoch_num"]) != last_epoch):
        stats.append({"epoch_num": last_epoch, "global_step": global_step})
    write_json(path, stats)
