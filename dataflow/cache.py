"""The decoded-image cache of a split: one verified ``.npy`` file per dataset state.

Entry name: ``tinyimagenet-<split>-<root hash>-<key>-<checksum>.npy``.

* ``key`` hashes everything the pixels depend on (split name, every image file
  with its size, mtime, ctime and inode, the annotation files, wnids.txt): a changed dataset
  gets a new key and is decoded again, never served stale.
* ``checksum`` (:func:`checksum`) hashes the array itself, shape and dtype
  included; it is checked at every load, so a damaged entry (bytes zeroed or
  changed in place, a header edited) is found, reported, decoded again and
  replaced.  The shape is also checked against the annotations (image count)
  and the first image's size.

Entries are written atomically (``fileio.write_npy``; the temporaries of a write killed midway,
up to a whole split, are removed by the next process that writes there).  Stale entries of the
same split and root are removed after a write; another process removing them
at the same time is harmless.
"""

import concurrent.futures
import hashlib
import os
import zlib

import numpy as np

import fileio
from tensorpack.utils import logger

from dataflow.annotations import stat_image

CACHE_VERSION = 1  # bump when the cached array's meaning changes
_HASH_CHUNK = 1 << 24  # bytes per CRC-32: 16 MiB, 74 chunks for the 1.2 GB train split


def cache_dirs(root, cache_dir):
    """Candidate cache folders, best first: the explicit one, <root>/.cache, ~/.cache/wsol-tinyimagenet."""
    if cache_dir is not None:
        return [os.fspath(cache_dir)]
    return [
        os.path.join(root, ".cache"),
        os.path.join(os.path.expanduser("~"), ".cache", "wsol-tinyimagenet"),
    ]


def cache_stem(root, split, ann):
    """``tinyimagenet-<split>-<root hash>-<key>-``: the entry name without the checksum.

    ``ann`` is the split's :class:`dataflow.annotations.Annotations`; every image is
    ``stat``-ed (a dangling link is a DataError naming it).
    """
    h = hashlib.sha256(f"tinyimagenet-cache v{CACHE_VERSION} {split}\n".encode())
    for rel, where in sorted(zip(ann.files, ann.lines)):
        st = stat_image(os.path.join(root, rel), where)
        # ctime and inode too: `cp -p` / `rsync -a` keep size and mtime but not these
        h.update(f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\t{st.st_ctime_ns}\t{st.st_ino}\n".encode())
    files = (
        [os.path.join("train", w, f"{w}_boxes.txt") for w in ann.wnids]
        if split == "train"
        else [os.path.join("val", "val_annotations.txt")]
    )
    for rel in [
        "wnids.txt"
    ] + files:  # labels and boxes are parsed anew each time; hashed for safety
        with open(os.path.join(root, rel), "rb") as f:
            h.update(rel.encode() + b"\0" + f.read() + b"\0")
    # split and dataset folder in the name, so that a new entry replaces only its own stale ones
    folder = hashlib.sha256(os.path.realpath(root).encode()).hexdigest()[:8]
    return f"tinyimagenet-{split}-{folder}-{h.hexdigest()[:32]}-"


def _prefix(stem):
    """The part of a stem shared by all entries of one split and root (the key dropped)."""
    return stem[: stem.rstrip("-").rindex("-") + 1]


def checksum(images):
    """16 hex digits identifying ``images`` (any numpy array): its dtype, its shape and its bytes.

    CRC-32 of each 16 MiB chunk (zlib, in a thread pool: it releases the GIL), then SHA-256 of
    the dtype, the shape and the chunk CRCs.  Not a defence against forgery: a guard against
    damage.
    """
    data = memoryview(np.ascontiguousarray(images).reshape(-1).view(np.uint8))
    chunks = [data[i : i + _HASH_CHUNK] for i in range(0, len(data), _HASH_CHUNK)]
    with concurrent.futures.ThreadPoolExecutor(min(4, os.cpu_count() or 1)) as pool:
        crcs = list(pool.map(zlib.crc32, chunks))
    h = hashlib.sha256(f"{images.dtype.str} {tuple(images.shape)}\n".encode())
    h.update(np.array(crcs, "<u4").tobytes())
    return h.hexdigest()[:16]


def load_cache(dirs, stem, shape):
    """``(images, path)`` of the first valid entry for ``stem`` in ``dirs``, else ``(None, None)``.

    Valid: readable, uint8 of exactly ``shape`` and matching the checksum in its name.  Every
    other entry found is reported with a warning (and later replaced by :func:`save_cache`).
    """
    for folder in dirs:
        try:
            names = sorted(
                n for n in os.listdir(folder) if n.startswith(stem) and n.endswith(".npy")
            )
        except OSError:
            continue
        for name in names:
            path = os.path.join(folder, name)
            try:
                images = np.load(path, allow_pickle=False)
            except FileNotFoundError:  # another process removed it just now
                continue
            except (OSError, ValueError, EOFError) as e:
                logger.warn(f"{path}: unreadable cache ({e}); decoding again")
                continue
            if images.dtype != np.uint8 or images.shape != tuple(shape):
                logger.warn(
                    f"{path}: cache holds {images.dtype} {images.shape}, the annotations and the "
                    f"first image say uint8 {tuple(shape)}; decoding again"
                )
                continue
            if checksum(images) != name[len(stem) : -len(".npy")]:
                logger.warn(
                    f"{path}: damaged cache (its checksum does not match its content); decoding again"
                )
                continue
            return images, path
    return None, None


def save_cache(dirs, stem, images):
    """Write ``images`` in the first writable folder of ``dirs``; remove that folder's stale entries.

    Returns the path written, or None (with a warning) when no folder is writable.
    """
    name = f"{stem}{checksum(images)}.npy"
    for folder in dirs:
        try:
            os.makedirs(folder, exist_ok=True)
            fileio.write_npy(os.path.join(folder, name), images)
        except OSError as e:
            logger.warn(f"{folder}: cannot write the cache there ({e})")
            continue
        prefix = _prefix(stem)
        for old in os.listdir(folder):
            if old.startswith(prefix) and old.endswith(".npy") and old != name:
                try:
                    os.remove(os.path.join(folder, old))
                except FileNotFoundError:  # another process removed it first
                    pass
        return os.path.join(folder, name)
    return None
