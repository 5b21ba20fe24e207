"""The "never" rules of docs/architecture.md, read from the code's own imports (ast, nothing is run)."""

import ast
import re
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

ENTRY_POINTS = ("train", "evaluate", "reproduce.__main__")  # besides tools.* and benchmarks.*
SCRIPT_PACKAGES = ("tools", "benchmarks")
# the run record's modules the table scripts build settings with: they know no TensorFlow
SETTINGS_MODULES = (
    "runrecord.settings",
    "runrecord.command",
    "runrecord.dataset",
    "runrecord.cost",
    "runrecord.machine",
)
TENSORFLOW = ("tensorflow", "tensorpack", "tf_env", "models", "training", "augment", "dataflow")
# TensorFlow-free modules of those packages: the registry reads augment/'s method declarations with
# ast and imports none of them; models.plan is the layer plan, numbers only
TF_FREE = ("augment.registry", "models.plan")


def modules():
    """{module name: path} of every project source file (tests and .venv excluded)."""
    out = {}
    for root, dirs, files in os.walk(REPO):
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".")
            and d not in ("tests", "__pycache__", "demo_data", "train_log", "results")
        ]
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(root, f), REPO)[:-3].replace(os.sep, ".")
                out[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(
                    root, f
                )
    return out


def imports_of(name, path):
    """Absolute names a module imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def within(name, prefix):
    return name == prefix or name.startswith(prefix + ".")


def violations(mods=None):
    """Every (module, imported name, rule) that breaks a rule of docs/architecture.md."""
    mods = modules() if mods is None else mods
    bad = []
    for name, path in sorted(mods.items()):
        entry = name in ENTRY_POINTS or any(within(name, p) for p in SCRIPT_PACKAGES)
        for imp in sorted(imports_of(name, path)):
            if within(name, "cam") and any(
                within(imp, t) for t in ("tensorflow", "tensorpack", "tf_env")
            ):
                bad.append((name, imp, "cam/ knows no TensorFlow"))
            if within(name, "cam") and imp.split(".")[0] in mods and not within(imp, "cam"):
                bad.append((name, imp, "cam/ imports only cam/ of this project"))
            if not entry and any(within(imp, e) for e in ENTRY_POINTS + SCRIPT_PACKAGES):
                bad.append((name, imp, "libraries never import entry points"))
            if within(name, "reproduce") and within(imp, "training"):
                bad.append((name, imp, "reproduce/ never imports training/"))
            if (
                name in SETTINGS_MODULES
                and any(within(imp, t) for t in TENSORFLOW)
                and not any(within(imp, t) for t in TF_FREE)
            ):
                bad.append((name, imp, "the settings know no TensorFlow"))
            if within(name, "augment") and within(imp, "dataflow"):
                bad.append((name, imp, "augment/ imports no dataflow"))
    return bad


def test_the_house_keeps_its_rules():
    assert violations() == []


def test_the_table_scripts_load_no_tensorflow():
    """Rule 3's consequence, checked on what is imported, not on what is written: the table scripts (and
    their --help) start without TensorFlow, which only their train.py and evaluate.py processes load."""
    probe = "import sys, reproduce.__main__; print(sorted(m for m in ('tensorflow', 'tensorpack') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "name, source, rule",
    [
        ("cam.fake", "import tensorflow as tf\n", "cam/ knows no TensorFlow"),
        ("cam.fake", "from models import resnet\n", "cam/ imports only cam/ of this project"),
        ("dataflow.fake", "from train import main\n", "libraries never import entry points"),
        ("evaluation.fake", "import tools.gpu_check\n", "libraries never import entry points"),
        (
            "reproduce.fake",
            "from training.options import parse_args\n",
            "reproduce/ never imports training/",
        ),
        (
            "reproduce.report",
            "from training import options\n",
            "reproduce/ never imports training/",
        ),
        ("reproduce.runs", "from training import devices\n", "reproduce/ never imports training/"),
        ("runrecord.command", "from training import session\n", "the settings know no TensorFlow"),
        ("runrecord.settings", "from models import DEPTHS\n", "the settings know no TensorFlow"),
        (
            "runrecord.settings",
            "from augment.methods import augmentor_list\n",
            "the settings know no TensorFlow",
        ),
        (
            "augment.fake",
            "from dataflow.builders import train_augmentors\n",
            "augment/ imports no dataflow",
        ),
        (
            "augment.sub.fake",
            "from ...dataflow import check_root\n",
            "augment/ imports no dataflow",
        ),
    ],
)
def test_a_broken_rule_is_found(tmp_path, name, source, rule):
    path = tmp_path / (name.replace(".", "_") + ".py")
    path.write_text(source)
    mods = modules()
    mods[name] = str(path)
    assert {v[2] for v in violations(mods) if v[0] == name} == {rule}


def unit(name, mods):
    """The top-level unit of a module name as docs/architecture.md writes it: ``training/`` for a package,
    ``argtypes.py`` for a top-level module; None for what is not this project's."""
    top = name.split(".")[0]
    if any(within(m, top) and m != top for m in mods):
        return top + "/"
    return top + ".py" if top in mods else None


def doc_table():
    """``[(units of the row, units its imports column names)]`` of docs/architecture.md's table."""

    def names(
        cell,
    ):  # `training/`, `training.session` -> training/; `fileio.py`; what stands in (...) is a detail
        out = set()
        for token in re.findall(r"`([^`]+)`", re.sub(r"\([^()]*\)", "", cell)):  # (...): details
            head = re.split(r"[/.]", token)[0]
            out.add(head + ".py" if token == head + ".py" else head + "/")
        return out

    rows = []
    text = open(os.path.join(REPO, "docs", "architecture.md"), encoding="utf-8").read()
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] and cells[0] not in ("floor", "---"):
            rows.append((names(cells[1]), names(cells[2])))
    return rows


def test_the_architecture_table_lists_the_arrows_the_code_has():
    """docs/architecture.md's table: each row's imports column names exactly the project's packages that
    the row's modules import (inside functions too), and every package has a row."""
    mods = modules()
    rows = doc_table()
    assert rows, "no table rows found in docs/architecture.md"
    covered = set()
    for owners, said in rows:
        covered |= owners
        has = (
            {
                unit(imp, mods)
                for name, path in mods.items()
                if unit(name, mods) in owners
                for imp in imports_of(name, path)
            }
            - {None}
            - owners
        )
        assert said == has, (
            f"docs/architecture.md, row {sorted(owners)}: the table says {sorted(said)}, the code imports {sorted(has)}"
        )
    assert {unit(m, mods) for m in mods} - covered == set()
