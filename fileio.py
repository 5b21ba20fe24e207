"""Atomic output files: written to a temporary file in the same folder, flushed to disk, then renamed.

A reader never sees a half-written JSON, npz or PNG, and an interrupted run
(Ctrl-C, kill -9, a power cut) leaves the previous file in place.  Used by
evaluate.py (its outputs), training/ (settings.json, done.json, stats.json)
and tables/ (results and run records).
"""
import io
import json
import os
import tempfile

import cv2
import numpy as np


def _umask():
    """The process umask: read from /proc on Linux (no change of process state), else by
    setting it and back (the only portable way)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_bytes(path, data):
    """Write ``data`` to ``path`` atomically (same-folder temporary file + ``os.replace``).

    The file gets the mode a plain ``open(path, "w")`` would give (0666 less the umask),
    not ``mkstemp``'s 0600, so that others on a shared filesystem can read the results.
    """
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json(path, obj, sort_keys=False):
    write_bytes(path, (json.dumps(obj, indent=1, sort_keys=sort_keys) + "\n").encode("utf-8"))


def write_text(path, text):
    write_bytes(path, text.encode("utf-8"))


def write_npz(path, **arrays):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_bytes(path, buffer.getvalue())


def write_npy(path, array):
    """``array`` as a ``.npy`` file (``np.load`` reads it back); used by the decoded-image cache."""
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    write_bytes(path, buffer.getbuffer())


def write_png(path, image):
    """``image``: uint8 ``(H, W, 3)`` BGR or ``(H, W)``."""
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"could not encode {path} as PNG")
    write_bytes(path, encoded.tobytes())


def check_writable(path, what):
    """Return an error message if ``path`` cannot be created (its folder missing or read-only), else None."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return f"{what} {path} is a folder, expected a file name"
    if not os.path.isdir(folder):
        return f"{what} {path}: folder {folder} does not exist"
    if not os.access(folder, os.W_OK):
        return f"{what} {path}: folder {folder} is not writable"
    return None
