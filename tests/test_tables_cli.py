"""Tests of the command line (python -m reproduce, run_table1.sh): refusals that write nothing,
pass-through after --, dry runs, --report-only, and one short end-to-end run of run_table1.sh."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from errors import UserError
from reproduce import __main__ as cli
from reproduce import report
from reproduce import runs as rs
from reproduce.runs import Expectation
from tests.conftest import REPO
from tests.tables_fixtures import table_argv, table_data, write_eval  # noqa: F401 (table_data: a fixture)


def test_usage_without_data(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--table", "1"])
    assert e.value.code == 2 and "usage:" in capsys.readouterr().err


def test_the_table_is_given_once(capsys):
    """run_table1.sh passes --table 1 first: a user's --table 2 after it is refused, not obeyed."""
    with pytest.raises(SystemExit) as e:
        cli.main(["--table", "1", "--table", "2", "--demo", "--dry-run"])
    assert e.value.code == 2 and "--table given twice (1 and 2)" in capsys.readouterr().err


def test_unknown_option_is_refused_unless_after_dashdash(tmp_path, table_data, capsys):
    base = table_argv(1, "--gpu-ids", "none", "--dry-run", data=table_data, logroot=tmp_path / "l")
    with pytest.raises(SystemExit) as e:
        cli.main(base + ["--onyl", "r18-cam"])
    assert e.value.code == 2 and "--onyl" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(base + ["--epochs", "2"])  # a train.py option, but before --
    argv = table_argv(1, "--only", "r18", "--", "--epochs", "2", "--only", "x", data=table_data)
    args, extra = cli.parse_args(argv)
    assert args.only == "r18" and extra == ["--epochs", "2", "--only", "x"]


@pytest.mark.parametrize("passed", [["--dep", "34", "--bat", "32"], ["--depth=34"], ["--se", "4"]])
def test_abbreviated_reserved_flag_after_dashdash_is_refused(tmp_path, table_data, passed):
    folders = dict(data=table_data, logroot=tmp_path / "l", results=tmp_path / "r")
    with pytest.raises(UserError, match="set by the table script"):
        cli.main(table_argv(1, "--gpu-ids", "none", "--", *passed, **folders))
    assert not os.path.exists(tmp_path / "l") and not os.path.exists(tmp_path / "r")


@pytest.mark.parametrize("which", ["--results", "--logroot"])
def test_output_folder_that_is_a_file_is_refused_before_training(
    tmp_path, table_data, which, capsys
):
    (tmp_path / "file").write_text("x")
    other = "--logroot" if which == "--results" else "--results"
    folders = [which, str(tmp_path / "file"), other, str(tmp_path / "o")]
    # refused by the parser (argtypes.writable_dir), even before a dry run
    rest = "--gpu-ids none --only r18-cam --dry-run".split()
    with pytest.raises(SystemExit):
        cli.main(table_argv(1, *folders, *rest, data=table_data))
    assert re.search(f"argument {which}: .*is a file", capsys.readouterr().err)
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_refused_invocation_writes_nothing(tmp_path, table_data):
    logs, res = tmp_path / "logs", tmp_path / "res"
    run = rs.make_runs(
        rs.select(rs.table_configs(1), "r18-cam"),
        data=table_data,
        logroot=str(logs),
        train_args=["--epochs", "2"],
        expectation=Expectation(table_data, 0),
    )[0]
    write_eval(run.logdir, 50.0, 25.0, 40.0, settings=run.expected)
    assert cli.main(table_argv(1, "--report-only", logroot=logs, results=res)) == cli.INCOMPLETE
    before = {p: (res / p).read_bytes() for p in os.listdir(res)}
    folders = dict(data=table_data, logroot=logs, results=res)
    for other in (["--", "--epochs", "3"], ["--", "--epochs", "2", "--no-such-flag"]):
        # other settings than the finished run's
        with pytest.raises(UserError, match="nothing was run"):
            cli.main(table_argv(1, "--gpu-ids", "none", "--only", "r18-cam", *other, **folders))
    assert {p: (res / p).read_bytes() for p in os.listdir(res)} == before
    assert sorted(os.listdir(logs)) == ["r18-cam-b256"]  # nothing else was started
    assert not os.path.exists(logs / "r18-cam-b256" / "train.out")


@pytest.mark.parametrize(
    "bad",
    [
        ["--parallel", "0"],
        ["--gpus-per-run", "0"],
        ["--holdout", "-1"],
        ["--seeds", "0"],
        ["--recipe", "sn-resnt"],
        ["--metrics", "wsol"],
    ],
)
def test_bad_values_are_refused_before_anything(tmp_path, bad, capsys):
    logs, res = tmp_path / "logs", tmp_path / "res"
    rest = ["--demo", "--dry-run", *bad, "--gpu-ids", "none"]
    with pytest.raises((SystemExit, UserError)) as e:
        cli.main(table_argv(1, *rest, logroot=logs, results=res))
    assert bad[0] in (str(e.value) if isinstance(e.value, UserError) else capsys.readouterr().err)
    assert os.listdir(tmp_path) == []


def test_not_tiny_imagenet_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(table_argv(1, "--dry-run", data=tmp_path / "nope"))
    assert "argument --data: " in capsys.readouterr().err
    (tmp_path / "wnids.txt").write_text("n0\n")
    with pytest.raises(UserError, match="train.n0: no such directory"):
        cli.main(table_argv(1, "--dry-run", data=tmp_path, logroot=tmp_path / "l"))
    assert sorted(os.listdir(tmp_path)) == ["wnids.txt"]


def test_dry_run(tmp_path, table_data, capsys):
    done = rs.make_runs(
        rs.select(rs.table_configs(1), "r18-cam"),
        data=table_data,
        logroot=str(tmp_path),
        train_args=["--epochs", "2", "--recipe", "sn-resnet"],
        gpus_per_run=2,
        expectation=Expectation(table_data, 2),
    )[0]
    # batch 256 over the run's 2 GPUs, as train.py splits it
    assert done.expected.train.batch_per_tower == 128
    write_eval(done.logdir, 1, 1, 1, settings=done.expected)
    gpus = "--gpu-ids 0,1,2,3 --gpus-per-run 2 --only r18-cam,r18-gr --dry-run".split()
    passed = "--seeds 2 --recipe sn-resnet -- --epochs 2".split()
    rc = cli.main(table_argv(1, *gpus, *passed, data=table_data, logroot=tmp_path))
    out = capsys.readouterr().out
    assert rc == 0
    assert "4 run(s)" in out and "1 finished" in out and "2 at a time on GPU 0,1, GPU 2,3" in out
    assert "# r18-cam-b256: evaluated" in out and "# r18-gr-b256-s1: new" in out
    assert "--seed 1 --logdir" in out and "--gpus 2 --recipe sn-resnet --epochs 2" in out
    assert "--holdout" not in out and not os.path.exists(tmp_path / "r18-gr-b256")


def test_dry_run_holdout_runs_are_other_cells(tmp_path, table_data, capsys):
    # trained without holdout: another cell, not a conflict
    write_eval(tmp_path / "r18-cam-b32", 1, 1, 1)
    rest = "--gpu-ids none --only r18-cam-b32 --dry-run --seeds 2 --holdout 5".split()
    rc = cli.main(table_argv(2, *rest, data=table_data, logroot=tmp_path))
    out = capsys.readouterr().out
    assert rc == 0 and "2 run(s)" in out and "0 finished" in out
    assert "# r18-cam-b32-h5: new" in out and "# r18-cam-b32-h5-s1: new" in out
    assert "--seed 1 --logdir" in out and "--holdout 5" in out and "--threshold-from-holdout" in out
    rest = "--gpu-ids none --only r18-cam --dry-run --holdout 5".split()
    # refused before anything runs
    with pytest.raises(UserError, match="--batch 256: more than the 236 training images"):
        cli.main(table_argv(1, *rest, data=table_data, logroot=tmp_path))


def test_demo_dry_run(tmp_path, capsys):
    rest = "--demo --gpu-ids none --parallel 2 --only r18-gr --dry-run".split()
    rc = cli.main(table_argv(2, *rest, logroot=tmp_path / "logs"))
    out = capsys.readouterr().out
    seeds = cli.DEMO_SEEDS
    assert rc == 0 and report.DEMO_BANNER in out and "2 at a time on CPU, CPU" in out
    assert f"{3 * seeds} run(s)" in out
    assert "# r18-gr-b4: new" in out and "# r18-gr-b16-s1: new" in out
    assert "--width-mult" in out and "--threads" in out  # demo's net, cores shared by 2 runs
    assert not os.path.exists(tmp_path / "logs")


def test_demo_depths_and_seeds_from_demo_module(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "DEMO_DEPTHS", (18,))
    monkeypatch.setattr(cli, "DEMO_SEEDS", 3)
    rc = cli.main(
        table_argv(1, "--demo", "--gpu-ids", "none", "--dry-run", logroot=tmp_path / "logs")
    )
    out = capsys.readouterr().out
    assert rc == 0 and "15 run(s)" in out and "# r18-gr-b32-s2: new" in out and "# r34" not in out
    logs, res = tmp_path / "logs", tmp_path / "res"
    rc = cli.main(
        table_argv(1, "--demo", "--report-only", "--seeds", "1", logroot=logs, results=res)
    )
    out = capsys.readouterr().out
    assert rc == cli.INCOMPLETE
    assert "ResNet34" not in out.split("seeds:")[0] and "not run here: ResNet34" in out


def test_report_only(tmp_path, capsys):
    write_eval(tmp_path / "logs" / "r34-gr-b256", 58.0, 36.5, 54.0)
    logs, res = tmp_path / "logs", tmp_path / "res"
    rc = cli.main(table_argv(1, "--report-only", "--only", "r34-gr", logroot=logs, results=res))
    out = capsys.readouterr().out
    assert rc == 0 and "36.50" in out and "+0.50" in out
    runs = json.loads((res / "table1.json").read_text())["runs"]
    assert runs["r34-gr-b256"]["status"] == "ok"


def test_one_invocation_reads_each_eval_json_once(tmp_path, capsys, monkeypatch):
    # issue 26: the states, the values, the claims and the IoU figure all come from one parse per run
    hits = {"gr": [1] * 7 + [0] * 3, "cam": [1] * 3 + [0] * 7}
    for aug, h in hits.items():
        recs = [
            {
                "file": f"val_{i}.JPEG",
                "label": 1,
                "top5": [1, 0],
                "gt_box": [0, 0, 9, 9],
                "pred_box": [0, 0, 9, 9],
                "iou": 0.6 if x else 0.1,
            }
            for i, x in enumerate(h)
        ]
        write_eval(
            tmp_path / "logs" / f"r18-{aug}-b256",
            10.0 * sum(h),
            10.0 * sum(h),
            100.0,
            protocol="paper",
            records=recs,
        )
    opened, real_open = [], open

    def counting_open(file, *args, **kwargs):
        if os.path.basename(str(file)) == "eval.json":
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    logs, res = tmp_path / "logs", tmp_path / "res"
    rc = cli.main(
        table_argv(1, "--report-only", "--only", "r18-gr,r18-cam", logroot=logs, results=res)
    )
    monkeypatch.undo()
    expected = sorted(str(tmp_path / "logs" / f"r18-{a}-b256" / "eval.json") for a in hits)
    assert rc == 0 and sorted(opened) == expected
    claims = json.loads((tmp_path / "res" / "table1.json").read_text())["claims"]
    claim = next(c for c in claims if c["cells"] == ["r18-gr-b256", "r18-cam-b256"])
    assert claim["difference"] == 40.0
    assert (tmp_path / "res" / "table1-iou.png").exists()


def test_incomplete_table_exits_nonzero_names_its_missing_runs_and_keeps_a_fuller_one(
    tmp_path, capsys
):
    # issue 24 item 3: a table of dashes exited 0 and overwrote the full table1.* of an earlier invocation
    logs, res = tmp_path / "logs", tmp_path / "res"
    for name in ("r34-gr-b256", "r18-cam-b256"):
        write_eval(logs / name, 58.0, 36.5, 54.0)
    argv = table_argv(1, "--report-only", logroot=logs, results=res)
    assert cli.main(argv) == cli.INCOMPLETE
    err = capsys.readouterr().err
    assert "table incomplete: 8 of 10 run(s)" in err and "  r34-cam-b256: not run" in err
    full = (res / "table1.json").read_bytes()
    os.remove(logs / "r18-cam-b256" / "eval.json")  # e.g. a copy that lost a file
    assert cli.main(argv) == cli.INCOMPLETE
    out, err = capsys.readouterr()
    assert "r18-cam-b256: trained, not evaluated" in err and "kept " in err
    assert "table1-incomplete.json" in out
    assert (res / "table1.json").read_bytes() == full  # the fuller result is still there
    runs = json.loads((res / "table1-incomplete.json").read_text())["runs"]
    assert runs["r18-cam-b256"]["status"] == "missing"


# ---- end to end: run_table1.sh trains and evaluates two runs on generated data --------------


@pytest.mark.slow
def test_run_table1_end_to_end(tmp_path, table_data, capsys):
    data = table_data
    logs, res = tmp_path / "logs", tmp_path / "res"
    folders = ["--data", str(data), "--logroot", str(logs), "--results", str(res)]
    rest = "--gpu-ids none --only r18-cam,r18-gr".split()
    passed = "-- --epochs 1 --lr-step-epochs 1 --width-mult 0.0625".split()
    cmd = [os.path.join(REPO, "run_table1.sh"), *folders, *rest, *passed]
    env = dict(os.environ, PYTHON=sys.executable)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    for name in ("r18-cam-b256", "r18-gr-b256"):
        assert os.path.exists(logs / name / "done.json")
        assert os.path.exists(logs / name / "train.out")
    summary = json.loads((logs / "r18-gr-b256" / "eval.json").read_text())["summary"]
    saved = json.loads((res / "table1.json").read_text())
    cells = [c for c in saved["cells"] if c["run"] == "r18-gr-b256"]
    cell = next(c for c in cells if c["metric"] == "top1_clas")
    assert cell["mean"] == round(summary["top1_clas"], 2) and cell["paper"] == 52.23
    assert saved["runs"]["r34-cam-b256"]["status"] == "missing"
    assert os.path.exists(res / "table1.csv") and os.path.exists(res / "table1.md")
    assert os.path.exists(res / "table1-figure2.png") and "table1-figure2.png" in p.stdout
    assert "evaluation protocol: authors" in p.stdout and "protocol quirk" in p.stdout
    # ResNet18's row, its CAM and GR columns
    whole = [ln for ln in p.stdout.splitlines() if "whole image box" in ln][-1].split()
    assert whole[-5] != report.MISSING and whole[-3] != report.MISSING, p.stdout
    assert "Table 1" in p.stdout and "ResNet18" in p.stdout
    assert f"{summary['top1_clas']:.2f}" in p.stdout

    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 finished, 0 to evaluate, 0 to train" in again.stdout
    assert again.stdout.count("skip     r18-") == 2 and "train    r18" not in again.stdout

    # issue 24 item 3: copied elsewhere (cp -r: new file times) and the original gone, the runs still count
    def report_only(root):
        rest = ["--report-only", "--only", "r18-cam,r18-gr"]
        rc = cli.main(table_argv(1, *rest, logroot=root, results=tmp_path / "res-report"))
        return rc, capsys.readouterr().out.replace(str(root), "LOGROOT")

    original = report_only(logs)
    shutil.copytree(logs, tmp_path / "copy", copy_function=shutil.copyfile)
    shutil.rmtree(logs)
    assert report_only(tmp_path / "copy") == original and original[0] == 0
    assert "r18-gr-b256: " not in original[1] and f"{summary['top1_clas']:.2f}" in original[1]
