"""The settings of a run: the one statement of every default, its flag, help and source, and their validation.

``RunSettings`` is what train.py records in settings.json and what resume and the
table scripts compare: the ``model`` section (``models.CAMModel``'s settings), the
``train`` section (what changes the learned weights), the ``speed`` section (never
compared), the data path, the dataset fingerprint (:func:`runrecord.dataset.dataset_fingerprint`),
the git commit and the library versions.  No TensorFlow is imported here.

Each field is a :func:`setting`: its default, its source (paper sec. 3, docs/sources.md,
or ours) and, for what a user sets, its train.py flag (name, argparse type from
:mod:`argtypes`, choices, help).  :func:`add_flags` makes the flags from them;
:meth:`RunSettings.validate` applies the same types to the values.
"""

import argparse
import dataclasses
import json
from dataclasses import MISSING, dataclass, field
from typing import Optional

import argtypes
from models.plan import DEPTHS, FINAL_STRIDES
from augment.registry import (
    LazyNames,
)  # TensorFlow-free: the methods' names, read from augment/ with ast

NORMALIZE = ("dataset", "imagenet")
# each recipe's defaults for the four parts; an explicit flag overrides its part (docs/sources.md)
RECIPES = {
    "paper": {"flip": False, "jitter": False, "normalize": "dataset", "early_grad_scale": 1.0},
    # junsukchoe/SN-ResNet codes/utils.py (jitter, flip, image_preprocess) and
    # codes/train_resnet_tiny.py (ScaleGradient 0.1 on conv0.* and group[0-2].*)
    "sn-resnet": {"flip": True, "jitter": True, "normalize": "imagenet", "early_grad_scale": 0.1},
}
# model keys that follow from the data (normalize="dataset") and may be unknown (None) in
# settings built before the pixels are read; compared only when both sides know them
DERIVED = ("mean_bgr", "std_bgr")
# ours: 650 times the paper's 1500; larger values only exhaust memory in the schedule
MAX_EPOCHS = 10**6
# ours: --steps-per-epoch may exceed one pass up to this, for benchmarks on small data
MIN_STEPS_CAP = 1000


def setting(
    default=MISSING,
    *,
    source,
    help=None,
    flag=None,
    flag_default=None,
    auto=None,
    invert=False,
    **argparse_options,
):
    """A dataclass field with its metadata: ``source`` (paper sec. 3, docs/sources.md, ours) and,
    for a train.py flag, ``help`` plus argparse's ``type``/``choices``/``action``/``metavar``.

    ``flag``: the flag where it is not ``--`` + the name with dashes; ``auto``: what an unset
    flag (default None) resolves to, for the help; ``invert``: a store_true flag that turns the
    field off; ``flag_default``: the flag's default where the field has none (set positionally).
    A field without ``help`` is set from the data, the machine or other fields, not by a flag.
    """
    meta = dict(
        argparse_options,
        source=source,
        help=help,
        flag=flag,
        flag_default=flag_default,
        auto=auto,
        invert=invert,
    )
    return field(metadata=meta) if default is MISSING else field(default=default, metadata=meta)


@dataclass
class ModelSettings:
    """The network: ``models.CAMModel(model)`` (inference) or ``CAMModel(model, train)`` rebuilds the graph."""

    depth: int = setting(
        source="paper sec. 3: 18 and 34",
        help="ResNet depth",
        type=int,
        choices=tuple(DEPTHS),
        flag_default=18,
    )
    num_classes: int = setting(source="the dataset's wnids.txt", type=argtypes.positive_int)
    image_shape: list = setting(source="[H, W] of the dataset's images")
    width_mult: float = setting(
        1.0,
        source="ours: 1.0 is the paper's width; other values for tests, the demo",
        help="scale all widths",
        type=argtypes.positive_float,
    )
    final_stride: int = setting(
        4,
        source="paper, docs/sources.md: the authors' code",
        type=int,
        choices=tuple(FINAL_STRIDES),
        help="4: a 16x16 map from 64x64; 8: an 8x8 map",
    )
    # --normalize: the training split's mean and std, or ImageNet's
    mean_bgr: Optional[list] = setting(None, source="docs/sources.md")
    std_bgr: Optional[list] = setting(None, source="docs/sources.md")


RECIPE_SOURCE = "docs/sources.md: SN-ResNet codes/utils.py"


@dataclass
class TrainSettings:
    """What changes the learned weights; compared on resume."""

    aug: str = setting(
        source="paper Table 1; others: augment/, docs/extending.md",
        help="augmentation",
        required=True,
        choices=LazyNames(),
    )
    batch: int = setting(
        source="paper Table 1: 32, 128, 256",
        type=argtypes.positive_int,
        flag_default=256,
        help="the whole minibatch, split over GPUs/processes",
    )
    epochs: int = setting(
        1500,
        source="paper sec. 3",
        help=f"training epochs, at most {MAX_EPOCHS}",
        type=argtypes.int_in(1, MAX_EPOCHS),
    )
    lr: float = setting(
        0.1, source="paper sec. 3", help="initial learning rate", type=argtypes.positive_float
    )
    lr_step_epochs: int = setting(
        250,
        source="paper sec. 3",
        type=argtypes.positive_int,
        help="multiply the rate by --lr-decay every this many epochs",
    )
    lr_decay: float = setting(
        0.1,
        source="paper sec. 3: divided by 10",
        help="the rate's factor at each step",
        type=argtypes.positive_float,
    )
    momentum: float = setting(
        0.9,
        source="paper sec. 3",
        help="Nesterov momentum",
        type=argtypes.float_in(0, 1, high_open=True),
    )
    weight_decay: float = setting(
        1e-4,
        source="paper sec. 3",
        flag="--wd",
        type=argtypes.nonnegative_float,
        help="weight decay on conv and FC weights",
    )
    seed: int = setting(
        0,
        source="ours: at most 2**31 - 2",
        type=argtypes.seed,
        help="seeds the initialisation and the data order",
    )
    holdout: int = setting(
        0,
        source="ours: 0 is the paper's",
        type=argtypes.nonnegative_int,
        metavar="N",
        help="exclude the last N training images of each class from training, for "
        "choosing evaluate.py's threshold",
    )
    recipe: str = setting(
        "paper",
        source="docs/sources.md",
        choices=tuple(sorted(RECIPES)),
        help="paper: only what the paper states; sn-resnet: the authors' later code, "
        "= --jitter --flip --normalize imagenet --early-grad-scale 0.1",
    )
    flip: bool = setting(
        False,
        source=f"{RECIPE_SOURCE} Flip(horiz=True)",
        auto="--recipe's",
        action=argparse.BooleanOptionalAction,
        help="random horizontal flip",
    )
    jitter: bool = setting(
        False,
        source=f"{RECIPE_SOURCE} colour jitter",
        auto="--recipe's",
        action=argparse.BooleanOptionalAction,
        help="colour jitter in random order: brightness, contrast, saturation, PCA lighting",
    )
    normalize: str = setting(
        "dataset",
        source=f"{RECIPE_SOURCE} image_preprocess",
        auto="--recipe's",
        choices=NORMALIZE,
        help="dataset: the training split's mean/std; imagenet: /255 then ImageNet mean/std",
    )
    early_grad_scale: float = setting(
        1.0,
        source="docs/sources.md: SN-ResNet ScaleGradient 0.1",
        auto="--recipe's",
        type=argtypes.positive_float,
        metavar="F",
        help="multiply the gradients of conv0 and groups 0-2 by F, 1 = off",
    )
    steps_per_epoch: int = setting(
        0,
        source="ours",
        auto="training images // --batch",
        type=argtypes.positive_int,
        help="set it only for benchmarks and smoke runs, at most one pass or "
        f"{MIN_STEPS_CAP} steps: checkpoints are written at epoch ends",
    )
    final_step: int = setting(
        0, source="ours: steps_per_epoch * epochs", type=argtypes.nonnegative_int
    )
    amp: object = setting(
        False,
        source="ours",
        action="store_true",  # False, "bf16" (CPU) or "fp16" (GPU)
        help="mixed precision: bf16 on a CPU with AVX512_BF16/AMX, fp16 on GPUs; changes numerics",
    )
    tf32: bool = setting(
        False,
        source="ours: off, as on the paper's 2018 GPUs (docs/sources.md, TF32)",
        action="store_true",
        help="TensorFloat-32 in float32 convolutions and matmuls on Ampere and newer GPUs "
        "(TensorFlow's own default): faster, changes numerics; no effect on CPUs",
    )
    batch_per_tower: int = setting(
        0,
        source="docs/sources.md: batch // towers, BatchNorm per tower",
        type=argtypes.nonnegative_int,
    )
    # the rest change results only in the last bits (docs/reproducibility.md)
    threads: int = setting(
        0,
        source="ours",
        auto="all cores",  # Eigen/oneDNN split sums by thread
        type=argtypes.nonnegative_int,
        help="intra-op threads for CPU kernels (tensorpack's default is 1); "
        "CPU results depend on it, so a resumed run must keep it",
    )
    xla: bool = setting(
        False,
        source="ours",
        action="store_true",  # XLA auto-clustering fuses ops
        help="XLA auto-clustering, GPUs only",
    )
    data_format: str = setting(
        "NHWC",
        source="ours",
        choices=("NHWC", "NCHW"),
        help="layout of the convolutions; NCHW may help on GPUs, is slower on CPUs",
    )
    deterministic: bool = setting(
        True,
        source="ours: docs/reproducibility.md",
        flag="--nondeterministic",
        invert=True,
        action="store_true",
        help="TensorFlow's op determinism off: faster on some GPUs, reruns differ",
    )


@dataclass
class SpeedSettings:
    """How fast, not what is learned (the batches do not depend on the workers): never compared."""

    workers: int = setting(
        0,
        source="ours: runrecord/cost.py default_workers",
        type=argtypes.nonnegative_int,
        auto="0 on the CPU; with GPUs, enough for them and the recipe's augmentations, "
        "at most the cores less 2",
        help="dataflow worker processes",
    )
    val_every: int = setting(
        10,
        source="ours",
        type=argtypes.positive_int,
        help="validation Top-1/Top-5 error every this many epochs and after the last",
    )
    val_batch: int = setting(
        128, source="ours", help="batch size for validation", type=argtypes.positive_int
    )
    # ours: 1000 of the 10,000 validation images keep the authors protocol's cost within a few percent of a
    # GPU's training time at the paper's settings (docs/measurements.md, "Cost, localisation while training")
    loc_images: int = setting(
        1000,
        source="ours",
        type=argtypes.nonnegative_int,
        metavar="N",
        help="GT-known and Top-1 Loc (evaluate.py's default protocol) of the first N validation "
        "images at each validation, in stats.json and TensorBoard; 0: off",
    )
    keep_checkpoints: int = setting(
        10,
        source="ours",
        help="how many of the newest checkpoints to keep",
        type=argtypes.positive_int,
    )
    # resume is bit-identical from any epoch end (docs/reproducibility.md), so the interval changes no result
    checkpoint_every: int = setting(
        1,
        source="ours",
        type=argtypes.positive_int,
        metavar="N",
        help="write a checkpoint every N epochs and after the last; an interrupt "
        "loses the epochs since the newest checkpoint",
    )
    gpus: int = setting(
        0,
        source="ours",
        auto="1 if a GPU is visible; 0 = the CPU",  # towers in this process
        type=argtypes.nonnegative_int,
        help="GPUs to train on in this process",
    )
    machines: int = setting(
        1, source="ours: tasks of --cluster (training/cluster.py)", type=argtypes.positive_int
    )


def field_default(cls, name):
    """The default of field ``name`` of ``cls``: its dataclass default, else its flag's (None: none)."""
    f = cls.__dataclass_fields__[name]
    return f.metadata.get("flag_default") if f.default is MISSING else f.default


def is_flag(cls, name):
    return cls.__dataclass_fields__[name].metadata.get("help") is not None


def flag_name(cls, name):
    return cls.__dataclass_fields__[name].metadata["flag"] or "--" + name.replace("_", "-")


def flag_value(cls, name, args):
    """The field's value from parsed flags (None: unset), through an inverted flag."""
    meta = cls.__dataclass_fields__[name].metadata
    value = getattr(args, flag_name(cls, name)[2:].replace("-", "_"))
    return not value if meta["invert"] else value


def add_flags(parser, cls, names, *, unset=False):
    """Add one argparse option to ``parser`` (or a group) per field of ``cls`` in ``names``, from its
    metadata.  The default is the field's (None for a field resolved later, ``auto``), or None for
    all when ``unset`` (evaluate.py: the run's settings.json decides); the help names the field's
    default either way, and its source."""
    for name in names:
        meta, default = dict(cls.__dataclass_fields__[name].metadata), field_default(cls, name)
        if not is_flag(cls, name):
            raise ValueError(
                f"{cls.__name__}.{name} is set from the data or the machine, not by a flag"
            )
        options = {
            k: v
            for k, v in meta.items()
            if k in ("type", "choices", "action", "metavar", "required")
        }
        source = meta[
            "source"
        ]  # "ours..." stays: the README promises our additions are marked in --help
        if (
            unset
        ):  # evaluate.py: settings.json decides; without one, the field's own default (if any)
            own = cls.__dataclass_fields__[name].default
            said = (
                "default: the run's settings.json, needed without one"
                if own is MISSING
                else f"default: the run's settings.json, else {own}"
            )
        elif meta.get("required"):
            said = source
        elif meta["auto"]:
            said = f"default: {meta['auto']}"
        elif (
            options.get("action") == "store_true"
        ):  # an inverted flag turns the field's default off
            said = f"default: {name.replace('_', ' ')}" if meta["invert"] else "default off"
        else:
            said = f"default {default}"
        said += f"; {source}" if source and not meta.get("required") else ""
        if not meta.get("required"):
            options["default"] = (
                None if unset or meta["auto"] else (not default if meta["invert"] else default)
            )
        parser.add_argument(
            flag_name(cls, name), help=f"{meta['help']} ({said})".replace("%", "%%"), **options
        )


def _check(ok, what):
    if not ok:
        raise ValueError(f"settings: {what}")


@dataclass
class RunSettings:
    model: ModelSettings
    train: TrainSettings
    speed: SpeedSettings = field(default_factory=SpeedSettings)
    data: Optional[str] = None  # absolute path of the dataset root (not compared)
    dataset: dict = field(default_factory=dict)  # dataset_fingerprint()
    git_commit: Optional[str] = None
    versions: dict = field(default_factory=dict)
    machine: list = field(
        default_factory=list
    )  # runrecord.machine: where it trained (not compared)

    def __post_init__(self):
        self.validate()

    def validate(self):
        """ValueError naming the first bad field: each field's flag type and choices applied to its
        value (a field's own default passes: 0 steps_per_epoch, say, is "not resolved yet")."""
        for section in ("model", "train", "speed"):
            values = getattr(self, section)
            for f in dataclasses.fields(values):
                value, meta = getattr(values, f.name), f.metadata
                if value == f.default and type(value) is type(f.default):
                    continue
                try:
                    if "type" in meta:
                        meta["type"](value if isinstance(value, str) else repr(value))
                    _check(
                        "choices" not in meta or value in meta["choices"],
                        f"{value!r} is not one of {list(meta.get('choices', ()))}",
                    )
                except (argparse.ArgumentTypeError, ValueError) as e:
                    raise ValueError(
                        f"settings: {section}.{f.name}: {str(e).removeprefix('settings: ')}"
                    ) from None
        _check(
            len(self.model.image_shape) == 2,
            f"model.image_shape {self.model.image_shape} is not [H, W]",
        )

    def to_json(self):
        return json.loads(json.dumps(dataclasses.asdict(self)))  # tuples -> lists

    @classmethod
    def from_json(cls, d):
        """From a settings.json dict of this train.py's layout; a ValueError for any other, one written by an
        older train.py included (its "speed" keys under "train", say): resume and reuse never guess."""
        d = json.loads(json.dumps(d))
        older = (
            'no "speed" section'
            if not isinstance(d.get("speed"), dict)
            else '"image_shape" in "dataset"'
            if "image_shape" in d.get("dataset", {})
            else None
        )
        try:
            if older is None:
                return cls(
                    ModelSettings(**d["model"]),
                    TrainSettings(**d["train"]),
                    SpeedSettings(**d["speed"]),
                    d.get("data"),
                    d.get("dataset", {}),
                    d.get("git_commit"),
                    d.get("versions", {}),
                    d.get("machine", []),
                )
        except (KeyError, TypeError) as e:
            older = str(e)
        raise ValueError(
            f"settings: not this train.py's settings.json layout ({older}); a file written by an "
            "older train.py is not read: train that run again in a new --logdir, or use the "
            "train.py of its git_commit"
        )

    def differences(self, other):
        """``["section.key: mine -> other's", ...]`` over model, dataset and train (not speed)."""
        a, b = self.to_json(), other.to_json()
        diffs = []
        for section in ("model", "dataset", "train"):
            for key in sorted(set(a[section]) | set(b[section])):
                x, y = a[section].get(key, "<absent>"), b[section].get(key, "<absent>")
                if section == "model" and key in DERIVED and (x is None or y is None):
                    continue
                if (
                    section == "dataset"
                    and key == "pixels"
                    and (x in (None, "<absent>") or y in (None, "<absent>"))
                ):
                    continue  # unknown without pixels (the table scripts) or before it was recorded
                if x != y:
                    diffs.append(f"{section}.{key}: {x} -> {y}")
        return diffs


def resolve_recipe(recipe, **parts):
    """The four recipe parts: each given value (not None) overrides the recipe's default."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {recipe!r}")
    return {k: (parts[k] if parts.get(k) is not None else v) for k, v in RECIPES[recipe].items()}
