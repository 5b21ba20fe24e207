"""Pieces of train.py that are worth testing on their own.

* :mod:`training.options`: flags, their checks, and the RunSettings they resolve to.
* :mod:`training.resume`: the resume point (newest checkpoint that restores), stats.json.
* :mod:`training.session`: session config (unthrottled CPU threads, AMP, XLA) and creator.
* :mod:`training.devices`: trainer choice, towers, per-tower batch.
* :mod:`training.callbacks`: learning-rate schedule, validation trigger, resume check,
  a ModelSaver that stops on a failed save.

The run folder itself (settings.json, done.json, checkpoints, state) is :mod:`runrecord`.
"""
