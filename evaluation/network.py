"""Which network evaluate.py builds for a checkpoint: the ModelSettings of the run's settings.json,
else one guessed from the model flags and the data, checked against the checkpoint and the data.

The flags come from the settings' fields (:func:`runrecord.settings.add_flags`), and an unset
flag is guessed to be its field's default, so neither is stated here.
"""

import sys

from errors import UserError
from runrecord import (
    ModelSettings,
    TrainSettings,
    add_flags as add_field_flags,
    checkpoint_fc_classes,
    field_default,
)
from runrecord.settings import flag_name

# the model flags, for a checkpoint without settings.json, and the settings that own each field
FLAGS = {
    "depth": ModelSettings,
    "width_mult": ModelSettings,
    "final_stride": ModelSettings,
    "normalize": TrainSettings,
}
# what an unset flag is then guessed to be: its field's default (--depth has none: it is needed)
GUESSED = {name: field_default(FLAGS[name], name) for name in FLAGS if name != "depth"}


def flag(name):
    """The command-line flag of model field ``name`` (``"--final-stride"`` for ``"final_stride"``)."""
    return flag_name(FLAGS[name], name)


def add_flags(parser):
    """The group of model flags, default None: the run's settings.json decides."""
    group = parser.add_argument_group(
        "model, only for a checkpoint without settings.json",
        "classes and image size then come from --data, the input normalisation from its training split "
        "(mean and std per channel, as train.py); --depth is needed, the others are guessed unless given: "
        + ", ".join(f"{flag(name)} {value}" for name, value in GUESSED.items()),
    )
    for name, cls in FLAGS.items():
        add_field_flags(group, cls, [name], unset=True)


def model_settings(flags, doc, path, data_split, mean_std):
    """``(ModelSettings, source)``: from the run's settings.json ``doc`` (read from ``path``; None when
    absent), which the ``flags`` given (``{name: value or None}``, names of FLAGS) must match, else
    from the flags and the data: ``data_split``'s classes and image size, and ``mean_std(normalize)``."""
    if doc is not None:
        try:
            model = ModelSettings(**doc["model"])
        except (KeyError, TypeError) as e:
            raise UserError(
                f'{path}: has no valid "model" object (expected train.py\'s settings.json; '
                f"{type(e).__name__}: {e})"
            ) from None
        for name in ("depth", "width_mult", "final_stride"):
            if flags[name] is not None and getattr(model, name) != flags[name]:
                raise UserError(
                    f"{flag(name)} {flags[name]} contradicts {path} ({name} {getattr(model, name)})"
                )
        recorded = doc.get("train", {}).get("normalize")
        if flags["normalize"] and recorded and flags["normalize"] != recorded:
            raise UserError(
                f"--normalize {flags['normalize']} contradicts {path} (train.normalize {recorded})"
            )
        return model, path
    if flags["depth"] is None:
        *first, last = map(str, GUESSED.values())
        raise UserError(
            f"{path} does not exist: pass --depth (and {', '.join(map(flag, GUESSED))} if not "
            f"{', '.join(first)} and {last}) to rebuild the network"
        )
    chosen = {
        name: value if flags[name] is None else flags[name] for name, value in GUESSED.items()
    }
    unset = [f"{flag(name)} {value}" for name, value in GUESSED.items() if flags[name] is None]
    # nothing in a checkpoint fixes the stride or the normalisation: a wrong one only moves the boxes
    print(
        f"WARNING: {path} does not exist, so the model settings are GUESSED: --depth {flags['depth']}, "
        + ", ".join(f"{flag(name)} {value}" for name, value in chosen.items())
        + (f" ({', '.join(unset)}: defaults, not read from the run)" if unset else "")
        + ". A wrong --final-stride or --normalize gives wrong boxes without any error.",
        file=sys.stderr,
    )
    mean, std = mean_std(chosen["normalize"])
    model = ModelSettings(
        flags["depth"],
        data_split.num_classes,
        list(data_split.image_shape),
        chosen["width_mult"],
        chosen["final_stride"],
        mean,
        std,
    )
    return model, "flags (guessed: no settings.json)"


def check_compatible(model, prefix, split, data):
    """UserError unless checkpoint ``prefix``'s FC layer, ``model`` and the ``split`` of ``data`` agree
    on the classes, and ``model`` and the split on the image size."""
    stored = checkpoint_fc_classes(prefix)
    if stored is not None and stored != model.num_classes:
        raise UserError(
            f"{prefix}: its FC layer has {stored} classes, but its settings say {model.num_classes}"
        )
    if model.num_classes != split.num_classes:
        raise UserError(
            f"{prefix} was trained for {model.num_classes} classes, but {data} has "
            f"{split.num_classes} classes (wnids.txt)"
        )
    if tuple(model.image_shape) != tuple(split.image_shape):
        raise UserError(
            f"{prefix} was trained on {model.image_shape[0]}x{model.image_shape[1]} (HxW) "
            f"images, but {data} has {split.image_shape[0]}x{split.image_shape[1]}"
        )
