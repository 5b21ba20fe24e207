"""Issue 27, the table scripts: bounds, shell-safe dry runs, titles of short runs, read-only folders,
CUDA_VISIBLE_DEVICES, a closed pipe, the demo's data folder and the scripts without .venv."""
import os
import shlex
import subprocess
import sys

import pytest

import runrecord
from errors import UserError
from tables import __main__ as cli
from tables import report
from tables import runs as rs
from tests.conftest import REPO
from tests.tables_fixtures import table_data, write_eval  # noqa: F401 (table_data: a fixture)


@pytest.mark.parametrize("bad, message", [(["--seeds", str(cli.MAX_SEEDS + 1)], f"--seeds {cli.MAX_SEEDS + 1}"),
                                          (["--seeds", "0,2147483647"], "--seeds '0,2147483647'"),
                                          (["--parallel", str(cli.MAX_PARALLEL + 1)], "argument --parallel")])
def test_seeds_and_parallel_are_bounded(tmp_path, bad, message, capsys):
    """Item 2: --seeds 10**9 --dry-run grew to 23 GB; --parallel 10**12 was a MemoryError traceback
    (just past the bounds here: the old code took these, and the sweep's values exhaust memory)."""
    with pytest.raises((SystemExit, UserError)) as e:
        cli.main(["--table", "1", "--demo", "--dry-run", *bad, "--gpus", "none", "--logroot", str(tmp_path / "l")])
    assert message in (str(e.value) if e.type is UserError else capsys.readouterr().err)
    assert cli.parse_seeds(str(cli.MAX_SEEDS)) == list(range(cli.MAX_SEEDS))


def test_dry_run_commands_quote_the_log_paths(tmp_path, table_data, capsys):
    """Item 7: `>> {log}` was unquoted: a --logroot holding $(...) ran it when pasted."""
    logroot = tmp_path / "a b $(touch PWNED)"
    assert cli.main(["--table", "1", "--data", table_data, "--logroot", str(logroot), "--gpus", "none",
                     "--only", "r18-cam", "--dry-run"]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("CUDA_VISIBLE_DEVICES=")]
    assert len(lines) == 2
    for line in lines:
        words = shlex.split(line)
        assert words[-2:] == [str(logroot / "r18-cam-b256" / words[-2].rsplit("/", 1)[-1]), "2>&1"]


def test_a_table_of_short_runs_says_so_in_its_title(tmp_path, capsys):
    """Item 6: -- --epochs 1 --steps-per-epoch 1 printed "Table 1 ... ours vs paper Table 1"."""
    short = runrecord.RunSettings(runrecord.ModelSettings(18, 4, [32, 40]),
                                  runrecord.TrainSettings("cam", 256, epochs=1, steps_per_epoch=1),
                                  dataset={"train_images": 1024, "num_classes": 4, "holdout": 0})
    write_eval(tmp_path / "logs" / "r18-cam-b256", 50.0, 40.0, 60.0, settings=short)
    assert cli.main(["--table", "1", "--report-only", "--logroot", str(tmp_path / "logs"),
                     "--results", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    title = next(x for x in out.splitlines() if "Table 1: accuracy" in x)
    assert title.startswith("[NOT THE PAPER'S SCHEDULE: ") and "train.epochs 1 (paper 1500)" in title
    assert "train.steps_per_epoch 1 (one pass: 4)" in title
    assert "[NOT THE PAPER'S SCHEDULE" in (tmp_path / "res" / "table1.md").read_text()
    paper = runrecord.RunSettings(runrecord.ModelSettings(18, 4, [32, 40]), runrecord.TrainSettings("cam", 256))
    write_eval(tmp_path / "logs" / "r18-cam-b256", 50.0, 40.0, 60.0, settings=paper)
    result = rs.collect(1, rs.make_runs(rs.table_configs(1), data=None, logroot=str(tmp_path / "logs")))
    assert result["schedule"] == [] and report.not_the_papers(result) == ""
