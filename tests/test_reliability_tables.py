"""Issue 27, the table scripts: bounds, shell-safe dry runs, titles of short runs, read-only folders,
CUDA_VISIBLE_DEVICES, a closed pipe, the demo's data folder and the scripts without .venv."""

import os
import shlex
import subprocess
import sys

import pytest

import runrecord
from errors import UserError
from reproduce import __main__ as cli
from reproduce import report
from reproduce import runs as rs
from tests.conftest import REPO
from tests.tables_fixtures import table_argv, table_data, write_eval  # noqa: F401 (table_data: a fixture)


@pytest.mark.parametrize(
    "bad, message",
    [
        (["--seeds", str(cli.MAX_SEEDS + 1)], f"--seeds {cli.MAX_SEEDS + 1}"),
        (["--seeds", "0,2147483647"], "--seeds '0,2147483647'"),
        (["--parallel", str(cli.MAX_PARALLEL + 1)], "argument --parallel"),
    ],
)
def test_seeds_and_parallel_are_bounded(tmp_path, bad, message, capsys):
    """Item 2: --seeds 10**9 --dry-run grew to 23 GB; --parallel 10**12 was a MemoryError traceback
    (just past the bounds here: the old code took these, and the sweep's values exhaust memory)."""
    with pytest.raises((SystemExit, UserError)) as e:
        cli.main(
            table_argv(1, "--demo", "--dry-run", *bad, "--gpu-ids", "none", logroot=tmp_path / "l")
        )
    assert message in (str(e.value) if e.type is UserError else capsys.readouterr().err)
    assert cli.parse_seeds(str(cli.MAX_SEEDS)) == list(range(cli.MAX_SEEDS))


def test_dry_run_commands_quote_the_log_paths(tmp_path, table_data, capsys):
    """Item 7: `>> {log}` was unquoted: a --logroot holding $(...) ran it when pasted."""
    logroot = tmp_path / "a b $(touch PWNED)"
    rest = "--gpu-ids none --only r18-cam --dry-run".split()
    assert cli.main(table_argv(1, *rest, data=table_data, logroot=logroot)) == 0
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if x.startswith("CUDA_VISIBLE_DEVICES=")]
    assert len(lines) == 2
    for line in lines:
        words = shlex.split(line)
        assert words[-2:] == [str(logroot / "r18-cam-b256" / words[-2].rsplit("/", 1)[-1]), "2>&1"]


def test_a_table_of_short_runs_says_so_in_its_title(tmp_path, capsys):
    """Item 6: -- --epochs 1 --steps-per-epoch 1 printed "Table 1 ... ours vs paper Table 1"."""
    short = runrecord.RunSettings(
        runrecord.ModelSettings(18, 4, [32, 40]),
        runrecord.TrainSettings("cam", 256, epochs=1, steps_per_epoch=1),
        dataset={"train_images": 1024, "num_classes": 4, "holdout": 0},
    )
    write_eval(tmp_path / "logs" / "r18-cam-b256", 50.0, 40.0, 60.0, settings=short)
    argv = table_argv(1, "--report-only", logroot=tmp_path / "logs", results=tmp_path / "res")
    assert cli.main(argv) == cli.INCOMPLETE  # 1 run of 10
    out = capsys.readouterr().out
    title = next(x for x in out.splitlines() if "Table 1: accuracy" in x)
    assert title.startswith("[NOT THE PAPER'S SCHEDULE: ")
    assert "train.epochs 1 (paper 1500)" in title
    assert "train.steps_per_epoch 1 (one pass: 4)" in title
    assert "[NOT THE PAPER'S SCHEDULE" in (tmp_path / "res" / "table1.md").read_text()
    paper = runrecord.RunSettings(
        runrecord.ModelSettings(18, 4, [32, 40]), runrecord.TrainSettings("cam", 256)
    )
    write_eval(tmp_path / "logs" / "r18-cam-b256", 50.0, 40.0, 60.0, settings=paper)
    result = rs.collect(
        1, rs.make_runs(rs.table_configs(1), data=None, logroot=str(tmp_path / "logs"))
    )
    assert result["schedule"] == [] and report.not_the_papers(result) == ""


def deny_writes_under(monkeypatch, folder):
    """os.access says ``folder`` and what is under it are read-only (as a read-only mount; tests run as root)."""
    import argtypes

    real = os.access

    def access(path, mode, **kw):
        full = os.path.abspath(path)
        inside = full == str(folder) or full.startswith(str(folder) + os.sep)
        return False if inside and mode & os.W_OK else real(path, mode, **kw)

    monkeypatch.setattr(argtypes.os, "access", access)


def test_report_only_and_dry_run_accept_a_read_only_logroot(
    tmp_path, table_data, monkeypatch, capsys
):
    """Item 16: both were refused though they write nothing there."""
    logs = tmp_path / "logs"
    done = rs.make_runs(
        rs.select(rs.table_configs(1), "r18-cam"),
        data=table_data,
        logroot=str(logs),
        expectation=rs.Expectation(table_data, 0),
    )[0]
    write_eval(done.logdir, 58.0, 36.5, 54.0, settings=done.expected)
    deny_writes_under(monkeypatch, logs)
    # read, not refused; 1 run of 10
    argv = table_argv(1, "--report-only", logroot=logs, results=tmp_path / "res")
    assert cli.main(argv) == cli.INCOMPLETE
    train = table_argv(1, "--gpu-ids", "none", "--only", "r18-cam", data=table_data, logroot=logs)
    assert cli.main([*train, "--dry-run"]) == 0
    assert "# r18-cam-b256: evaluated" in capsys.readouterr().out
    with pytest.raises(UserError, match=f"--logroot {logs}: cannot be created"):
        cli.main(train)  # training writes there


def test_demo_in_a_read_only_checkout_is_refused_up_front(tmp_path, monkeypatch):
    """Item 17: --demo from a read-only checkout was an OSError traceback about demo_data."""
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    monkeypatch.setattr(cli, "REPO", str(checkout))
    deny_writes_under(monkeypatch, checkout)
    argv = table_argv(
        1, "--demo", "--gpu-ids", "none", logroot=tmp_path / "l", results=tmp_path / "r"
    )
    with pytest.raises(UserError, match="--demo: the demo dataset .*demo_data.* cannot be created"):
        cli.main(argv)
    assert os.listdir(checkout) == [] and sorted(os.listdir(tmp_path)) == ["checkout"]


def test_cuda_visible_devices_is_checked_as_gpus_is(tmp_path, table_data, monkeypatch, capsys):
    """Item 18: CUDA_VISIBLE_DEVICES=garbage planned every run on "GPU garbage"."""
    argv = table_argv(1, "--only", "r18-cam", "--dry-run", data=table_data, logroot=tmp_path / "l")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "garbage")
    with pytest.raises(
        UserError, match="CUDA_VISIBLE_DEVICES='garbage': 'garbage' is not a GPU id"
    ):
        cli.main(argv)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")  # CUDA's "no GPU"
    assert cli.main(argv) == 0 and "1 at a time on CPU" in capsys.readouterr().out


def test_a_closed_stdout_loses_no_results(tmp_path):
    """Item 19: `| head -2` gave a BrokenPipeError traceback and results/table1.* were not written."""
    logs, res = tmp_path / "logs", tmp_path / "res"
    write_eval(logs / "r34-gr-b256", 58.0, 36.5, 54.0)
    argv = table_argv(1, "--report-only", logroot=logs, results=res)
    proc = subprocess.Popen(
        [sys.executable, "-m", "reproduce", *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == cli.INCOMPLETE, err  # 1 run of 10; the table is still written
    assert "Traceback" not in err and "BrokenPipe" not in err
    written = sorted(x for x in os.listdir(res) if x.startswith("table1."))
    assert written == ["table1.csv", "table1.json", "table1.md"]


def test_the_scripts_without_venv_say_how_to_set_up(tmp_path):
    """Item 21: without .venv and PYTHON, python3 ran and died with ModuleNotFoundError: cv2."""
    checkout, bin_dir = tmp_path / "checkout", tmp_path / "bin"
    checkout.mkdir(), bin_dir.mkdir()
    python3 = bin_dir / "python3"  # a Python without site-packages: no cv2, tensorflow, tensorpack
    python3.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    python3.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "PYTHON"}
    env["PATH"] = f"{bin_dir}:/usr/bin:/bin"
    for script in ("run_table1.sh", "run_table2.sh"):
        with open(os.path.join(REPO, script)) as src, open(checkout / script, "w") as dst:
            dst.write(src.read())
        proc = subprocess.run(
            ["sh", str(checkout / script), "--demo"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert proc.returncode == 2 and proc.stderr.startswith("error: no ")
        assert "make .venv/.installed" in proc.stderr
        assert "ModuleNotFoundError" not in proc.stderr


def test_an_interrupted_demo_generation_is_one_line(tmp_path, monkeypatch, capsys):
    """Item 5: Ctrl-C while the demo generated its dataset printed a KeyboardInterrupt traceback."""

    def interrupted(out, **settings):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "REPO", str(tmp_path))
    monkeypatch.setattr(cli, "generate", interrupted)
    argv = table_argv(
        1, "--demo", "--gpu-ids", "none", logroot=tmp_path / "l", results=tmp_path / "r"
    )
    try:
        code = cli.main(argv)
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped main(): a traceback")
    assert code == 130
    assert "interrupted while generating the demo dataset" in capsys.readouterr().err
