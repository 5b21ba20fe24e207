"""The run record: one owner for everything about a training run's folder (logdir).

A logdir holds one run::

    settings.json   RunSettings.to_json(): model / train / speed sections, data path,
                    dataset fingerprint, git commit, library versions (train.py writes it first)
    model-N.index, model-N.data-*   tensorpack checkpoints at global step N (epoch ends)
    checkpoint      TensorFlow's state file naming the newest checkpoints
    stats.json      tensorpack's per-epoch statistics
    progress.json   the wall time of each epoch end (training.watch; read by runrecord.cost for ETAs)
    done.json       {"global_step", "epoch"}: written only after a run that ended well
    eval.json       evaluate.py's results

One concept per module: :mod:`runrecord.settings` (the settings: their defaults, flags,
help, sources and checks), :mod:`runrecord.command` (a train.py command: its parser, the
environment it resolves to, its settings), :mod:`runrecord.dataset` (the dataset
fingerprint), :mod:`runrecord.checkpoints` (lookup, restore and shape checks) and
:mod:`runrecord.state` (the one reader of settings.json, which eval.json counts, ``run_state``
and the run name), :mod:`runrecord.evaldoc` (eval.json, typed: ``EvalDoc``, its one reader and views),
:mod:`runrecord.machine` (this machine's facts that need no TensorFlow, and settings.json's machine record),
:mod:`runrecord.cost` (FLOPs, measured rates in results/rates.json, hours, progress.json).
Settings are compared on the model, the training settings and the dataset fingerprint,
never on the "speed" section, the data path or the commit, so a dataset moved elsewhere
or a run continued on other hardware is accepted.  No TensorFlow is imported except by the
functions that read checkpoints or build a graph.
"""

from runrecord.checkpoints import (
    CHECKPOINT_NAME,
    STATE_FILE,
    check_checkpoint,
    checkpoint_fc_classes,
    checkpoint_files,
    checkpoint_problem,
    checkpoint_shapes,
    checkpoint_step,
    latest_checkpoint,
    resolve_checkpoint,
    unreadable,
)
from runrecord.dataset import dataset_fingerprint, dataset_problem, pixels_sha1, used_images
from runrecord.evaldoc import EvalDoc
from runrecord.settings import (
    DERIVED,
    NORMALIZE,
    RECIPES,
    ModelSettings,
    RunSettings,
    SpeedSettings,
    TrainSettings,
    add_flags,
    field_default,
    resolve_recipe,
)
from runrecord.state import (
    CONFLICT,
    DONE,
    EVAL,
    EVALUATED,
    NEW,
    RESUMABLE,
    SETTINGS,
    STATS,
    TRAINED,
    checkpoint_digest,
    checkpoint_reference,
    folder_state,
    load_settings,
    note_machine,
    read_evaluation,
    read_json,
    read_settings,
    run_name,
    run_state,
    settings_path,
    write_json,
)

# the run record's public names, re-exported from the module that owns each
__all__ = [
    "CHECKPOINT_NAME",
    "STATE_FILE",
    "check_checkpoint",
    "checkpoint_fc_classes",
    "checkpoint_files",
    "checkpoint_problem",
    "checkpoint_shapes",
    "checkpoint_step",
    "latest_checkpoint",
    "resolve_checkpoint",
    "unreadable",
    "dataset_fingerprint",
    "dataset_problem",
    "pixels_sha1",
    "used_images",
    "DERIVED",
    "NORMALIZE",
    "RECIPES",
    "ModelSettings",
    "RunSettings",
    "SpeedSettings",
    "TrainSettings",
    "add_flags",
    "field_default",
    "resolve_recipe",
    "CONFLICT",
    "DONE",
    "EVAL",
    "EVALUATED",
    "NEW",
    "RESUMABLE",
    "SETTINGS",
    "STATS",
    "TRAINED",
    "checkpoint_digest",
    "checkpoint_reference",
    "folder_state",
    "load_settings",
    "note_machine",
    "read_evaluation",
    "read_json",
    "read_settings",
    "run_name",
    "run_state",
    "settings_path",
    "write_json",
    "EvalDoc",
]
