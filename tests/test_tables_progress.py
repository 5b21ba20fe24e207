"""Tests of the table scripts' cost, progress and packing (reproduce/progress.py, --runs-per-gpu, --allow-cpu):
stand-in commands and faked GPU ids, no training."""

import json
import os
import re

import pytest

from errors import UserError
from reproduce import __main__ as cli
from reproduce import executor as ex
from reproduce import progress
from reproduce import runs as rs
from reproduce.executor import Executor, Outcome
from reproduce.runs import Expectation
from tests.tables_fixtures import fake_run, table_argv, table_data  # noqa: F401 (table_data: a fixture)


def test_finish_time_is_a_list_schedule():
    assert progress.finish_time([3, 3, 3], 2) == 6
    assert progress.finish_time([1, 1], 2, busy=[5]) == 5
    assert progress.finish_time([4], 1, busy=[2]) == 6
    assert progress.finish_time([], 3) == 0


def test_runs_per_gpu_slots():
    assert ex.make_slots(["0", "1"], 1, runs_per_gpu=2) == [["0"], ["1"], ["0"], ["1"]]
    assert ex.make_slots(["0", "1", "2", "3"], 2, runs_per_gpu=3) == [["0", "1"], ["2", "3"]] * 3
    with pytest.raises(UserError, match="--runs-per-gpu 2: no GPU"):
        ex.make_slots([], 1, parallel=1, runs_per_gpu=2)


def test_k_times_gpus_runs_in_flight(tmp_path):
    """4 runs on 2 faked GPUs x 2: each 'training' waits until all 4 have started (else fails after 60 s)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    wait = (
        f"import os, time, sys; open(os.path.join({str(marks)!r}, {{n!r}}), 'w').close(); t = time.time()\n"
        f"while len(os.listdir({str(marks)!r})) < 4:\n"
        "    time.sleep(0.05)\n"
        "    if time.time() - t > 60: sys.exit('only ' + str(len(os.listdir("
        + repr(str(marks))
        + "))) + ' in flight')"
    )
    runs = [fake_run(tmp_path, f"r{i}", f"exec({wait.format(n=str(i))!r})") for i in range(4)]
    msgs = []
    out = Executor(ex.make_slots(["0", "1"], 1, runs_per_gpu=2), log=msgs.append).run_all(runs)
    messages = [o.message for o in out.values()]
    assert all(o.status == "ok" and o.did == "trained" for o in out.values()), messages
    logs = [open(r.train_log).read() for r in runs]
    gpus = sorted(re.search(r"^training r\d (\S+)$", log, re.M).group(1) for log in logs)
    assert gpus == ["0", "0", "1", "1"]  # two runs on each GPU
    # a done time says what it covers
    assert sum("trained in" in m and "evaluated in" in m for m in msgs) == 4


class Recorder:
    """Stands in for the Executor in reproduce.__main__: records the runs and slots it is given."""

    seen = []

    def __init__(self, slots, log=print, watch=None, progress_every=0):
        self.slots = slots

    def run_all(self, runs):
        Recorder.seen.append((self.slots, runs))
        return {}


def test_schedule_logdirs_and_settings_do_not_depend_on_runs_per_gpu(
    tmp_path, table_data, monkeypatch
):
    monkeypatch.setattr(cli, "Executor", Recorder)
    Recorder.seen = []
    for k in (1, 2, 3):
        folders = dict(data=table_data, logroot=tmp_path / "logs", results=tmp_path / f"res{k}")
        rest = ["--gpu-ids", "0,1", "--runs-per-gpu", str(k), "--progress-every", "0"]
        argv = table_argv(2, *rest, **folders)
        assert cli.main(argv) == cli.INCOMPLETE  # the stand-in trains nothing
    plans = [
        [(r.name, r.logdir, r.train_cmd, r.eval_cmd, r.expected.to_json()) for r in runs]
        for _, runs in Recorder.seen
    ]
    assert len(plans[0]) == 18 and plans[0] == plans[1] == plans[2]
    assert [len(slots) for slots, _ in Recorder.seen] == [2, 4, 6]  # K x GPUs runs in flight
    assert not any("runs" in str(a) for a in plans[0][0][2])  # nothing of K in train.py's command


def test_a_full_schedule_on_the_cpu_is_refused_with_its_cost(tmp_path, table_data, capsys):
    folders = dict(data=table_data, logroot=tmp_path / "logs", results=tmp_path / "res")
    argv = table_argv(1, "--gpu-ids", "none", "--only", "r18-cam", **folders)
    refusal = r"(?s)refusing to start: Cost: 1 run\(s\).*CPU-hours.*--allow-cpu"
    with pytest.raises(UserError, match=refusal):
        cli.main(argv)
    assert not os.path.exists(tmp_path / "logs") and not os.path.exists(tmp_path / "res")
    assert cli.main(argv + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Cost: 1 run(s) to train" in out and "FLOP" in out
    assert "CPU-hours" in out and "needs --allow-cpu" in out
    assert cli.main(argv + ["--dry-run", "--", "--epochs", "2"]) == 0  # a short run: no refusal
    assert "needs --allow-cpu" not in capsys.readouterr().out


def test_progress_line_from_measured_epoch_times(tmp_path, table_data):
    runs = rs.make_runs(
        rs.select(rs.table_configs(1), "r18-cam,r18-hns,r18-gr"),
        data=table_data,
        logroot=str(tmp_path),
        expectation=Expectation(table_data, 0),
    )
    works = {r.name: progress.work_of(r, rs.NEW, "CPU x, 2 cores", 0) for r in runs}
    watch = progress.Watch(runs, 1, works=works)
    watch.finished(runs[0], Outcome("ok", "trained", train_seconds=50.0, eval_seconds=0.0))
    watch.started(runs[1], "train", now=1000.0)
    before = watch.line(now=1001.0)  # no epoch timed: the cost estimate stands in, and says so
    assert "r18-hns-b256 starting" in before and "estimated where no epoch is timed yet" in before
    os.makedirs(runs[1].logdir)
    spe = runs[1].expected.train.steps_per_epoch
    with open(os.path.join(runs[1].logdir, "progress.json"), "w") as f:
        json.dump(
            {
                "epochs": 1500,
                "steps_per_epoch": spe,
                "batch": 256,
                "start_epoch": 1,
                "started": 1000.0,
                "ends": [[1, 1010.0], [2, 1020.0]],
            },
            f,
        )
    line = watch.line(now=1025.0)
    # 1498 epochs of 10 s, 5 s into the next: 14975 s; the queued run: 1500 epochs at the same cost a FLOP
    assert line.startswith(
        "progress: 1/3 runs done; r18-hns-b256 epoch 2/1500, ETA 4.2 h; all: ETA 8.3 h ("
    )
    assert "from measured epoch times" in line
    watch.started(runs[1], "evaluate", now=1030.0)
    assert "r18-hns-b256 evaluating" in watch.line(now=1031.0)
