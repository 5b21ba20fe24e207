"""train.py's training code, and the pieces of it that are worth testing on their own.

* :mod:`training.trainer`: train.py's body after its flags are parsed: this machine's checks, the
  data, the settings (``runrecord.command.resolve``), the logdir, tensorpack's config, the run.
* :mod:`training.machine`: this machine as TensorFlow sees it (visible GPUs, oneDNN, library builds).
* :mod:`training.resume`: the resume point (newest checkpoint that restores), stats.json.
* :mod:`training.session`: session config (unthrottled CPU threads, AMP, XLA) and creator.
* :mod:`training.devices`: trainer choice, the towers' input.
* :mod:`training.callbacks`: learning-rate schedule, validation trigger, resume check,
  a ModelSaver that stops on a failed save; :mod:`training.watch`: progress.json.

The flags, the environment and the settings are :mod:`runrecord.command`'s (no TensorFlow); the run
folder itself (settings.json, done.json, checkpoints, state) is :mod:`runrecord`.
"""
