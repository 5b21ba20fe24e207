"""argparse types shared by every entry point (train.py, evaluate.py, the table scripts).

Each type turns the flag's text into a value or raises
``argparse.ArgumentTypeError``, so argparse prints ``usage`` plus one
``error: argument --flag: ...`` line and exits 2 before any data is read or any
graph is built.  Floats refuse ``nan`` and ``inf`` everywhere: a non-finite
learning rate or weight decay would train a NaN network to the end.

    p.add_argument("--batch", type=argtypes.positive_int)
    p.add_argument("--momentum", type=argtypes.float_in(0, 1, high_open=True))
    p.add_argument("--json", type=argtypes.writable_file)

Paths are types too (``writable_file``, ``writable_dir``, ``data_root``): a bad path is
refused by the parser, before any work.
"""

import argparse
import math
import os
import sys


def _parse(text, kind, expected):
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None


def _int_at_least(low, expected):
    def parse(text):
        value = _parse(text, int, expected)
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected.replace(" ", "_")  # argparse names the type in some messages
    return parse


positive_int = _int_at_least(1, "a positive integer")
nonnegative_int = _int_at_least(0, "a non-negative integer")


def float_in(low=None, high=None, *, low_open=False, high_open=False, name=None):
    """A type accepting finite floats in the interval [low, high]; ``*_open`` excludes an end.

    ``None`` leaves that side unbounded.  The message names the interval, e.g. ``in [0, 1)``,
    after ``name`` if given (``a positive number in (0, inf)``).
    """
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    span = f"{left}{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}{right}"
    expected = f"{name or 'a number'} in {span}"

    def parse(text):
        value = _parse(text, float, expected)
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
        if not ok:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = f"float in {span}"
    return parse


positive_float = float_in(0, low_open=True, name="a positive number")
nonnegative_float = float_in(0, name="a non-negative number")
probability = float_in(0, 1, name="a probability")


def int_in(low, high, name="an integer"):
    """A type accepting integers in [low, high] (the message names the interval)."""
    return _int_range(low, high, f"{name} in [{low}, {high}]")


def _int_range(low, high, expected):
    def parse(text):
        value = _parse(text, int, expected)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = expected.replace(" ", "_")
    return parse


# TensorFlow folds a graph seed into [0, 2**31 - 1): seeds 0 and 2**31 - 1 gave identical weights
seed = int_in(0, 2**31 - 2, "a seed")


# --------------------------------------------------------------------------- paths


def _nearest_existing(path):
    parent = os.path.abspath(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    return parent


def utf8_path(text):
    """A path TensorFlow can open: valid UTF-8.  In a non-UTF-8 locale (``LC_ALL=C PYTHONUTF8=0``) Python
    decodes a non-ASCII argument to lone surrogates, which TensorFlow's file functions cannot encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(
            f"{ascii(text)}: not text in this locale's encoding ({sys.getfilesystemencoding()}), so TensorFlow "
            "cannot open it; run in a UTF-8 locale (LC_ALL=C.UTF-8) or with PYTHONUTF8=1, or use an ASCII path"
        ) from None
    return text


def writable_file(text):
    """A file that can be written: not a folder, its folder exists and is writable.  Creates nothing."""
    folder = os.path.dirname(os.path.abspath(text))
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text} is a folder, expected a file name")
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"{text}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (os.path.exists(text) and not os.access(text, os.W_OK)):
        raise argparse.ArgumentTypeError(f"{text}: not writable (folder {folder})")
    return text


def writable_dir(create=False, unless_holds=None):
    """A type for an output folder.

    ``create=False``: it is a folder, or could be made (its nearest existing parent is a
    writable folder); nothing is created before the command refuses or accepts the rest.
    ``create=True``: made at once (``os.makedirs``) and a file is written there and removed.
    ``unless_holds``: a folder that already holds that file (a finished run's done.json) is
    accepted as it is, since nothing will be written there (it may be read-only).
    """

    def parse(text):
        utf8_path(text)  # run folders hold TensorFlow's checkpoints and events
        if os.path.exists(text) and not os.path.isdir(text):
            raise argparse.ArgumentTypeError(f"{text}: is a file, not a folder")
        if unless_holds and os.path.isfile(os.path.join(text, unless_holds)):
            return text
        if not create:
            parent = _nearest_existing(text)
            if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
                raise argparse.ArgumentTypeError(
                    f"{text}: cannot be created ({parent} is not a writable folder)"
                )
            return text
        try:
            os.makedirs(text, exist_ok=True)
            probe = os.path.join(text, f".write-test-{os.getpid()}")
            with open(probe, "w"):
                pass
            os.remove(probe)
        except OSError as e:
            raise argparse.ArgumentTypeError(
                f"{text}: not a writable folder ({e.strerror or e})"
            ) from None
        return text

    parse.__name__ = "folder"
    return parse


def folder_path(text):
    """A folder that is only read, or may not exist yet (a read-only one is accepted): not a file."""
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: is a file, not a folder")
    return text


def data_root(text):
    """A dataset root in the Tiny ImageNet layout: a folder holding wnids.txt (read later, in full)."""
    if not os.path.isdir(text):
        what = "is a file, not a folder" if os.path.exists(text) else "no such directory"
        raise argparse.ArgumentTypeError(
            f"{text}: {what} (expected the Tiny ImageNet root, with wnids.txt)"
        )
    if not os.path.isfile(os.path.join(text, "wnids.txt")):
        raise argparse.ArgumentTypeError(
            f"{text}: no wnids.txt there (expected the Tiny ImageNet root)"
        )
    return text


def gpu_list(text):
    """``--gpus`` of the table scripts: "0,1,3" -> ["0", "1", "3"]; "none"/"cpu"/"" -> []."""
    if text.strip().lower() in ("", "none", "cpu"):
        return []
    ids = [g.strip() for g in text.split(",") if g.strip()]
    bad = [g for g in ids if not g.isdigit()]
    if bad:
        raise argparse.ArgumentTypeError(
            f"expected GPU ids like 0,1,3 or 'none', got {text!r} ({bad[0]!r})"
        )
    return ids


class Once(argparse.Action):
    """An option that may be given once (``run_table1.sh --table 2`` is refused, not Table 2)."""

    def __call__(self, parser, namespace, values, option_string=None):
        if getattr(namespace, self.dest) is not None:
            parser.error(
                f"{option_string} given twice ({getattr(namespace, self.dest)} and {values}); "
                "it may be given once"
            )
        setattr(namespace, self.dest, values)
