"""Whether a finished run trained on the paper's schedule: the settings a short run (``-- --epochs 1``)
changed, read from its settings.json, so that a table of such runs is never titled as the paper's."""

import dataclasses

import runrecord

# the settings whose defaults are the paper's schedule and network (their ``source`` in runrecord/settings.py)
PAPER_FIELDS = {
    "train": [
        f.name
        for f in dataclasses.fields(runrecord.TrainSettings)
        if f.metadata["source"].startswith("paper") and f.default is not dataclasses.MISSING
    ],
    "model": ["width_mult", "final_stride"],
}


def changes(logdir):
    """``["train.epochs 1 (paper 1500)", ...]``: what differs from the paper's schedule in ``logdir``'s
    settings.json, ``steps_per_epoch`` below one pass over the training images included; [] if
    nothing does or the file cannot be read (the table reports such a run on its own)."""
    doc, problem = runrecord.read_settings(runrecord.settings_path(logdir))
    try:
        settings = None if problem else runrecord.RunSettings.from_json(doc)
    except ValueError:
        settings = None
    if settings is None:
        return []
    out = []
    for section, names in PAPER_FIELDS.items():
        mine = getattr(settings, section)
        for name in names:
            paper = runrecord.field_default(type(mine), name)
            if getattr(mine, name) != paper:
                out.append(f"{section}.{name} {getattr(mine, name)} (paper {paper})")
    d, t = settings.dataset, settings.train
    if isinstance(d.get("train_images"), int) and isinstance(d.get("num_classes"), int):
        full = max(1, (d["train_images"] - d.get("holdout", 0) * d["num_classes"]) // t.batch)
        if 0 < t.steps_per_epoch < full:
            out.append(f"train.steps_per_epoch {t.steps_per_epoch} (one pass: {full})")
    return out
