"""Read a Tiny ImageNet split into memory once; serve it as a tensorpack DataFlow.

``load_split(root, "train" | "val")`` reads and checks the annotations
(:mod:`dataflow.annotations`, layout there), decodes all JPEGs (thread pool,
progress bar) into one uint8 array and caches it as a verified ``.npy`` file
(:mod:`dataflow.cache`), so later runs load the split in about a second.  A
changed dataset is decoded again, never served stale; a damaged cache entry
is found by its checksum, reported and decoded again.

``split_holdout(split, per_class)`` sets the last images of each class aside
(issue 12: a CAM threshold chosen on images the network never trained on).

Bad input raises :class:`dataflow.DataError`, naming the file (and line).
"""

import concurrent.futures
import os
from dataclasses import dataclass, field

import cv2
import numpy as np

import tf_env  # noqa: F401  (before tensorpack: see tf_env.py)
from tensorpack.dataflow import RNGDataFlow
from tensorpack.utils import logger
from tensorpack.utils.utils import get_tqdm

from dataflow import DataError
from dataflow.annotations import SPLITS, read_annotations
from dataflow.cache import cache_dirs, cache_stem, load_cache, save_cache

_CHUNK = 256  # images per decoding task: large enough to amortise the thread hand-off
# the first bytes of the formats a mislabelled .JPEG is most likely to be (the JPEG SOI marker first)
_JPEG_MAGIC = b"\xff\xd8\xff"
_OTHER_FORMATS = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"RIFF": "RIFF (WebP?)",
}


@dataclass
class Split:
    """One split in memory.

    images: (N, H, W, 3) uint8 BGR; grayscale JPEGs are turned into 3 equal channels.
    labels: (N,) int32 in [0, num_classes), the line of the image's wnid in wnids.txt.
    boxes:  (N, 4) int32 [x0, y0, x1, y1], pixel indices, max inclusive, as annotated.
    files:  N paths relative to the root, e.g. "val/images/val_0.JPEG", in annotation order.
    wnids:  class order (wnids.txt).
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    files: list
    wnids: list
    _stats: tuple = field(default=None, init=False, repr=False, compare=False)

    def __len__(self):
        return len(self.labels)

    @property
    def num_classes(self):
        return len(self.wnids)

    @property
    def image_shape(self):
        """(H, W)."""
        return tuple(self.images.shape[1:3])

    def _channel_stats(self):
        if self._stats is None:
            # From per-channel histograms: exact, and fast on the 1.2 GB train split (cv2.calcHist is C).
            # calcHist counts in float32, exact up to 2**24; chunks of at most 2**22 pixels keep it so.
            hist = np.zeros((3, 256))
            step = max(1, 2**22 // (self.images.shape[1] * self.images.shape[2]))
            for start in range(0, len(self.images), step):
                chunk = self.images[start : start + step]
                chunk = chunk.reshape(-1, chunk.shape[2], 3)  # one tall image
                for c in range(3):
                    hist[c] += cv2.calcHist([chunk], [c], None, [256], [0, 256]).ravel()
            values = np.arange(256)
            count = hist.sum(1)
            mean = (hist * values).sum(1) / count
            var = (hist * values**2).sum(1) / count - mean**2
            self._stats = (mean, np.sqrt(np.maximum(var, 0)))
        return self._stats

    def mean_bgr(self):
        """(3,) float64 per-channel mean of all pixels, BGR order."""
        return self._channel_stats()[0].copy()

    def std_bgr(self):
        """(3,) float64 per-channel standard deviation of all pixels, BGR order."""
        return self._channel_stats()[1].copy()


def _decode(path):
    """(H, W, 3) uint8 BGR from a JPEG file; grayscale becomes 3 channels.

    A file that does not start with the JPEG marker (FF D8 FF) is refused, naming the format
    it looks like (a PNG renamed .JPEG would otherwise be decoded silently by OpenCV).
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    if not data.startswith(_JPEG_MAGIC):
        kind = next(
            (name for magic, name in _OTHER_FORMATS.items() if data.startswith(magic)), None
        )
        what = (
            f"the file is a {kind}" if kind else "it does not start with the JPEG marker FF D8 FF"
        )
        raise DataError(
            f"{path}: not a readable JPEG ({what}); the dataset's images must be JPEG files"
        )
    # the stored pixel grid, the one the boxes are on: an EXIF orientation tag would rotate the image alone
    img = cv2.imdecode(
        np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    )
    if img is None:
        raise DataError(f"{path}: not a readable JPEG (corrupt or truncated)")
    return img


def decode_images(paths, progress=True, workers=None):
    """(N, H, W, 3) uint8 BGR of the images at ``paths``, decoded by a thread pool (cv2 releases the GIL).

    All images must have the first one's size; the message of a mismatch names both files.
    """
    first = _decode(paths[0])
    images = np.empty((len(paths),) + first.shape, np.uint8)

    def work(start):
        for i in range(start, min(start + _CHUNK, len(paths))):
            img = _decode(paths[i])
            if img.shape != first.shape:
                raise DataError(
                    f"{paths[i]}: image is {img.shape[1]}x{img.shape[0]} (WxH), but "
                    f"{paths[0]} is {first.shape[1]}x{first.shape[0]}; a split must have one size"
                )
            images[i] = img
        return min(start + _CHUNK, len(paths)) - start

    workers = workers or min(
        16, (os.cpu_count() or 1) + 2
    )  # a few extra threads hide file-read latency
    pool = concurrent.futures.ThreadPoolExecutor(workers)
    try:
        with get_tqdm(total=len(paths), desc="decoding JPEGs", disable=not progress) as bar:
            for done in pool.map(work, range(0, len(paths), _CHUNK)):
                bar.update(done)
    finally:  # on an error, stop at once rather than decode the rest first
        pool.shutdown(wait=True, cancel_futures=True)
    return images


def load_split(root, split, cache_dir=None, progress=True):
    """Load ``<root>``'s ``split`` ("train" or "val") as a :class:`Split`, decoding once and caching.

    Args:
        root: the Tiny ImageNet folder (the one holding wnids.txt).
        split: "train" or "val".
        cache_dir: where to keep the decoded array; default ``<root>/.cache`` if writable,
            else ``~/.cache/wsol-tinyimagenet``.
        progress: show a progress bar while decoding.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = os.fspath(root)
    ann = read_annotations(root, split)
    paths = [os.path.join(root, rel) for rel in ann.files]

    dirs = cache_dirs(root, cache_dir)
    stem = cache_stem(root, split, ann)
    images, path = load_cache(dirs, stem, (len(paths),) + _decode(paths[0]).shape)
    if images is None:
        logger.info(f"{root}: decoding {len(paths)} {split} images (once; cached afterwards)")
        images = decode_images(paths, progress=progress)
        path = save_cache(dirs, stem, images)
    if path:
        logger.info(f"{split} split: {images.shape} uint8, cache {path}")

    height, width = images.shape[1:3]
    boxes = ann.boxes.copy()
    beyond = np.flatnonzero((boxes[:, 0] >= width) | (boxes[:, 1] >= height))
    if len(beyond):  # it would be clipped to a 1-pixel corner box and scored
        i = beyond[0]
        raise DataError(
            f"{ann.lines[i]}: box {boxes[i].tolist()} lies wholly outside the {width}x{height} (WxH) "
            f"image {paths[i]}"
            + (f" (and {len(beyond) - 1} more boxes)" if len(beyond) > 1 else "")
        )
    if split == "train":
        empty = [w for k, w in enumerate(ann.wnids) if not np.any(ann.labels == k)]
        if empty:
            logger.warn(
                f"{len(empty)} class(es) of wnids.txt have no training image and will never be "
                f"predicted well: {', '.join(empty[:5])}{' ...' if len(empty) > 5 else ''}"
            )
    # Tiny ImageNet boxes are pixel indices in 0..63 (docs/sources.md).  A box that
    # reaches past the far edge (e.g. x1 == W) cannot be checked against the
    # real files here, so it is clipped to the image and reported, never
    # dropped and never a reason to refuse the whole dataset.
    outside = np.flatnonzero((boxes[:, 2] >= width) | (boxes[:, 3] >= height))
    if len(outside):
        np.minimum(boxes, [width - 1, height - 1, width - 1, height - 1], out=boxes)
        logger.warn(
            f"{len(outside)} {split} box(es) reach past the {width}x{height} (WxH) image and were "
            f"clipped to it; the first is at {ann.lines[outside[0]]}"
        )
    return Split(images=images, labels=ann.labels, boxes=boxes, files=ann.files, wnids=ann.wnids)


def holdout_indices(labels, per_class, names=None):
    """Sorted int64 indices of the last ``per_class`` images of each class, in file (annotation) order.

    labels: (N,) ints.  ``per_class`` 0 gives an empty array.  A class with ``per_class`` images
    or fewer would have none left to train on: a DataError naming it (``names[label]`` if given).
    """
    if int(per_class) != per_class or per_class < 0:
        raise DataError(
            f"hold-out must be a whole number of images per class >= 0, got {per_class}"
        )
    labels = np.asarray(labels)
    if per_class == 0:
        return np.zeros(0, np.int64)
    held = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) <= per_class:
            name = f"{names[c]} (label {c})" if names is not None else f"with label {c}"
            raise DataError(
                f"a hold-out of {per_class} images per class leaves class {name} "
                f"no training image: it has {len(idx)}"
            )
        held.append(idx[-int(per_class) :])
    return np.sort(np.concatenate(held))


def _subset(split, idx):
    return Split(
        images=split.images[idx],
        labels=split.labels[idx],
        boxes=split.boxes[idx],
        files=[split.files[i] for i in idx],
        wnids=split.wnids,
    )


def split_holdout(split, per_class):
    """``(kept, held)``: ``held`` the last ``per_class`` images of each class (file order), ``kept`` the rest.

    Both are :class:`Split` objects (images copied), each in file order; ``per_class`` 0 gives
    ``(split, an empty Split)``.  See :func:`holdout_indices`.
    """
    held = holdout_indices(split.labels, per_class, names=split.wnids)
    if len(held) == 0:
        return split, _subset(split, held)
    keep = np.ones(len(split), bool)
    keep[held] = False
    return _subset(split, np.flatnonzero(keep)), _subset(split, held)


class TinyImageNet(RNGDataFlow):
    """Datapoints ``[image, label, box]`` of a split, one image at a time.

    image: (H, W, 3) uint8 BGR (a copy); label: int in [0, num_classes) (wnids.txt order);
    box: (4,) int32 [x0, y0, x1, y1], max inclusive, as annotated.

    ``split``: a loaded :class:`Split` (:func:`load_split`); ``shuffle=True`` visits the images in a
    new random order every epoch.
    """

    def __init__(self, split, shuffle=False):
        self.split, self.shuffle = split, shuffle

    def __len__(self):
        return len(self.split)

    def __iter__(self):
        order = np.arange(len(self.split))
        if self.shuffle:
            self.rng.shuffle(order)
        for i in order:
            yield [
                self.split.images[i].copy(),
                int(self.split.labels[i]),
                self.split.boxes[i].copy(),
            ]
