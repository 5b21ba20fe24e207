"""A folder of score maps, one ``.npy`` per image (clovaai/wsolevaluation's layout): its one reader and writer.

NumPy only (no TensorFlow).  For the images of one split, ``files`` being their paths relative to the
dataset root as the annotations list them (``Split.files``, e.g. ``val/images/val_0.JPEG``)::

    DIR/<file>.npy        e.g. DIR/val/images/val_0.JPEG.npy: the score map of the image's ground-truth
                          class, (h, w) real numbers (any float or integer dtype), any resolution, any
                          range; row 0 at the top of the image, column 0 at its left
    DIR/predictions.npy   optional, row i for the split's image i (annotation order), at least one row per
                          image evaluated: (M, K) float class scores (logits or probabilities: only their
                          order counts) or (M, k) integer class indices, best first, k >= min(5, K)

``.npy`` is appended to the image's path, as wsolevaluation's ``evaluation.py`` loads a map
(``image_id + '.npy'``) and its ``inference.py`` writes one (``np.save`` appends the suffix); the
docstring of its ``evaluate_wsol`` shows the extension replaced instead, which its code does not do.
A map is cast to float32, then resized and min-max normalised by the protocols exactly as a raw CAM of
this project (``cam.level_maps``); docs/evaluation.md, "Score maps from another codebase".
"""

import os

import numpy as np

import fileio
from cam import TOP_K, top_k_classes
from errors import UserError

PREDICTIONS = "predictions.npy"


def map_path(folder, file):
    """Where the score map of the image ``file`` (relative to the dataset root) lies in ``folder``."""
    return os.path.join(folder, file + ".npy")


def check_folder(folder, files):
    """UserError unless ``folder`` holds a map for each of ``files``; names the first missing one."""
    if not os.path.isdir(folder):
        raise UserError(f"--cams {folder}: no such folder")
    missing = [f for f in files if not os.path.isfile(map_path(folder, f))]
    if missing:
        first = map_path(folder, missing[0])
        other = os.path.join(folder, os.path.splitext(missing[0])[0] + ".npy")
        hint = (
            f" ({other} exists: the layout appends .npy to the image's path, as wsolevaluation)"
            if os.path.isfile(other)
            else ""
        )
        raise UserError(
            f"--cams: no score map {first}{hint}; {len(missing)} of the {len(files)} images "
            "evaluated have none"
        )


def read_map(folder, file):
    """The score map of image ``file``: ``(h, w)`` float32, finite; a UserError names a bad file."""
    path = map_path(folder, file)
    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable .npy array ({e})") from None
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        what = f"dtype {value.dtype}" if isinstance(value, np.ndarray) else "an .npz archive"
        raise UserError(f"{path}: a score map must be an array of real numbers, got {what}")
    if value.ndim != 2 or 0 in value.shape:
        raise UserError(f"{path}: a score map must be 2-D (h, w), got shape {value.shape}")
    value = value.astype(np.float32)
    if not np.isfinite(value).all():
        raise UserError(f"{path}: has NaN or infinite values (as float32)")
    return value


def read_predictions(folder, count, total, num_classes):
    """``(count, min(5, K))`` int64 class indices, best first, of the first ``count`` images from
    ``folder``'s predictions.npy (None without one); ``total``: the split's images, ``num_classes``: K."""
    path = os.path.join(folder, PREDICTIONS)
    if not os.path.exists(path):
        return None
    try:
        value = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable .npy array ({e})") from None
    k = min(TOP_K, num_classes)
    kind = getattr(value, "dtype", np.dtype(object)).kind
    if kind not in "fiu" or value.ndim != 2:
        raise UserError(
            f"{path}: expected (images, {num_classes}) float class scores or (images, {k}+) integer "
            f"class indices, got {getattr(value, 'dtype', 'an .npz archive')} "
            f"{getattr(value, 'shape', '')}"
        )
    if not count <= len(value) <= total:
        raise UserError(
            f"{path}: {len(value)} rows, but a row per image of the split is needed, in annotation "
            f"order: at least the {count} evaluated, at most the split's {total}"
        )
    value = value[:count]
    if kind == "f":
        if value.shape[1] != num_classes:
            raise UserError(
                f"{path}: {value.shape[1]} class scores per image, but the data has {num_classes} "
                "classes (wnids.txt)"
            )
        if not np.isfinite(value).all():
            raise UserError(f"{path}: has NaN or infinite class scores")
        return top_k_classes(value)
    if value.shape[1] < k or value.size and (value.min() < 0 or value.max() >= num_classes):
        raise UserError(
            f"{path}: integer predictions must be class indices in [0, {num_classes}), best first, "
            f"at least {k} per image; got shape {value.shape}"
        )
    return value[:, :k].astype(np.int64)


def write_maps(folder, files, maps, scores):
    """Write ``maps[i]`` (2-D) for image ``files[i]`` and ``scores`` ``(N, K)`` as predictions.npy in the
    layout above; ``folder`` is made whole (``fileio.write_folder``): absent or empty before.
    A failure is a :class:`fileio.WriteError` naming the folder."""

    def fill(tmp):
        for file, scoremap in zip(files, maps):
            path = map_path(tmp, file)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fileio.write_npy(path, scoremap)
        fileio.write_npy(os.path.join(tmp, PREDICTIONS), scores)

    try:
        fileio.write_folder(folder, fill, done=lambda: False)
    except fileio.WriteError:
        raise
    except OSError as e:
        raise fileio.WriteError(folder, e) from None
