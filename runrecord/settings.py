"""The settings of a run: the one statement of every default, and their validation.

``RunSettings`` is what train.py records in settings.json and what resume and the
table scripts compare: the ``model`` section (``models.CAMModel``'s settings), the
``train`` section (what changes the learned weights), the ``speed`` section (never
compared), the data path, the dataset fingerprint (:func:`dataset_fingerprint`),
the git commit and the library versions.  No TensorFlow is imported here.
"""
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

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


@dataclass
class ModelSettings:
    """The kwargs of ``models.CAMModel``: ``CAMModel(**asdict(model))`` rebuilds the graph."""
    depth: int                          # paper sec. 3: ResNet-18 or 34
    num_classes: int                    # the dataset's wnids.txt
    image_shape: list                   # [H, W] of the dataset's images
    width_mult: float = 1.0             # ours: 1.0 is the paper's width (narrower for tests)
    final_stride: int = 4               # docs/sources.md: authors' code, 16x16 map from 64x64
    mean_bgr: Optional[list] = None     # --normalize: training split's mean, or ImageNet's (docs/sources.md)
    std_bgr: Optional[list] = None      # --normalize: training split's std, or ImageNet's (docs/sources.md)


@dataclass
class TrainSettings:
    """What changes the learned weights; compared on resume."""
    aug: str                            # paper Table 1: cam, hns, gr, hns_after_gr, gr_after_hns
    batch: int                          # paper sec. 3: the whole minibatch (32, 128, 256)
    epochs: int = 1500                  # paper sec. 3
    lr: float = 0.1                     # paper sec. 3
    lr_step_epochs: int = 250           # paper sec. 3: /10 every 250 epochs
    lr_decay: float = 0.1               # paper sec. 3
    momentum: float = 0.9               # paper sec. 3: Nesterov momentum 0.9
    weight_decay: float = 1e-4          # paper sec. 3
    seed: int = 0                       # ours: initialisation and data order
    holdout: int = 0                    # ours (0 = paper): last N training images per class not trained on
    recipe: str = "paper"               # docs/sources.md: paper, or sn-resnet (authors' later code)
    flip: bool = False                  # docs/sources.md: SN-ResNet codes/utils.py Flip(horiz=True)
    jitter: bool = False                # docs/sources.md: SN-ResNet codes/utils.py colour jitter
    normalize: str = "dataset"          # docs/sources.md: dataset mean/std, or /255 + ImageNet mean/std
    early_grad_scale: float = 1.0       # docs/sources.md: SN-ResNet ScaleGradient 0.1; 1.0 = off
    steps_per_epoch: int = 0            # ours: training images // batch unless set
    final_step: int = 0                 # ours: steps_per_epoch * epochs
    amp: object = False                 # ours: False, "bf16" (CPU) or "fp16" (GPU)
    batch_per_tower: int = 0            # docs/sources.md: batch // towers, BatchNorm per tower
    # the rest change results only in the last bits (docs/reproducibility.md)
    threads: int = 0                    # ours: intra-op CPU threads (Eigen/oneDNN split sums by thread)
    xla: bool = False                   # ours: XLA auto-clustering fuses ops
    data_format: str = "NHWC"           # ours: NCHW may help on GPUs; other kernels
    deterministic: bool = True          # ours: TF op determinism (off: --nondeterministic)


@dataclass
class SpeedSettings:
    """How fast, not what is learned (the batches do not depend on the workers): never compared."""
    workers: int = 0                    # ours: dataflow processes
    val_every: int = 10                 # ours: validation every N epochs and after the last
    val_batch: int = 128                # ours
    keep_checkpoints: int = 10          # ours
    gpus: int = 0                       # ours: towers in this process
    machines: int = 1                   # ours: tasks of --cluster (training/cluster.py)


def _check(ok, what):
    if not ok:
        raise ValueError(f"settings: {what}")


def _finite(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool) and np.isfinite(x)


@dataclass
class RunSettings:
    model: ModelSettings
    train: TrainSettings
    speed: SpeedSettings = field(default_factory=SpeedSettings)
    data: Optional[str] = None          # absolute path of the dataset root (not compared)
    dataset: dict = field(default_factory=dict)   # dataset_fingerprint()
    git_commit: Optional[str] = None
    versions: dict = field(default_factory=dict)

    def __post_init__(self):
        self.validate()

    def validate(self):
        """ValueError naming the first bad field."""
        m, t = self.model, self.train
        _check(m.depth in (18, 34), f"model.depth {m.depth} is not 18 or 34")
        _check(m.num_classes >= 1 and len(m.image_shape) == 2, "model.num_classes / image_shape")
        _check(_finite(m.width_mult) and m.width_mult > 0, f"model.width_mult {m.width_mult}")
        for name in ("batch", "epochs", "lr_step_epochs"):
            _check(getattr(t, name) >= 1, f"train.{name} {getattr(t, name)} is not positive")
        for name in ("seed", "holdout", "steps_per_epoch", "final_step", "batch_per_tower"):
            _check(getattr(t, name) >= 0, f"train.{name} {getattr(t, name)} is negative")
        for name in ("lr", "lr_decay", "early_grad_scale"):
            _check(_finite(getattr(t, name)) and getattr(t, name) > 0, f"train.{name} {getattr(t, name)}")
        _check(_finite(t.momentum) and 0 <= t.momentum < 1, f"train.momentum {t.momentum} not in [0, 1)")
        _check(_finite(t.weight_decay) and t.weight_decay >= 0, f"train.weight_decay {t.weight_decay}")
        _check(t.recipe in RECIPES, f"train.recipe {t.recipe!r} not one of {sorted(RECIPES)}")
        _check(t.normalize in NORMALIZE, f"train.normalize {t.normalize!r} not one of {NORMALIZE}")

    def to_json(self):
        return json.loads(json.dumps(dataclasses.asdict(self)))   # tuples -> lists

    @classmethod
    def from_json(cls, d):
        """From a settings.json dict; also reads the layout written before the "speed" section
        (its keys then sat in "train"; the recipe parts did not exist, i.e. their defaults)."""
        d = json.loads(json.dumps(d))
        train, speed = dict(d.get("train", {})), dict(d.get("speed", {}))
        for key in [k for k in train if k in SpeedSettings.__dataclass_fields__]:
            speed[key] = train.pop(key)
        for key in [k for k in speed if k in TrainSettings.__dataclass_fields__]:   # "speed" before issue 17
            train.setdefault(key, speed.pop(key))
        speed["machines"] = speed.pop("horovod_size", speed.get("machines", 1))   # its name before --cluster
        dataset = {k: v for k, v in d.get("dataset", {}).items() if k != "image_shape"}   # = model's
        dataset.setdefault("holdout", 0)
        try:
            return cls(ModelSettings(**d["model"]), TrainSettings(**train), SpeedSettings(**speed),
                       d.get("data"), dataset, d.get("git_commit"), d.get("versions", {}))
        except (KeyError, TypeError) as e:
            raise ValueError(f"settings: not train.py's settings.json layout ({e})") from None

    def differences(self, other):
        """``["section.key: mine -> other's", ...]`` over model, dataset and train (not speed)."""
        a, b = self.to_json(), other.to_json()
        diffs = []
        for section in ("model", "dataset", "train"):
            for key in sorted(set(a[section]) | set(b[section])):
                x, y = a[section].get(key, "<absent>"), b[section].get(key, "<absent>")
                if section == "model" and key in DERIVED and (x is None or y is None):
                    continue
                if section == "dataset" and key == "pixels" and (x in (None, "<absent>") or y in (None, "<absent>")):
                    continue   # unknown without pixels (the table scripts) or before it was recorded
                if x != y:
                    diffs.append(f"{section}.{key}: {x} -> {y}")
        return diffs


def resolve_recipe(recipe, **parts):
    """The four recipe parts: each given value (not None) overrides the recipe's default."""
    if recipe not in RECIPES:
        raise ValueError(f"recipe must be one of {sorted(RECIPES)}, got {recipe!r}")
    return {k: (parts[k] if parts.get(k) is not None else v) for k, v in RECIPES[recipe].items()}


def used_images(labels, holdout):
    """How many images remain for training when the last ``holdout`` of each class are held out."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    return int(np.maximum(counts - int(holdout), 0).sum())


def dataset_fingerprint(train, val, holdout=0):
    """What identifies the data a run learned from, independently of its path.

    ``train``/``val``: anything with ``.wnids``, ``.files``, ``.labels``, ``.boxes`` (a loaded
    ``Split`` or the annotations alone, no pixels).  ``sha1``: class order (wnids.txt),
    file names, labels and boxes of both splits; ``pixels``: per split, a sha1 of the
    decoded images in file order (None without pixels), so that images swapped between
    two classes change it; also the sizes and the training images held out per class.
    """
    h = hashlib.sha1()
    for split in (train, val):
        h.update("\n".join(split.wnids).encode())
        h.update("\n".join(split.files).encode())
        h.update(np.ascontiguousarray(split.labels, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(split.boxes, dtype=np.int64).tobytes())
    pixels = {name: pixels_sha1(s) for name, s in (("train", train), ("val", val))}
    return {"num_classes": len(train.wnids), "train_images": len(train.labels),
            "val_images": len(val.labels), "holdout": int(holdout),
            "train_used": used_images(train.labels, holdout), "sha1": h.hexdigest(),
            "pixels": pixels if None not in pixels.values() else None}


def pixels_sha1(split):
    """sha1 of a loaded split's images ``(N, H, W, 3)`` uint8 in file order; None without pixels."""
    images = getattr(split, "images", None)
    return None if images is None else hashlib.sha1(np.ascontiguousarray(images).data).hexdigest()


def dataset_problem(recorded, train, val, evaluated=None):
    """None if the data at hand is the data of a run's settings.json ``dataset``, else which part differs.

    ``train``/``val``: the annotations of the data at hand (no pixels needed); ``evaluated``:
    ``(split name, loaded Split)`` whose pixels are compared when the run recorded them.
    """
    mine = dataset_fingerprint(train, val, recorded.get("holdout", 0))
    if recorded.get("sha1") not in (None, mine["sha1"]):
        return ("its class order (wnids.txt), file names, labels or boxes differ from the run's "
                f"(dataset.sha1 {recorded['sha1'][:12]} vs {mine['sha1'][:12]})")
    name, split = evaluated or (None, None)
    stored = (recorded.get("pixels") or {}).get(name)
    if stored and stored != pixels_sha1(split):
        return f"its {name} images differ from the run's (dataset.pixels.{name})"
    return None
