"""Atomic output files: written to a temporary file in the same folder, flushed to disk, then renamed.

A reader never sees a half-written JSON, npz or PNG, and an interrupted run
(Ctrl-C, kill -9, a power cut) leaves the previous file in place.  Used by
evaluate.py (its outputs), training/ (settings.json, done.json, stats.json)
and reproduce/ (results and run records).

Every output goes through :func:`write_bytes`: a failed write (full disk, file size
limit, read-only folder) raises :class:`WriteError`, one message naming the path and the
OS's reason ("No space left on device"); it is an OSError too, for callers that fall back.
:func:`write_folder` does the same for a whole folder (the synthetic dataset).
:func:`hold_lock` is the lock that lets one train.py at a time use a logdir.

Temporaries are named after their writer, ``.NAME.HOST-PID.XXXXXXXX.tmp`` (a folder:
``.NAME.HOST-PID.partial``), so that those of a writer that died (``kill -9``, a power cut)
are recognised and removed by :func:`remove_stale`, which a later process runs at its first
write into the folder; a temporary of a live process, or of another host, is left alone.
"""

import fcntl
import io
import json
import os
import re
import shutil
import socket
import tempfile

import cv2
import numpy as np

from errors import UserError


class WriteError(UserError, OSError):
    """An output that could not be written: ``"<path>: cannot write (<OS reason>)"``."""

    def __init__(self, path, error):
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        super().__init__(f"{path}: cannot write ({reason})")
        self.path, self.errno = path, getattr(error, "errno", None)


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
    folder, base = os.path.split(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{base}.{_owner()}.", suffix=".tmp", dir=folder)
    except OSError as e:
        raise WriteError(path, e) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise WriteError(path, e) from None
        raise
    if folder not in _SWEPT:  # once per folder and process: a --vis folder gets thousands of writes
        _SWEPT.add(folder)
        remove_stale(folder, "")


_SWEPT = set()  # folders whose stale temporaries this process removed (write_bytes)


def _owner():
    """``HOST-PID`` of this process, as temporaries name their writer."""
    return re.sub(r"[^\w-]", "_", socket.gethostname().split(".")[0]) + f"-{os.getpid()}"


def is_running(pid):
    """True if process ``pid`` exists on this machine (another user's included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(folder, startswith):
    """Remove the temporaries in ``folder`` whose name (after the dot) starts with ``startswith`` and
    whose writer, a process of this host, no longer runs; a file or folder removed meanwhile is skipped."""
    host = _owner().rsplit("-", 1)[0]
    stale = re.compile(
        rf"^\.{re.escape(startswith)}.*\.{re.escape(host)}-(\d+)\.(\w+\.tmp|partial)$"
    )
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        match = stale.match(name)
        if match and not is_running(int(match.group(1))):
            path = os.path.join(folder, name)
            try:
                shutil.rmtree(path) if match.group(2) == "partial" else os.remove(path)
            except FileNotFoundError:
                pass


def write_folder(out, fill, done, last=None):
    """Make the folder ``out`` atomically: ``fill(tmp)`` writes it into ``.NAME.HOST-PID.partial``
    beside it, which is then renamed to ``out`` (at once if ``out`` is absent or empty; else entry
    by entry, ``last`` last).  ``done()``: True if another process completed ``out`` meanwhile
    (its folder is kept).  An interrupted or failed ``fill`` leaves no ``out`` and no temporary
    (after ``kill -9``, the next call removes it)."""
    parent, base = os.path.split(os.path.abspath(out))
    remove_stale(parent, base)
    tmp = os.path.join(parent, f".{base}.{_owner()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)  # this process's own, from an earlier failed call
    os.makedirs(tmp)
    try:
        fill(tmp)
        try:
            os.rename(tmp, out)
        except OSError:
            if done():
                return
            for name in sorted(os.listdir(tmp), key=lambda n: n == last):
                os.rename(os.path.join(tmp, name), os.path.join(out, name))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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


def hold_lock(path, what):
    """Take an exclusive ``flock`` on ``path`` (created if need be) and write our PID in it.

    Returns the open file: keep it, the lock lasts until it is closed or the process dies
    (the OS releases it even after ``kill -9``).  A lock held by another process is a
    UserError naming ``what`` and the PID written by its holder.
    """
    try:
        f = open(path, "a+")
    except OSError as e:
        raise WriteError(path, e) from None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        pid = f.read().strip() or "unknown"
        f.close()
        raise UserError(
            f"{what}: in use by another process (PID {pid}, lock {path}); wait for it to end "
            "or stop it"
        ) from None
    f.seek(0)
    f.truncate()
    f.write(f"{os.getpid()}\n")
    f.flush()
    return f
