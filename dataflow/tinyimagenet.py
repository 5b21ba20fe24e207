"""Read a Tiny ImageNet split into memory once; serve it as a tensorpack DataFlow.

Layout (facts.md, "Data: Tiny ImageNet")::

    <root>/wnids.txt                               class order: label k = line k
    <root>/train/<wnid>/images/<wnid>_<i>.JPEG
    <root>/train/<wnid>/<wnid>_boxes.txt           file  x0 y0 x1 y1
    <root>/val/images/val_<i>.JPEG
    <root>/val/val_annotations.txt                 file  wnid  x0 y0 x1 y1

``load_split(root, "train" | "val")`` checks every annotation line against
the files on disk, decodes all JPEGs (thread pool, progress bar) into one
uint8 array and caches it as a ``.npy`` file, so later runs load the split in
about a second.  The cache key hashes the split name, the sorted list of image
files with their sizes and mtimes, the annotation files and ``wnids.txt``: a
changed dataset is decoded again, never served stale.

Bad input raises :class:`dataflow.DataError`, naming the file (and line).
"""
import concurrent.futures
import hashlib
import os
import tempfile
from dataclasses import dataclass, field

import cv2
import numpy as np

import tf_env  # noqa: F401  (before tensorpack, INTERFACES.md)
from tensorpack.dataflow import RNGDataFlow
from tensorpack.utils import logger
from tensorpack.utils.utils import get_tqdm

from dataflow import DataError

SPLITS = ("train", "val")
CACHE_VERSION = 1  # bump when the cached array's meaning changes
_CHUNK = 256  # images per decoding task: large enough to amortise the thread hand-off


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
            step = max(1, 2 ** 22 // (self.images.shape[1] * self.images.shape[2]))
            for start in range(0, len(self.images), step):
                chunk = self.images[start:start + step]
                chunk = chunk.reshape(-1, chunk.shape[2], 3)  # one tall image
                for c in range(3):
                    hist[c] += cv2.calcHist([chunk], [c], None, [256], [0, 256]).ravel()
            values = np.arange(256)
            count = hist.sum(1)
            mean = (hist * values).sum(1) / count
            var = (hist * values ** 2).sum(1) / count - mean ** 2
            self._stats = (mean, np.sqrt(np.maximum(var, 0)))
        return self._stats

    def mean_bgr(self):
        """(3,) float64 per-channel mean of all pixels, BGR order."""
        return self._channel_stats()[0].copy()

    def std_bgr(self):
        """(3,) float64 per-channel standard deviation of all pixels, BGR order."""
        return self._channel_stats()[1].copy()


def _read_lines(path):
    """[(line number from 1, fields)] of the non-blank lines of a text file."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    with open(path, encoding="utf-8", errors="replace") as f:
        return [(n, line.split()) for n, line in enumerate(f, 1) if line.strip()]


def read_wnids(root):
    """The class order: the wnids of ``<root>/wnids.txt``, one a line, no duplicates."""
    path = os.path.join(root, "wnids.txt")
    wnids, seen = [], {}
    for n, fields in _read_lines(path):
        if len(fields) != 1:
            raise DataError(f"{path}:{n}: expected one wnid, got {' '.join(fields)!r}")
        if fields[0] in seen:
            raise DataError(f"{path}:{n}: wnid {fields[0]} repeats line {seen[fields[0]]}")
        seen[fields[0]] = n
        wnids.append(fields[0])
    if not wnids:
        raise DataError(f"{path}: no classes")
    return wnids


def _parse_box(fields, where):
    try:
        box = [int(x) for x in fields]
    except ValueError:
        raise DataError(f"{where}: box {' '.join(fields)!r} is not four integers") from None
    if not (0 <= box[0] <= box[2] and 0 <= box[1] <= box[3]):
        raise DataError(f"{where}: box {box} is not [x0, y0, x1, y1] with 0 <= x0 <= x1 and 0 <= y0 <= y1")
    return box


def _check_against_disk(folder, ann, group):
    """Every annotated image of ``group`` [(name, "file:line")] exists in ``folder``, every image there is annotated."""
    if not os.path.isdir(folder):
        raise DataError(f"{folder}: no such directory")
    on_disk = {f for f in os.listdir(folder) if not f.startswith(".")}  # hidden files are not images
    seen = {}
    for name, where in group:
        if name in seen:
            raise DataError(f"{where}: {name} is annotated again (first at {seen[name]})")
        seen[name] = where
        if name not in on_disk:
            raise DataError(f"{where}: image {os.path.join(folder, name)} does not exist")
    unannotated = sorted(on_disk - set(seen))
    if unannotated:
        more = f" (nor do {len(unannotated) - 1} more)" if len(unannotated) > 1 else ""
        raise DataError(f"{os.path.join(folder, unannotated[0])}: image has no line in {ann}{more}")


def _annotations(root, split, wnids):
    """[(relative image path, label, box, "annotation file:line")] in annotation order, checked against the files on disk."""
    label_of = {w: k for k, w in enumerate(wnids)}
    records = []
    if split == "train":
        for wnid in wnids:
            folder = os.path.join(root, "train", wnid)
            if not os.path.isdir(folder):
                raise DataError(f"{folder}: no such directory (class {wnid} of wnids.txt)")
            ann, group = os.path.join(folder, f"{wnid}_boxes.txt"), []
            for n, fields in _read_lines(ann):
                if len(fields) != 5:
                    raise DataError(f"{ann}:{n}: expected 'file x0 y0 x1 y1', got {' '.join(fields)!r}")
                group.append((fields[0], f"{ann}:{n}"))
                records.append((f"train/{wnid}/images/{fields[0]}", label_of[wnid],
                                _parse_box(fields[1:], f"{ann}:{n}"), f"{ann}:{n}"))
            _check_against_disk(os.path.join(folder, "images"), ann, group)
    else:
        ann, group = os.path.join(root, "val", "val_annotations.txt"), []
        for n, fields in _read_lines(ann):
            if len(fields) != 6:
                raise DataError(f"{ann}:{n}: expected 'file wnid x0 y0 x1 y1', got {' '.join(fields)!r}")
            if fields[1] not in label_of:
                raise DataError(f"{ann}:{n}: wnid {fields[1]} is not in {os.path.join(root, 'wnids.txt')}")
            group.append((fields[0], f"{ann}:{n}"))
            records.append((f"val/images/{fields[0]}", label_of[fields[1]],
                            _parse_box(fields[2:], f"{ann}:{n}"), f"{ann}:{n}"))
        _check_against_disk(os.path.join(root, "val", "images"), ann, group)
    if not records:
        raise DataError(f"{os.path.join(root, split)}: the {split} split has no annotated images")
    return records


def _cache_key(root, split, files, wnids):
    """Hex digest of everything the decoded array depends on."""
    h = hashlib.sha256(f"tinyimagenet-cache v{CACHE_VERSION} {split}\n".encode())
    for rel in sorted(files):
        st = os.stat(os.path.join(root, rel))
        h.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    ann = ([os.path.join("train", w, f"{w}_boxes.txt") for w in wnids] if split == "train"
           else [os.path.join("val", "val_annotations.txt")])
    for rel in ["wnids.txt"] + ann:  # labels and boxes are parsed anew each time; hashed for safety
        with open(os.path.join(root, rel), "rb") as f:
            h.update(rel.encode() + b"\0" + f.read() + b"\0")
    return h.hexdigest()[:32]


def _cache_dirs(root, cache_dir):
    """Candidate cache folders, best first: the explicit one, <root>/.cache, ~/.cache/wsol-tinyimagenet."""
    if cache_dir is not None:
        return [os.fspath(cache_dir)]
    return [os.path.join(root, ".cache"), os.path.join(os.path.expanduser("~"), ".cache", "wsol-tinyimagenet")]


def _cache_prefix(root, split):
    # Split and dataset folder in the name, so that a new entry replaces only its own stale ones.
    return f"tinyimagenet-{split}-{hashlib.sha256(os.path.realpath(root).encode()).hexdigest()[:8]}-"


def _load_cache(dirs, name, count):
    for folder in dirs:
        path = os.path.join(folder, name)
        if not os.path.isfile(path):
            continue
        try:
            images = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            logger.warn(f"{path}: unreadable cache ({e}); decoding again")
            continue
        if images.dtype == np.uint8 and images.ndim == 4 and images.shape[0] == count and images.shape[3] == 3:
            return images, path
        logger.warn(f"{path}: cache holds {images.dtype} {images.shape}, not {count} images; decoding again")
    return None, None


def _save_cache(dirs, prefix, name, images):
    """Write ``images`` atomically (temporary file + os.replace) in the first writable folder; drop stale entries."""
    for folder in dirs:
        tmp = None
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=name + ".", suffix=".tmp", dir=folder)
            with os.fdopen(fd, "wb") as f:
                np.save(f, images, allow_pickle=False)
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a cache may be shared
            os.replace(tmp, os.path.join(folder, name))
        except OSError as e:
            if tmp is not None and os.path.exists(tmp):
                os.remove(tmp)
            logger.warn(f"{folder}: cannot write the cache there ({e})")
            continue
        for old in os.listdir(folder):
            if old.startswith(prefix) and old.endswith(".npy") and old != name:
                os.remove(os.path.join(folder, old))
        return os.path.join(folder, name)
    return None


def _decode(path):
    """(H, W, 3) uint8 BGR from a JPEG file; grayscale becomes 3 channels."""
    try:
        with open(path, "rb") as f:
            buf = np.frombuffer(f.read(), np.uint8)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
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
                raise DataError(f"{paths[i]}: image is {img.shape[1]}x{img.shape[0]} (WxH), but "
                                f"{paths[0]} is {first.shape[1]}x{first.shape[0]}; a split must have one size")
            images[i] = img
        return min(start + _CHUNK, len(paths)) - start

    workers = workers or min(16, (os.cpu_count() or 1) + 2)  # a few extra threads hide file-read latency
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
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such directory (expected the Tiny ImageNet root, with wnids.txt)")
    wnids = read_wnids(root)
    records = _annotations(root, split, wnids)
    files = [rel for rel, *_ in records]
    labels = np.array([label for _, label, _, _ in records], np.int32)
    boxes = np.array([box for _, _, box, _ in records], np.int32).reshape(-1, 4)

    dirs = _cache_dirs(root, cache_dir)
    prefix = _cache_prefix(root, split)
    name = prefix + _cache_key(root, split, files, wnids) + ".npy"
    images, path = _load_cache(dirs, name, len(files))
    if images is None:
        logger.info(f"{root}: decoding {len(files)} {split} images (once; cached afterwards)")
        images = decode_images([os.path.join(root, rel) for rel in files], progress=progress)
        path = _save_cache(dirs, prefix, name, images)
    if path:
        logger.info(f"{split} split: {images.shape} uint8, cache {path}")

    height, width = images.shape[1:3]
    # facts.md: Tiny ImageNet boxes are pixel indices in 0..63.  A box that
    # reaches past the far edge (e.g. x1 == W) cannot be checked against the
    # real files here, so it is clipped to the image and reported, never
    # dropped and never a reason to refuse the whole dataset.
    outside = [where for (_, _, box, where) in records if box[2] >= width or box[3] >= height]
    if outside:
        np.minimum(boxes, [width - 1, height - 1, width - 1, height - 1], out=boxes)
        logger.warn(f"{len(outside)} {split} box(es) reach past the {width}x{height} (WxH) image and were "
                    f"clipped to it; the first is at {outside[0]}")
    return Split(images=images, labels=labels, boxes=boxes, files=files, wnids=wnids)


class TinyImageNet(RNGDataFlow):
    """Datapoints ``[image, label, box]`` of a split, one image at a time.

    image: (H, W, 3) uint8 BGR (a copy); label: int in [0, num_classes) (wnids.txt order);
    box: (4,) int32 [x0, y0, x1, y1], max inclusive, as annotated.

    ``TinyImageNet(split_object)`` or ``TinyImageNet(root, "train" | "val")``;
    ``shuffle=True`` visits the images in a new random order every epoch.
    """

    def __init__(self, root_or_split, split=None, shuffle=False, **load_kwargs):
        if isinstance(root_or_split, Split):
            if split is not None:
                raise ValueError("give a Split object, or a root and a split name, not both")
            self.split = root_or_split
        else:
            if split is None:
                raise ValueError("TinyImageNet(root, split): split ('train' or 'val') is missing")
            self.split = load_split(root_or_split, split, **load_kwargs)
        self.shuffle = shuffle

    def __len__(self):
        return len(self.split)

    def __iter__(self):
        order = np.arange(len(self.split))
        if self.shuffle:
            self.rng.shuffle(order)
        for i in order:
            yield [self.split.images[i].copy(), int(self.split.labels[i]), self.split.boxes[i].copy()]
