"""Checkpoints of a training run: find them, check that they restore, read their shapes and
check them against the model settings.

A checkpoint is ``<logdir>/model-N.index`` plus ``model-N.data-*`` (tensorpack's
ModelSaver, N = global step); TensorFlow's ``checkpoint`` state file names the
newest.  TensorFlow (and ``models``, for the shape check) is imported only by the
functions that read a checkpoint.
"""

import os
import re

from errors import UserError

STATE_FILE = "checkpoint"  # TensorFlow's checkpoint state file
CHECKPOINT_NAME = "model"  # tensorpack ModelSaver's prefix: model-<global step>

_CHECKPOINT_FILE = re.compile(rf"^{CHECKPOINT_NAME}-(\d+)\.(index|data-\d+-of-\d+)$")


def checkpoint_files(logdir):
    """``{step: [file names]}`` of every ``model-N.*`` checkpoint file in ``logdir``."""
    found = {}
    for name in sorted(os.listdir(logdir)) if os.path.isdir(logdir) else []:
        match = _CHECKPOINT_FILE.match(name)
        if match:
            found.setdefault(int(match.group(1)), []).append(name)
    return found


def checkpoint_problem(prefix):
    """None if checkpoint ``prefix`` restores, else why not (one line).

    Reads every tensor: TensorFlow checks each one's length and CRC32C against the
    .index, so a missing, truncated or overwritten .data file is found here, not halfway
    through a restore.
    """
    if not os.path.isfile(prefix + ".index"):
        return f"{os.path.basename(prefix)}.index is missing"
    import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
    import tensorflow as tf

    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except Exception as e:  # DataLossError, NotFoundError, OutOfRangeError... all mean "damaged"
        return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return None


def checkpoint_step(prefix):
    """The ``global_step`` stored in a checkpoint."""
    import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
    import tensorflow as tf

    return int(tf.train.load_variable(prefix, "global_step"))


def latest_checkpoint(logdir, warn=print):
    """``(prefix, global_step)`` of the newest checkpoint in ``logdir`` that restores, or None.

    Every ``model-N.*`` on disk is considered, newest first, whatever the ``checkpoint``
    state file says; each damaged one is skipped with ``warn("<prefix>: skipped ...")``.
    """
    for step in sorted(checkpoint_files(logdir), reverse=True):
        prefix = os.path.join(os.path.abspath(logdir), f"{CHECKPOINT_NAME}-{step}")
        problem = checkpoint_problem(prefix)
        if problem is None:
            return prefix, checkpoint_step(prefix)
        warn(f"{prefix}: skipped, it cannot be restored ({problem})")
    return None


def _latest_from_state(state_path):
    """The newest checkpoint prefix named in a ``checkpoint`` state file."""
    try:
        with open(state_path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise UserError(
            f"{state_path}: cannot read the checkpoint state file ({e.strerror})"
        ) from None
    match = re.search(r'^model_checkpoint_path:\s*"(.*)"\s*$', text, re.MULTILINE)
    if not match:
        raise UserError(
            f"{state_path}: not a checkpoint state file (no model_checkpoint_path line)"
        )
    folder = os.path.dirname(os.path.abspath(state_path))
    named = match.group(1)
    # the file of that name beside the state file first: TensorFlow may write absolute
    # paths, which point to the old place when a run folder was moved or copied
    for candidate in (os.path.join(folder, os.path.basename(named)), os.path.join(folder, named)):
        if os.path.isfile(candidate + ".index"):
            return candidate
    raise UserError(f"{state_path}: names checkpoint {named}, but {named}.index does not exist")


def resolve_checkpoint(load):
    """``--load`` -> absolute checkpoint prefix; UserError naming the path if there is none.

    ``load``: a prefix (``run/model-1234``, or its ``.index``), a ``checkpoint`` state file, or
    a logdir (its state file, else its newest ``model-N.index``).  Finds, does not verify:
    see :func:`checkpoint_problem`.
    """
    if os.path.isdir(load):
        state = os.path.join(load, STATE_FILE)
        if os.path.isfile(state):
            return _latest_from_state(state)
        steps = [
            s
            for s, names in checkpoint_files(load).items()
            if f"{CHECKPOINT_NAME}-{s}.index" in names
        ]
        if not steps:
            raise UserError(
                f"{load}: folder holds no checkpoint (no '{STATE_FILE}' file, no "
                f"{CHECKPOINT_NAME}-N.index; is it a training logdir?)"
            )
        return os.path.join(os.path.abspath(load), f"{CHECKPOINT_NAME}-{max(steps)}")
    if os.path.basename(load) == STATE_FILE:
        if not os.path.isfile(load):
            raise UserError(f"{load}: checkpoint state file does not exist")
        return _latest_from_state(load)
    prefix = load[: -len(".index")] if load.endswith(".index") else load
    if os.path.isfile(prefix + ".index"):
        return os.path.abspath(prefix)
    raise UserError(
        f"{load}: checkpoint does not exist (expected {prefix}.index, a '{STATE_FILE}' file "
        f"or a training logdir)"
    )


def checkpoint_shapes(prefix):
    """``{variable name: shape list}`` stored in checkpoint ``prefix`` (the one reader of its shapes);
    a UserError naming it if it cannot be read."""
    import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
    import tensorflow as tf

    try:
        shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    except Exception as e:  # a truncated or foreign file: TF raises various errors
        raise unreadable(prefix, e, "cannot read the checkpoint") from None
    return {name: list(shape) for name, shape in shapes.items()}


def checkpoint_fc_classes(prefix):
    """Number of classes K of the FC layer in a checkpoint: the network's only 2-D variable
    ``(C, K)`` (its optimizer slots share the shape).  None when the 2-D variables disagree."""
    classes = {int(shape[1]) for shape in checkpoint_shapes(prefix).values() if len(shape) == 2}
    return classes.pop() if len(classes) == 1 else None


def _graph_variables(model):
    """``{name: shape}`` of the global variables of the inference graph of ``models.CAMModel(model)``."""
    import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
    import tensorflow as tf
    from tensorpack.tfutils.tower import TowerContext

    from models.resnet import CAMModel

    tf1 = tf.compat.v1
    cam_model = CAMModel(model)
    with tf.Graph().as_default():
        tf1.set_random_seed(
            0
        )  # op determinism refuses unseeded random ops (the initialisers, unused)
        inputs = [
            tf1.placeholder(s.dtype, s.shape, s.name) for s in cam_model.get_input_signature()
        ]
        with TowerContext("", is_training=False):
            cam_model.build_graph(*inputs)
        return {v.op.name: v.shape.as_list() for v in tf1.global_variables()}


def check_checkpoint(model, prefix):
    """UserError unless every variable of the graph of ``model`` (a ModelSettings) is in checkpoint
    ``prefix`` with the same shape.

    Without this, tensorpack's ``SmartInit`` only warns about a missing variable
    and leaves it randomly initialised (a wrong ``--depth`` evaluated random blocks).
    """
    stored = checkpoint_shapes(prefix)
    wanted = _graph_variables(model)
    settings = ", ".join(
        f"{k} {getattr(model, k)}" for k in ("depth", "width_mult", "final_stride", "num_classes")
    )
    missing = sorted(set(wanted) - set(stored))
    if missing:
        shown = ", ".join(missing[:4]) + (
            f" and {len(missing) - 4} more" if len(missing) > 4 else ""
        )
        raise UserError(
            f"{prefix}: {len(missing)} of the {len(wanted)} graph variables are not in the checkpoint "
            f"({shown}); the model settings ({settings}) do not match it: most likely the depth "
            f"(more blocks than were trained) or a checkpoint of another network"
        )
    wrong = [(n, wanted[n], stored[n]) for n in sorted(wanted) if stored[n] != wanted[n]]
    if wrong:
        name, graph, ckpt = wrong[0]
        raise UserError(
            f"{prefix}: {len(wrong)} variables have other shapes than the model settings "
            f"({settings}) give, e.g. {name} {ckpt} in the checkpoint vs {graph}: most likely "
            f"the width (--width-mult) or the number of classes"
        )


def unreadable(prefix, error, what):
    """The UserError for checkpoint ``prefix`` that failed to read: removed meanwhile (train.py's
    rotation), or ``what`` plus the first line of ``error``."""
    if not os.path.isfile(prefix + ".index"):
        return UserError(
            f"{prefix}: removed while it was being read (a running train.py keeps only its newest "
            f"--keep-checkpoints); evaluate again: --load {os.path.dirname(prefix)} takes the newest"
        )
    return UserError(
        f"{prefix}: {what} ({(str(error).strip().splitlines() or [type(error).__name__])[0]})"
    )
