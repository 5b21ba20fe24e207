"""argparse types shared by every entry point (train.py, evaluate.py, the table scripts).

Each type turns the flag's text into a value or raises
``argparse.ArgumentTypeError``, so argparse prints ``usage`` plus one
``error: argument --flag: ...`` line and exits 2 before any data is read or any
graph is built.  Floats refuse ``nan`` and ``inf`` everywhere: a non-finite
learning rate or weight decay would train a NaN network to the end.

    p.add_argument("--batch", type=argtypes.positive_int)
    p.add_argument("--momentum", type=argtypes.float_in(0, 1, high_open=True))
"""
import argparse
import math


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
    parse.__name__ = expected.replace(" ", "_")   # argparse names the type in some messages
    return parse


positive_int = _int_at_least(1, "a positive integer")
nonnegative_int = _int_at_least(0, "a non-negative integer")


def finite_float(text):
    """Any finite float (``nan``, ``inf`` and ``-inf`` are refused)."""
    value = _parse(text, float, "a finite number")
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


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
