"""Where a run continues: the newest checkpoint that restores, and a stats.json to match.

Resuming derives the epoch from the checkpoint's global step (checkpoints are
written at epoch ends), not from stats.json: a kill between ModelSaver and the
JSON writer would otherwise train one epoch twice.
"""

import os
import shutil
import time

import runrecord
from errors import UserError


def resume_point(logdir, steps_per_epoch, *, restart=False, warn=print):
    """``(checkpoint prefix or None, global_step, starting_epoch)``.

    Every ``model-N`` on disk is tried, newest first; damaged ones are skipped with a
    warning (:func:`runrecord.latest_checkpoint`).  When checkpoints exist but none
    restores, training from step 0 needs ``restart=True``, which moves them (and the
    state file, done.json, eval.json) into ``<logdir>/discarded-<time>/``.
    """
    found = runrecord.latest_checkpoint(logdir, warn=warn)
    if found is None:
        damaged = runrecord.checkpoint_files(logdir)
        if damaged and not restart:
            names = ", ".join(f"{runrecord.CHECKPOINT_NAME}-{s}" for s in sorted(damaged))
            raise UserError(
                f"{logdir} holds checkpoints ({names}) but none can be restored; "
                "pass --restart to train from step 0 (they are moved aside, not deleted)"
            )
        if damaged:
            discard(logdir, [n for names in damaged.values() for n in names])
        return None, 0, 1
    prefix, step = found
    if restart:
        raise UserError(
            f"--restart: {prefix} restores; it only applies when no checkpoint does "
            "(choose another --logdir to start over)"
        )
    if step % steps_per_epoch:
        raise UserError(
            f"{prefix}: global step {step} is not at an epoch end of {steps_per_epoch} "
            "steps; the checkpoint was not written by this train.py with these settings"
        )
    return prefix, step, step // steps_per_epoch + 1


def discard(logdir, names):
    """Move ``names`` (plus the state file, done.json and eval.json) into a new subfolder."""
    folder = os.path.join(logdir, time.strftime("discarded-%Y%m%d-%H%M%S"))
    os.makedirs(folder)
    for name in list(names) + [runrecord.STATE_FILE, runrecord.DONE, runrecord.EVAL]:
        if os.path.exists(os.path.join(logdir, name)):
            shutil.move(os.path.join(logdir, name), os.path.join(folder, name))
    print(f"--restart: moved the unusable checkpoints to {folder}")


def trim_stats(logdir, global_step, last_epoch):
    """Drop stats.json entries written after the checkpoint a run resumes from, so that
    tensorpack's JSONWriter appends to a history without the lost epochs.

    If the last epoch before the checkpoint has no entry (killed between the checkpoint
    and the JSON write) a bare ``{epoch_num, global_step}`` entry is added, which is what
    JSONWriter needs to accept the history instead of moving it aside.
    """
    path = os.path.join(logdir, runrecord.STATS)
    if not os.path.exists(path):
        return
    try:
        history = runrecord.read_json(path)
    except UserError as e:  # e.g. truncated by a full disk; it is only the per-epoch history
        raise UserError(
            f"{e}; it holds only the per-epoch statistics, not the weights: move it aside "
            f"(mv {path} {path}.damaged) and re-run the same command to continue from the "
            "checkpoint"
        ) from None
    stats = [s for s in history if int(s.get("global_step", 0)) <= global_step]
    if last_epoch > 0 and (not stats or int(stats[-1]["epoch_num"]) != last_epoch):
        stats.append({"epoch_num": last_epoch, "global_step": global_step})
    runrecord.write_json(path, stats)
