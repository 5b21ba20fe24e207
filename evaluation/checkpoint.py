"""Find the checkpoint behind ``--load`` and the model settings saved beside it.

``--load`` may be a checkpoint prefix (``train_log/run/model-1234``, the files
being ``model-1234.index`` and ``model-1234.data-*``), tensorpack's
``checkpoint`` state file, or the run's folder (logdir).  ``settings.json``
(written by train.py) is looked for in the folder of the checkpoint.

No TensorFlow here except :func:`checkpoint_fc_classes`, which imports it.
"""
import json
import os
import re

from errors import UserError

SETTINGS_FILE = "settings.json"   # written by train.py beside its checkpoints
STATE_FILE = "checkpoint"          # tensorpack/TensorFlow checkpoint state file


def _latest_from_state(state_path):
    """The newest checkpoint prefix named in a ``checkpoint`` state file."""
    try:
        with open(state_path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UserError(f"{state_path}: cannot read the checkpoint state file ({e.strerror})") from None
    match = re.search(r'^model_checkpoint_path:\s*"(.*)"\s*$', text, re.MULTILINE)
    if not match:
        raise UserError(f"{state_path}: not a checkpoint state file (no model_checkpoint_path line)")
    folder = os.path.dirname(os.path.abspath(state_path))
    named = match.group(1)
    # The file of that name beside the state file comes first: TensorFlow writes absolute paths,
    # which point to the old place when a run folder was moved or copied.
    for candidate in (os.path.join(folder, os.path.basename(named)), os.path.join(folder, named)):
        if os.path.isfile(candidate + ".index"):
            return candidate
    raise UserError(f"{state_path}: names checkpoint {named}, but {named}.index does not exist")


def resolve_checkpoint(load):
    """``--load`` (prefix, state file or folder) -> absolute checkpoint prefix; UserError naming the path if absent."""
    if os.path.isdir(load):
        state = os.path.join(load, STATE_FILE)
        if not os.path.isfile(state):
            raise UserError(f"{load}: folder has no '{STATE_FILE}' file (is it a training logdir?)")
        return _latest_from_state(state)
    if os.path.basename(load) == STATE_FILE:
        if not os.path.isfile(load):
            raise UserError(f"{load}: checkpoint state file does not exist")
        return _latest_from_state(load)
    prefix = load[:-len(".index")] if load.endswith(".index") else load
    if os.path.isfile(prefix + ".index"):
        return os.path.abspath(prefix)
    raise UserError(f"{load}: checkpoint does not exist (expected {prefix}.index, a '{STATE_FILE}' file "
                    f"or a training logdir)")


def load_run_settings(prefix):
    """``(settings dict, path)`` of the settings.json beside checkpoint ``prefix``, or ``(None, path)`` if absent."""
    path = os.path.join(os.path.dirname(prefix), SETTINGS_FILE)
    if not os.path.isfile(path):
        return None, path
    try:
        with open(path, encoding="utf-8") as f:
            settings = json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read the run's settings ({e})") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("model"), dict):
        raise UserError(f"{path}: has no \"model\" object (expected train.py's settings.json)")
    return settings, path


def checkpoint_fc_classes(prefix):
    """Number of classes K of the FC layer stored in a checkpoint.

    The FC weight ``(C, K)`` is the network's only 2-D variable (its optimizer
    slots share its shape).  Returns None when the 2-D variables disagree on K.
    """
    import tensorflow as tf
    try:
        shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    except Exception as e:   # a truncated or foreign file: TF raises various errors
        raise UserError(f"{prefix}: cannot read the checkpoint ({str(e).splitlines()[0]})") from None
    classes = {int(shape[1]) for shape in shapes.values() if len(shape) == 2}
    return classes.pop() if len(classes) == 1 else None
