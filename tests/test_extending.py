"""docs/extending.md's promise: a new augmentation is one new file of augment/.  A copy of the
repository gets that doc's toy ``augment/cutout.py`` and nothing else; train.py's --aug, the table
scripts' --methods and --only then run it.  The registry's declaration errors name the file and line."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from augment import registry
from errors import UserError
from tests.conftest import REPO, SMALL
from tests.tables_fixtures import table_argv, table_data  # noqa: F401 (a fixture: 256 training images, batch 256)


def doc_example():
    """The whole of a new method: docs/extending.md's first Python block (its augment/cutout.py), so that
    the walk-through is what this test runs."""
    with open(os.path.join(REPO, "docs", "extending.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("```python\n") + len("```python\n")
    return text[start : text.index("```", start)]


def copy_repo(root, module, source):
    """The checkout's tracked files copied to ``root``, plus ``augment/<module>.py``; the checkout is
    never written."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=True
    )
    for rel in filter(None, tracked.stdout.split("\0")):
        if os.path.isfile(os.path.join(REPO, rel)):
            os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
            shutil.copy2(os.path.join(REPO, rel), os.path.join(root, rel))
    (root / "augment" / f"{module}.py").write_text(source)
    return root


@pytest.fixture(scope="module")
def repo_with_cutout(tmp_path_factory):
    return copy_repo(tmp_path_factory.mktemp("repo"), "cutout", doc_example())


def run_in(root, *args, timeout=300):
    """``python ARGS`` in the copy (the checkout's interpreter and .venv), output captured."""
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=root, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_train_py_trains_the_new_method(repo_with_cutout, tiny_data, tmp_path):
    small = [a if a != "gr" else "cutout" for a in SMALL]  # conftest's narrow net, --aug cutout
    short = "--epochs 1 --steps-per-epoch 2 --val-every 1 --loc-images 0".split()
    args = ["--data", tiny_data, *small, *short, "--logdir", tmp_path / "run"]
    proc = run_in(repo_with_cutout, "train.py", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = json.loads((tmp_path / "run" / "done.json").read_text())
    assert done == {"global_step": 2, "epoch": 1}
    assert json.loads((tmp_path / "run" / "settings.json").read_text())["train"]["aug"] == "cutout"


@pytest.mark.slow
def test_the_new_method_is_a_choice_and_a_column(repo_with_cutout, table_data, tmp_path):
    help_text = run_in(repo_with_cutout, "-m", "reproduce", "--table", "1", "--help").stdout
    choices = "gr_after_hns, cutout); default the paper's cam,hns,gr,hns_after_gr,gr_after_hns"
    assert choices in " ".join(help_text.split())
    rest = "--methods cam,cutout --gpu-ids none --dry-run".split()
    argv = table_argv(1, *rest, data=table_data, logroot=tmp_path / "logs")
    proc = run_in(repo_with_cutout, "-m", "reproduce", *argv)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Table 1: 4 run(s)" in proc.stdout
    for depth in (34, 18):
        assert f"# r{depth}-cutout-b256: new" in proc.stdout
        assert f"# r{depth}-cam-b256: new" in proc.stdout
    logdir = tmp_path / "logs" / "r18-cutout-b256"
    assert f"--aug cutout --batch 256 --seed 0 --logdir {logdir}" in proc.stdout
    assert "-gr-" not in proc.stdout and not os.path.exists(tmp_path / "logs")


@pytest.mark.slow
def test_train_py_and_the_table_scheduler_run_the_new_method(
    repo_with_cutout, table_data, tmp_path
):
    # the scheduler runs train.py --aug cutout (one step of batch 256 at 1/8 width) and evaluate.py
    logs, results = tmp_path / "logs", tmp_path / "results"
    rest = "--methods gr,cutout --only r18-cutout --gpu-ids none --progress-every 0".split()
    passed = "-- --epochs 1 --steps-per-epoch 1 --width-mult 0.125 --threads 2".split()
    passed += "--val-every 1 --loc-images 0".split()
    argv = table_argv(1, *rest, *passed, data=table_data, logroot=logs, results=results)
    proc = run_in(repo_with_cutout, "-m", "reproduce", *argv)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    # the run's folder, and its lock (a dot file)
    assert [n for n in os.listdir(logs) if not n.startswith(".")] == ["r18-cutout-b256"]
    settings = (logs / "r18-cutout-b256" / "settings.json").read_text()
    assert '"aug": "cutout"' in settings
    lines = (results / "table1.md").read_text().splitlines()
    rows = [line for line in lines if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows]
    assert cells[0][-2:] == ["GR", "Cutout"]  # the header: --methods' order and titles
    r18 = next(i for i, row in enumerate(cells) if row[0] == "ResNet18")
    ours, paper, diff = cells[r18][-2:], cells[r18 + 1][-2:], cells[r18 + 2][-2:]  # GT-known Loc
    assert ours[0] == "—" and ours[1] not in ("", "—")  # GR not run (--only); Cutout's number
    assert paper == ["57.00", ""] and diff == ["—", ""]  # the paper has no Cutout: no number


def augment_copy(tmp_path, bad):
    """A copy of augment/'s modules with one more file, ``bad.py``."""
    folder = tmp_path / "augment"
    shutil.copytree(
        os.path.join(REPO, "augment"), folder, ignore=shutil.ignore_patterns("__pycache__")
    )
    (folder / "bad.py").write_text(bad)
    return str(folder)


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            'from augment.registry import Method\n\nGR2 = Method("gr", source="x", steps=())\n',
            "method 'gr' is declared twice: augment/bad.py:3 and augment/googlenet_resize.py:",
        ),
        (
            'X = Method("blur_after_gr", source="x", steps=("gr", "blur"))\n',
            "augment/bad.py:1: method 'blur_after_gr': unknown step 'blur' (a step is a method with an augmentor: ",
        ),
        (
            'X = Method("both", source="x", steps=("hns_after_gr",))\n',
            "unknown step 'hns_after_gr'",
        ),
        (
            'X = Method("blur", source="x", augmentor="Blur")\n',
            "augment/bad.py:1: method 'blur': augmentor 'Blur' is not defined in augment/bad.py",
        ),
        (
            'import os\nX = Method("blur", source=os.sep, steps=())\n',
            "augment/bad.py:2: Method(...) takes literal",
        ),
        (
            'X = Method("r18-blur", source="x", steps=())\n',
            "augment/bad.py:1: method name 'r18-blur'",
        ),
        (
            'X = Method("blur", steps=())\n',
            "augment/bad.py:1: Method.__init__() missing 1 required positional argument: 'source'",
        ),
        (
            'X = Method("blur", source="x", steps=(), paper=2)\n',
            "paper Table 1 column 2 is declared twice: augment/bad.py:1 (blur) and augment/hide_and_seek.py:",
        ),
        ('X = Method("blur", source="x")\n', "give either augmentor= or steps="),
        ('X = Method("blur", source="x",\n', "augment/bad.py:1: '(' was never closed"),
    ],
)
def test_a_wrong_declaration_is_one_message_naming_file_and_line(tmp_path, bad, message):
    with pytest.raises(UserError) as e:
        registry.read(augment_copy(tmp_path, bad))
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_the_entry_points_print_a_wrong_declaration_as_one_error_line(tmp_path):
    root = copy_repo(
        tmp_path,
        "blur",
        'from augment.registry import Method\n\nB = Method("blur", source="x", '
        'steps=("gr", "blur2"))\n',
    )
    message = (
        "error: augment/blur.py:3: method 'blur': unknown step 'blur2' (a step is a method with an "
    )
    for argv in (["train.py", "--help"], ["-m", "reproduce", "--table", "1", "--help"]):
        proc = run_in(root, *argv)
        assert proc.returncode == 2 and proc.stderr.startswith(message)
        assert "Traceback" not in proc.stderr


def test_the_registry_reads_the_paper_s_methods_in_table_1_order(tmp_path):
    from reproduce import paper

    assert registry.paper_methods() == ("cam", "hns", "gr", "hns_after_gr", "gr_after_hns")
    titles = [paper.method_title(m) for m in registry.paper_methods()]
    assert titles == ["CAM", "HnS", "GR", "HnS after GR", "GR after HnS"]  # the paper's headers
    # each has the paper's numbers
    assert {m for _, m in paper.TABLE1} == set(registry.paper_methods())
    assert [m.name for m in registry.steps("gr_after_hns")] == ["hns", "gr"]
    assert registry.steps("cam") == ()
    # a method the paper has not comes after the paper's, whatever its file's name
    found = registry.read(augment_copy(tmp_path, 'A = Method("aaa", source="x", steps=("gr",))\n'))
    assert list(found) == [*registry.paper_methods(), "aaa"]
    assert found["aaa"].where == "augment/bad.py:1"


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--table", "2", "--methods", "cam"],
            "--methods sets Table 1's columns; Table 2 is the paper's",
        ),
        (
            ["--table", "1", "--methods", "cam,mixup"],
            "--methods 'cam,mixup': expected distinct methods of",
        ),
        (["--table", "1", "--methods", "gr,gr"], "--methods 'gr,gr': expected distinct"),
        (
            ["--table", "1", "--methods", "cam,gr", "--only", "r18-hns"],
            "--only 'r18-hns' matches no run",
        ),
    ],
)
def test_the_table_scripts_refuse_bad_methods(argv, message, table_data, tmp_path):
    from reproduce import __main__ as cli

    args, extra = cli.parse_args(
        argv + ["--data", table_data, "--logroot", str(tmp_path), "--dry-run"]
    )
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        cli.plan(args, extra)


def test_methods_pick_table_1_s_columns_and_their_runs():
    from reproduce import paper, runs as rs

    configs = rs.table_configs(1, methods=["gr", "cam"], depths=(18,))
    assert [c.name for c in configs] == ["r18-gr-b256", "r18-cam-b256"]
    table2 = paper.LAYOUTS[2].cells({}, methods=["gr"])
    assert {c.method for c in table2} == {"cam", "hns", "gr"}  # Table 2 is always the paper's
