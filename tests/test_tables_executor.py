"""Tests of reproduce/executor.py: GPU slots and their detection, the scheduler with stand-in commands
instead of train.py / evaluate.py, and the one table script per log root."""

import os

import pytest

import fileio
from errors import UserError
from reproduce import __main__ as cli
from reproduce import executor as ex
from reproduce import runs as rs
from reproduce.executor import LOCK, Executor
from reproduce.runs import Expectation
from tests.tables_fixtures import fake_run, table_argv, table_data, write_eval  # noqa: F401 (table_data: a fixture)


def test_gpu_slots():
    assert ex.make_slots(["0", "1", "2", "3"], 2) == [["0", "1"], ["2", "3"]]
    assert ex.make_slots(["0", "1", "2"], 2) == [["0", "1"]]  # the odd GPU stays idle
    assert ex.make_slots([], 1, parallel=3) == [None, None, None]
    with pytest.raises(UserError, match="only 2 GPU"):
        ex.make_slots(["0", "1"], 4)
    assert ex.slot_env(["2", "5"], {})["CUDA_VISIBLE_DEVICES"] == "2,5"
    assert ex.slot_env(None, {"CUDA_VISIBLE_DEVICES": "0"})["CUDA_VISIBLE_DEVICES"] == ""


def test_detect_gpus():
    assert ex.detect_gpus({"CUDA_VISIBLE_DEVICES": "3,1"}) == ["3", "1"]
    assert ex.detect_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert ex.detect_gpus({"CUDA_VISIBLE_DEVICES": "0,-1,2"}) == ["0"]
    assert ex.detect_gpus({}, smi="/nonexistent/nvidia-smi") == []
    assert ex.detect_gpus({"CUDA_VISIBLE_DEVICES": "GPU-8f6e,MIG-1a2b"}) == ["GPU-8f6e", "MIG-1a2b"]
    with pytest.raises(UserError, match="'garbage' is not a GPU id"):
        ex.detect_gpus({"CUDA_VISIBLE_DEVICES": "0,garbage"})


def test_executor_failure_skip_and_gpus(tmp_path):
    ok = fake_run(tmp_path, "ok", "pass")
    bad = fake_run(tmp_path, "bad", "import sys; print('boom'); sys.exit(3)")
    done = fake_run(tmp_path, "done", "raise SystemExit('must not train')")
    write_eval(done.logdir, 1, 1, 1)
    evalonly = fake_run(tmp_path, "evalonly", "raise SystemExit('must not train')")
    write_eval(evalonly.logdir, 1, 1, 1)
    os.remove(evalonly.eval_json)
    msgs = []
    outcomes = Executor([["0", "1"], ["2", "3"]], log=msgs.append).run_all(
        [ok, bad, done, evalonly]
    )
    names = {r.name: r.config.aug for r in (ok, bad, done, evalonly)}
    outcomes = {names[k]: v for k, v in outcomes.items()}
    assert outcomes["ok"].status == "ok" and outcomes["ok"].did == "trained"
    assert outcomes["done"].did == "skipped" and outcomes["evalonly"].did == "evaluated"
    assert outcomes["bad"].status == "failed" and outcomes["bad"].log == bad.train_log
    assert "status 3" in outcomes["bad"].message
    assert any("FAILED" in m and bad.train_log in m and "boom" in m for m in msgs)
    with open(ok.train_log) as f:
        log = f.read()
    assert "training ok 0,1" in log or "training ok 2,3" in log
    assert os.path.exists(ok.eval_json) and not os.path.exists(bad.eval_json)


def test_a_second_table_script_on_the_same_logroot_is_refused(tmp_path, table_data):
    logs = tmp_path / "logs"
    run = rs.make_runs(
        rs.select(rs.table_configs(1), "r18-cam"),
        data=table_data,
        logroot=str(logs),
        expectation=Expectation(table_data, 0),
    )[0]
    # finished: this script only skips it
    write_eval(run.logdir, 50.0, 25.0, 40.0, settings=run.expected)
    folders = dict(data=table_data, logroot=logs, results=tmp_path / "res")
    argv = table_argv(1, "--gpu-ids", "none", "--only", "r18-cam", **folders)
    # as a script running there holds it
    holder = fileio.hold_lock(str(logs / LOCK), "another table script")
    try:
        with pytest.raises(UserError, match=f"--logroot {logs}: in use by another process"):
            cli.main(argv)
        assert not os.path.exists(tmp_path / "res") and cli.main(argv + ["--dry-run"]) == 0
    finally:
        holder.close()
    assert cli.main(argv) == 0 and os.path.exists(tmp_path / "res" / "table1.json")
