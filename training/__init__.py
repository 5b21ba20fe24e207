"""Pieces of train.py that are worth testing on their own.

* :mod:`training.session`: session config (unthrottled CPU threads, AMP, XLA) and creator.
* :mod:`training.devices`: trainer choice, per-tower / per-rank batch, Horovod.
* :mod:`training.rundir`: settings.json, resume point, stats.json, done.json.
* :mod:`training.callbacks`: learning-rate schedule, validation trigger, resume check.
"""
