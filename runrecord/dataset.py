"""What identifies the data a run learned from: the dataset fingerprint that settings.json
records, and the check of the data at hand against it.  No TensorFlow is imported here."""

import hashlib

import numpy as np


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
    return {
        "num_classes": len(train.wnids),
        "train_images": len(train.labels),
        "val_images": len(val.labels),
        "holdout": int(holdout),
        "train_used": used_images(train.labels, holdout),
        "sha1": h.hexdigest(),
        "pixels": pixels if None not in pixels.values() else None,
    }


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
        return (
            "its class order (wnids.txt), file names, labels or boxes differ from the run's "
            f"(dataset.sha1 {recorded['sha1'][:12]} vs {mine['sha1'][:12]})"
        )
    name, split = evaluated or (None, None)
    stored = (recorded.get("pixels") or {}).get(name)
    if stored and stored != pixels_sha1(split):
        return f"its {name} images differ from the run's (dataset.pixels.{name})"
    return None
