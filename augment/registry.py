"""The augmentation methods (train.py ``--aug``, Table 1's columns), found without importing them.

A module of ``augment/`` declares a method with one module-level statement of literal arguments::

    CUTOUT = Method("cutout", source="DeVries & Taylor 2017", augmentor="Cutout", fill=True)

This module reads those statements with ``ast`` and imports nothing of ``augment/``: the settings'
choices and the table scripts know every method without loading TensorFlow (docs/architecture.md,
rule 5). ``augment.methods.augmentor_list`` imports a declaring module only to build its augmentor.
A wrong declaration is a ``UserError`` naming its file and line. docs/extending.md walks through it.
"""

import ast
import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Optional

from errors import UserError

FOLDER = os.path.dirname(os.path.abspath(__file__))
NAME = re.compile(r"[a-z][a-z0-9_]*\Z")  # a run name's part: r18-<name>-b256 (no dash)


@dataclass(frozen=True)
class Method:
    """One augmentation method.

    Declared: ``name`` (``--aug``; lower case, digits, ``_``), ``source`` (paper section or citation),
    ``title`` (Table 1's column header; default the name), and either ``augmentor`` (the name of a
    class or function of the declaring module that makes the method's one augmentor: called with no
    argument, or with ``fill=`` the training split's BGR mean, 3 floats in [0, 255], when ``fill``)
    or ``steps`` (other one-augmentor methods, run in this order; ``()``: no augmentation).
    ``paper``: its column in paper Table 1 (1, 2, ...), None for a method the paper has not.
    Set by the registry: ``module`` (``augment.x``) and ``where`` (``augment/x.py:LINE``).
    """

    name: str
    source: str
    title: str = ""
    augmentor: Optional[str] = None
    steps: Optional[tuple] = None
    fill: bool = False
    paper: Optional[int] = None
    module: str = ""
    where: str = ""


def _module_names(tree):
    """The names a module defines at its top level (classes, functions, assignments, imports)."""
    out = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
            out.add(node.name)
        elif isinstance(node, ast.Assign):
            out.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            out.update((a.asname or a.name).split(".")[0] for a in node.names)
    return out


def _declared(path, module):
    """The Methods declared in one file, each checked on its own; UserError naming file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read(), path)
    except SyntaxError as e:
        raise UserError(f"augment/{os.path.basename(path)}:{e.lineno}: {e.msg}") from None
    out = []
    for node in tree.body:
        call = getattr(node, "value", None)
        func = getattr(call, "func", None)
        if (
            not isinstance(call, ast.Call)
            or getattr(func, "id", getattr(func, "attr", None)) != "Method"
        ):
            continue
        where = f"augment/{os.path.basename(path)}:{node.lineno}"
        try:
            args = [ast.literal_eval(a) for a in call.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
        except ValueError:
            raise UserError(
                f"{where}: Method(...) takes literal arguments only (strings, numbers, "
                "tuples, True/False/None)"
            ) from None
        if {"module", "where"} & set(kwargs):
            raise UserError(
                f"{where}: Method(...) sets neither module nor where (the registry does)"
            )
        try:
            m = Method(*args, **kwargs)
        except TypeError as e:
            raise UserError(f"{where}: {e}") from None
        if m.steps is not None and not isinstance(m.steps, (tuple, list)):
            raise UserError(f"{where}: method {m.name!r}: steps= is a tuple of method names")
        m = replace(
            m,
            title=m.title or m.name,
            steps=None if m.steps is None else tuple(m.steps),
            module=module,
            where=where,
        )
        if not isinstance(m.name, str) or not NAME.match(m.name):
            raise UserError(
                f"{where}: method name {m.name!r}: lower case letters, digits and _, "
                "starting with a letter"
            )
        if not isinstance(m.source, str) or not m.source:
            raise UserError(
                f"{where}: method {m.name!r} needs its source (paper section or citation)"
            )
        if (m.augmentor is None) == (m.steps is None):
            raise UserError(f"{where}: method {m.name!r}: give either augmentor= or steps=")
        if m.augmentor is not None and m.augmentor not in _module_names(tree):
            raise UserError(
                f"{where}: method {m.name!r}: augmentor {m.augmentor!r} is not defined in "
                f"augment/{os.path.basename(path)}"
            )
        out.append(m)
    return out


def read(folder=FOLDER):
    """``{name: Method}`` of every ``*.py`` of ``folder`` (an ``augment/``): the paper's methods in its
    Table 1 order, then the others by file name and line.  UserError, naming the file and line, for a
    declaration that is wrong, a name or paper column declared twice, or an unknown step."""
    found = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".py"):
            for m in _declared(os.path.join(folder, f), "augment." + f[:-3]):
                first = found.get(m.name)
                if first is not None:
                    raise UserError(
                        f"method {m.name!r} is declared twice: {first.where} and {m.where}"
                    )
                found[m.name] = m
    columns = {}
    for m in found.values():
        if m.paper is not None and not isinstance(m.paper, int):
            raise UserError(
                f"{m.where}: method {m.name!r}: paper={m.paper!r} is not a Table 1 column number"
            )
        first = columns.setdefault(m.paper, m) if m.paper is not None else m
        if first is not m:
            raise UserError(
                f"paper Table 1 column {m.paper} is declared twice: {first.where} ({first.name}) "
                f"and {m.where} ({m.name})"
            )
        for s in m.steps or ():
            if s not in found or found[s].augmentor is None:
                known = ", ".join(n for n, x in found.items() if x.augmentor is not None)
                raise UserError(
                    f"{m.where}: method {m.name!r}: unknown step {s!r} (a step is a method "
                    f"with an augmentor: {known})"
                )
    order = sorted(
        found.values(), key=lambda m: (m.paper is None, m.paper or 0)
    )  # stable: file, line
    return {m.name: m for m in order}


@functools.lru_cache(maxsize=None)
def methods():
    """``{name: Method}`` of this ``augment/`` (:func:`read`, once per process)."""
    return read()


def names():
    """Every method's name (train.py ``--aug``'s choices): the paper's five, then the others."""
    return tuple(methods())


class LazyNames(Sequence):
    """:func:`names` as argparse choices, read when first used: a wrong declaration is then the entry
    point's one ``error:`` line (``errors.run_main``), not a traceback while the settings are imported."""

    def __getitem__(self, i):
        return names()[i]

    def __len__(self):
        return len(names())

    def __repr__(self):
        return repr(names())


def paper_methods():
    """The paper's Table 1 methods, in its column order."""
    return tuple(n for n, m in methods().items() if m.paper is not None)


def steps(name):
    """The one-augmentor methods that ``name`` runs, in order (``()`` for the CAM baseline)."""
    m = methods()[name]
    return (m,) if m.augmentor is not None else tuple(methods()[s] for s in m.steps)
