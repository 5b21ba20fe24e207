"""The files of a run folder (logdir), their one reader, and the state they add up to.

``run_state`` tells train.py and the table scripts what a folder holds (NEW,
RESUMABLE, TRAINED, EVALUATED or CONFLICT).  :func:`read_settings` is the one reader of
settings.json, :func:`read_evaluation` tells whether a folder's eval.json (read by
:meth:`runrecord.evaldoc.EvalDoc.read`) counts.  :func:`run_name` names a run (and its default folder).
"""

import hashlib
import json
import os

import fileio
from errors import UserError
from runrecord.machine import add_segment
from runrecord.checkpoints import CHECKPOINT_NAME, STATE_FILE, checkpoint_files
from runrecord.evaldoc import EvalDoc
from runrecord.settings import RunSettings

SETTINGS = "settings.json"
DONE = "done.json"
STATS = "stats.json"  # tensorpack's JSONWriter.FILENAME
EVAL = "eval.json"

NEW, RESUMABLE, TRAINED, EVALUATED, CONFLICT = (
    "new",
    "resumable",
    "trained",
    "evaluated",
    "conflict",
)

# --------------------------------------------------------------------------- files


def run_name(depth, aug, batch, holdout=0, seed=0):
    """A run's name, and its folder under train_log/ or a table's log root: ``r{depth}-{aug}-b{batch}``,
    then ``-h{holdout}`` with held-out images and ``-s{seed}`` for a seed other than 0
    (``r18-gr-b256-h10-s2``)."""
    return (
        f"r{depth}-{aug}-b{batch}"
        + (f"-h{holdout}" if holdout else "")
        + (f"-s{seed}" if seed else "")
    )


def read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read JSON ({e})") from None


def write_json(path, obj):
    """Atomic and fsync'ed (fileio): a power cut leaves the old or the new file.
    A failed write (full disk, read-only folder) is a UserError naming the path (fileio.WriteError)."""
    fileio.write_json(path, obj, sort_keys=True)


def settings_path(logdir_or_prefix):
    folder = (
        logdir_or_prefix if os.path.isdir(logdir_or_prefix) else os.path.dirname(logdir_or_prefix)
    )
    return os.path.join(folder, SETTINGS)


def read_settings(path):
    """``(document, None)`` if ``path`` is a readable settings.json (a JSON object), else
    ``(None, why not)``.  The one reader of settings.json (:func:`load_settings`, evaluate.py)."""
    if not os.path.isfile(path):
        return None, f"{path} does not exist"
    try:
        doc = read_json(path)
    except UserError as e:
        return None, str(e)
    if not isinstance(doc, dict):
        return None, f"{path}: not train.py's settings.json layout (not a JSON object)"
    for section in ("model", "train"):  # every reader looks into these two
        if not isinstance(doc.get(section), dict):
            return None, f'{path}: not train.py\'s settings.json layout (no "{section}" object)'
    return doc, None


def load_settings(logdir_or_prefix):
    """RunSettings of a logdir (or of the folder of a checkpoint prefix); None if it has none."""
    path = settings_path(logdir_or_prefix)
    if not os.path.isfile(path):
        return None
    doc, problem = read_settings(path)
    if problem:
        raise UserError(problem)
    try:
        return RunSettings.from_json(doc)
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None


# --------------------------------------------------------------------------- eval.json's checkpoint


def checkpoint_digest(prefix):
    """sha256 hex of checkpoint ``prefix``'s ``.index`` file.  The index holds each tensor's
    length and CRC32C (TensorFlow's tensor bundle), so the digest names the weights' content,
    whatever folder the files are in."""
    h = hashlib.sha256()
    with open(prefix + ".index", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def checkpoint_reference(prefix, eval_json=None):
    """How eval.json names the checkpoint it evaluated: ``{"checkpoint": path, "checkpoint_sha256":
    digest}``.  The path is relative to eval.json's folder (``model-276`` for a run's own eval.json),
    so that the run folder stays valid when it is moved or copied; absolute without ``eval_json``."""
    path = os.path.abspath(prefix)
    if eval_json:
        path = os.path.relpath(path, os.path.dirname(os.path.abspath(eval_json)))
    return {"checkpoint": path, "checkpoint_sha256": checkpoint_digest(prefix)}


def note_machine(logdir, record):
    """Add this machine's ``record`` (runrecord.machine) to the logdir's settings.json if the run's
    last segment trained elsewhere: a run resumed on another machine names both."""
    path = os.path.join(logdir, SETTINGS)
    doc, problem = read_settings(path)
    if problem:
        raise UserError(problem)
    machines = add_segment(doc.get("machine"), record)
    if machines != doc.get("machine"):
        write_json(path, dict(doc, machine=machines))


# --------------------------------------------------------------------------- state


def _mtime(path):
    try:
        return os.path.getmtime(path)
    except OSError:
        return None


def read_evaluation(logdir):
    """``(EvalDoc, None)`` if the folder's eval.json is usable, else ``(None, why not)``.

    Usable: newer than done.json, readable (:meth:`EvalDoc.read`), written by evaluate.py for this
    folder's newest checkpoint (not another run's; named relative to the folder, and with the
    content digest of :func:`checkpoint_reference`) on the whole val split (no --limit).
    """
    path = os.path.join(logdir, EVAL)
    ev, done = _mtime(path), _mtime(os.path.join(logdir, DONE))
    if ev is None:
        return None, "trained, not evaluated"
    doc, problem = EvalDoc.read(path)
    if problem:
        return None, problem.replace(path, EVAL)
    problem = _checkpoint_problem(logdir, doc, done is not None and ev < done)
    return (None, problem) if problem else (doc, None)


def _checkpoint_problem(logdir, doc, older):
    """Why ``doc`` (the folder's eval.json, ``older`` than done.json or not) does not count, or None."""
    if older and doc.checkpoint_sha256 is None:  # with the digest, times do not matter (a copy)
        return f"{EVAL} is older than {DONE}"
    checkpoint, scope = doc.checkpoint, doc.scope
    steps = checkpoint_files(logdir)
    newest = (
        os.path.join(os.path.realpath(logdir), f"{CHECKPOINT_NAME}-{max(steps)}") if steps else None
    )
    if not isinstance(checkpoint, str) or scope is None:
        return f"{EVAL} does not name its checkpoint and images (written by an older evaluate.py)"
    path = os.path.realpath(
        os.path.join(logdir, checkpoint)
    )  # relative to eval.json's folder; or absolute
    if os.path.dirname(path) != os.path.realpath(logdir):
        return f"{EVAL} evaluates {checkpoint}, a checkpoint of another folder" + (
            " (an absolute path, as evaluate.py wrote before issue 24: a moved or copied run is evaluated "
            "again)"
            if os.path.isabs(checkpoint)
            else ""
        )
    if newest and path != newest:
        return f"{EVAL} evaluates {os.path.basename(checkpoint)}, not the newest {os.path.basename(newest)}"
    digest = doc.checkpoint_sha256
    if digest is not None and os.path.isfile(path + ".index") and digest != checkpoint_digest(path):
        return f"{EVAL} evaluates another {os.path.basename(path)} than the one here (its sha256 differs)"
    split, limit, count = scope
    if limit is not None or split != "val":
        return f"{EVAL} covers {count} {split} images (--limit {limit}), not the whole val split"
    return None


def run_state(logdir, expected=None):
    """``(state, reason)`` of a logdir: :func:`folder_state` without the document."""
    return folder_state(logdir, expected)[:2]


def folder_state(logdir, expected=None):
    """``(state, reason, eval)`` of a logdir, from its files only (cheap: no checkpoint is read).

    NEW: nothing there; CONFLICT: settings differ from ``expected`` (a RunSettings, None =
    do not compare), or run files without settings.json; RESUMABLE: same settings, no
    done.json; TRAINED: done.json but no usable eval.json; EVALUATED: both.  ``eval``: the
    usable EvalDoc of an EVALUATED folder (eval.json read once), else None.
    """
    has_settings = os.path.isfile(os.path.join(logdir, SETTINGS))
    leftovers = [
        f for f in (STATE_FILE, STATS, DONE, EVAL) if os.path.exists(os.path.join(logdir, f))
    ]
    steps = checkpoint_files(logdir)
    if not has_settings:
        if leftovers or steps:
            what = ", ".join(leftovers + [f"{CHECKPOINT_NAME}-{s}" for s in sorted(steps)][-1:])
            return CONFLICT, f"{logdir} holds a run ({what}) but no {SETTINGS}", None
        return NEW, "not trained yet", None
    if expected is not None:
        diffs = load_settings(logdir).differences(expected)
        if diffs:
            return (
                CONFLICT,
                (
                    f"{logdir} holds a run with other settings ({SETTINGS}):\n  "
                    + "\n  ".join(diffs)
                ),
                None,
            )
    if not os.path.exists(os.path.join(logdir, DONE)):
        return (
            RESUMABLE,
            (
                f"resumable from {CHECKPOINT_NAME}-{max(steps)}"
                if steps
                else "started, no checkpoint yet"
            ),
            None,
        )
    doc, problem = read_evaluation(logdir)
    return (TRAINED, problem, None) if problem else (EVALUATED, "trained and evaluated", doc)
