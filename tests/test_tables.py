"""Tests of tables/: assembly from fixture eval JSONs, run states (skip / evaluate / train),
GPU slots, the pass-through rule, the scheduler with stand-in commands, bad input, and one
short end-to-end run of run_table1.sh on a tiny generated dataset."""
import csv
import json
import os
import subprocess
import sys

import pytest

from errors import UserError
from tables import __main__ as cli
from tables import configs, paper, report, runner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_eval(logdir, gt_known, top1_loc, top1_clas, done=True):
    """A finished run's folder: done.json, then eval.json (1 s newer) with these metrics."""
    os.makedirs(logdir, exist_ok=True)
    if done:
        with open(os.path.join(logdir, "done.json"), "w") as f:
            json.dump({"global_step": 10, "epoch": 2}, f)
        os.utime(os.path.join(logdir, "done.json"), (1000, 1000))
    summary = {"gt_known_loc": gt_known, "top1_loc": top1_loc, "top1_clas": top1_clas,
               "top5_loc": 0.0, "top5_clas": 0.0}
    with open(os.path.join(logdir, "eval.json"), "w") as f:
        json.dump({"summary": summary, "records": []}, f)
    os.utime(os.path.join(logdir, "eval.json"), (1001, 1001))


# ---- the paper's numbers and the configurations --------------------------------------------

def test_paper_numbers_match_facts():
    assert len(paper.TABLE1) == 10 and len(paper.TABLE2) == 9
    assert paper.TABLE1[(34, "gr")] == {"gt_known_loc": 57.82, "top1_loc": 36.00, "top1_clas": 54.13}
    assert paper.TABLE1[(18, "gr_after_hns")] == {"gt_known_loc": 56.76, "top1_loc": 32.28, "top1_clas": 48.87}
    assert paper.TABLE2[("hns", 128)] == {34: 30.32, 18: 29.25}
    assert paper.TABLE2[("cam", 32)] == {34: 31.49, 18: 28.47}
    # batch-256 column of Table 2 equals Top-1 Loc of Table 1 in the paper
    for m in ("cam", "hns", "gr"):
        for d in (34, 18):
            assert paper.TABLE2[(m, 256)][d] == paper.TABLE1[(d, m)]["top1_loc"]


def test_configs_and_names():
    t1 = configs.table_configs(1)
    t2 = configs.table_configs(2)
    assert len(t1) == 10 and len(t2) == 18
    assert t1[0].name == "r34-cam-b256" and {c.batch for c in t1} == {256}
    assert {c.name for c in t1 if c.aug in ("cam", "hns", "gr")} <= {c.name for c in t2}  # reuse
    assert {c.batch for c in configs.table_configs(2, {32: 4, 128: 16, 256: 32})} == {4, 16, 32}


def test_select():
    t1 = configs.table_configs(1)
    assert [c.name for c in configs.select(t1, "r18-gr")] == ["r18-gr-b256"]
    assert len(configs.select(t1, "r34")) == 5
    assert [c.name for c in configs.select(t1, "r18-cam, r34-hns-b256")] == ["r34-hns-b256", "r18-cam-b256"]
    assert len(configs.select(configs.table_configs(2), "*-b32")) == 6
    with pytest.raises(UserError, match="r50"):
        configs.select(t1, "r50")


# ---- table assembly from fixture eval JSONs -------------------------------------------------

def test_table1_from_fixture_jsons(tmp_path):
    write_eval(tmp_path / "r18-gr-b256", 60.0, 35.5, 50.25)
    write_eval(tmp_path / "r34-cam-b256", 50.0, 27.5, 44.0)
    res = report.collect(1, str(tmp_path))
    assert len(res["cells"]) == 30
    cell = {(c["run"], c["metric"]): c for c in res["cells"]}
    c = cell[("r18-gr-b256", "top1_loc")]
    assert (c["ours"], c["paper"], c["diff"]) == (35.5, 34.43, 1.07)
    c = cell[("r34-cam-b256", "gt_known_loc")]
    assert (c["ours"], c["paper"], c["diff"]) == (50.0, 53.46, -3.46)
    c = cell[("r18-hns-b256", "top1_clas")]
    assert (c["ours"], c["paper"], c["diff"]) == (None, 44.12, None)
    assert res["runs"]["r18-hns-b256"]["status"] == "missing"
    assert res["runs"]["r18-hns-b256"]["message"] == "not run"

    headers, rows = report.grid(res)
    assert headers == ["Depth", "Metric", "", "CAM", "HnS", "GR", "HnS after GR", "GR after HnS"]
    assert len(rows) == 2 * 3 * 3
    assert rows[0][:4] == ["ResNet34", "GT-known Loc", "ours", "50.00"]
    assert rows[1][:4] == ["", "", "paper", "53.46"] and rows[2][:4] == ["", "", "diff", "-3.46"]
    r18_top1 = rows[9 + 3: 9 + 6]  # ResNet18, Top-1 Loc: ours, paper, diff
    assert r18_top1[0][1] == "Top-1 Loc" and r18_top1[0][5] == "35.50"
    assert r18_top1[1][5] == "34.43" and r18_top1[2][5] == "+1.07"
    assert r18_top1[0][4] == report.MISSING  # HnS not run
    text = report.render(res)
    assert "ResNet18" in text and "DEMO" not in text
    assert "— not run (no folder in " in text and "r18-hns-b256" in text.split("not run")[1]


def test_table2_shape_and_reuse(tmp_path):
    write_eval(tmp_path / "r34-gr-b32", 58.0, 38.0, 55.0)
    write_eval(tmp_path / "r18-cam-b256", 52.0, 26.13, 43.0)  # a Table 1 run, reused
    res = report.collect(2, str(tmp_path))
    assert len(res["cells"]) == 18 and {c["metric"] for c in res["cells"]} == {"top1_loc"}
    headers, rows = report.grid(res)
    assert headers == ["Method", "Batch size", "ResNet34", "paper", "diff", "ResNet18", "paper", "diff"]
    assert [r[:2] for r in rows[:4]] == [["CAM", "32"], ["", "128"], ["", "256"], ["HnS", "32"]]
    assert rows[2][5:] == ["26.13", "27.13", "-1.00"]
    assert rows[6][2:5] == ["38.00", "37.84", "+0.16"]
    assert rows[0][2] == report.MISSING and rows[0][3] == "31.49"


def test_demo_batches_are_labelled(tmp_path):
    write_eval(tmp_path / "r18-gr-b4", 10.0, 5.0, 20.0)
    res = report.collect(2, str(tmp_path), batch_map={32: 4, 128: 16, 256: 32}, demo=True)
    headers, rows = report.grid(res)
    assert rows[6][1] == "32 (ran 4)" and rows[6][5] == "5.00"
    assert "[DEMO]" in report.render(res) and report.DEMO_BANNER in report.render(res)


def test_stale_and_broken_eval_json_are_missing(tmp_path):
    write_eval(tmp_path / "r18-cam-b256", 50.0, 25.0, 40.0)
    os.utime(tmp_path / "r18-cam-b256" / "done.json", (2000, 2000))  # retrained after evaluation
    write_eval(tmp_path / "r18-gr-b256", 50.0, 25.0, 40.0)
    (tmp_path / "r18-gr-b256" / "eval.json").write_text('{"summary": {"top1_loc": 1}}')
    res = report.collect(1, str(tmp_path))
    assert "older than done.json" in res["runs"]["r18-cam-b256"]["message"]
    assert "unusable" in res["runs"]["r18-gr-b256"]["message"]
    assert all(c["ours"] is None for c in res["cells"])


def test_failed_run_is_reported_with_its_log(tmp_path):
    out = runner.Outcome("failed", message="train.py exited with status 1", log="/x/r18-gr-b256/train.out")
    write_eval(tmp_path / "r18-gr-b256", 60.0, 35.5, 50.25)   # e.g. from a run with other settings
    res = report.collect(1, str(tmp_path), outcomes={"r18-gr-b256": out})
    assert res["runs"]["r18-gr-b256"]["status"] == "failed"
    assert all(c["ours"] is None for c in res["cells"] if c["run"] == "r18-gr-b256")
    assert "FAILED: train.py exited with status 1; log /x/r18-gr-b256/train.out" in report.render(res)


def test_results_files(tmp_path):
    write_eval(tmp_path / "logs" / "r18-gr-b256", 60.0, 35.5, 50.25)
    res = report.collect(1, str(tmp_path / "logs"), info={"train_args": ["--epochs", "2"]})
    paths = report.write(res, str(tmp_path / "results"))
    assert [os.path.basename(p) for p in paths] == ["table1.json", "table1.csv", "table1.md"]
    saved = json.loads((tmp_path / "results" / "table1.json").read_text())
    assert saved["cells"] == res["cells"] and saved["info"]["train_args"] == ["--epochs", "2"]
    with open(tmp_path / "results" / "table1.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30
    row = next(r for r in rows if r["run"] == "r18-gr-b256" and r["metric"] == "gt_known_loc")
    assert (row["ours"], row["paper"], row["diff"], row["status"]) == ("60.0", "57.0", "3.0", "ok")
    row = next(r for r in rows if r["run"] == "r18-cam-b256" and r["metric"] == "top1_loc")
    assert (row["ours"], row["paper"], row["diff"], row["status"]) == ("", "27.13", "", "missing")
    md = (tmp_path / "results" / "table1.md").read_text()
    assert "| ResNet18 | GT-known Loc | ours  |     — |" in md and "+3.00" in md


# ---- run states: skip / evaluate only / train ----------------------------------------------

def make_run(tmp_path, name="r18-gr-b256", train_args=()):
    cfg = next(c for c in configs.table_configs(1) if c.name == name)
    return runner.make_runs([cfg], data=str(tmp_path), logroot=str(tmp_path / "logs"),
                            train_args=list(train_args), gpus_per_run=0, python="py", repo="/repo")[0]


def test_run_states(tmp_path):
    run = make_run(tmp_path)
    assert runner.run_state(run)[0] == runner.TRAIN                 # nothing yet
    os.makedirs(run.logdir)
    (tmp_path / "logs" / run.name / "checkpoint").write_text("")
    assert runner.run_state(run) == (runner.TRAIN, "resuming from its last checkpoint")   # interrupted: resume
    write_eval(run.logdir, 1, 1, 1)
    assert runner.run_state(run)[0] == runner.FINISHED
    os.utime(os.path.join(run.logdir, "done.json"), (5000, 5000))
    assert runner.run_state(run) == (runner.EVALUATE, "eval.json older than done.json")
    os.remove(run.eval_json)
    assert runner.run_state(run) == (runner.EVALUATE, "trained, not evaluated")


def test_conflicting_settings_are_not_reused(tmp_path):
    run = make_run(tmp_path, train_args=["--epochs", "2", "--threads", "1"])
    write_eval(run.logdir, 1, 1, 1)
    with open(os.path.join(run.logdir, runner.RECORD), "w") as f:
        json.dump(run.record, f)
    same = make_run(tmp_path, train_args=["--xla", "--threads=2", "--epochs=2", "--workers", "3"])  # speed only
    assert runner.run_state(same)[0] == runner.FINISHED
    other = make_run(tmp_path, train_args=["--epochs", "1500"])
    state, reason = runner.run_state(other)
    assert state == runner.CONFLICT and "--logroot" in reason and "train_args" in reason
    (tmp_path / "wnids.txt").write_text("n1\n")   # another dataset in the same folder
    state, reason = runner.run_state(make_run(tmp_path, train_args=["--epochs", "2"]))
    assert state == runner.CONFLICT and "data_id" in reason


def test_record_of_passthrough_args():
    args = ["--epochs", "2", "--flip", "--lr=0.05", "--threads", "1", "--epochs", "3", "--xla"]
    assert runner._semantic_args(args) == {"--epochs": "3", "--flip": [], "--lr": "0.05"}


def test_commands(tmp_path):
    run = make_run(tmp_path, train_args=["--epochs", "2"])
    logdir = str(tmp_path / "logs" / "r18-gr-b256")
    assert run.train_cmd == ["py", "/repo/train.py", "--data", str(tmp_path), "--depth", "18", "--aug", "gr",
                             "--batch", "256", "--logdir", logdir, "--epochs", "2"]
    assert run.eval_cmd == ["py", "/repo/evaluate.py", "--load", logdir, "--data", str(tmp_path),
                            "--json", os.path.join(logdir, "eval.json")]
    gpu_run = runner.make_runs(configs.table_configs(1)[:1], data="d", logroot="l", gpus_per_run=2)[0]
    assert gpu_run.train_cmd[-2:] == ["--gpus", "2"]
    lines = runner.describe(run, runner.TRAIN, ["2", "3"])
    assert lines[0].startswith("CUDA_VISIBLE_DEVICES=2,3 py /repo/train.py") and len(lines) == 2
    assert len(runner.describe(run, runner.EVALUATE, None)) == 1
    assert runner.describe(run, runner.FINISHED, None) == []


# ---- GPUs ----------------------------------------------------------------------------------

def test_gpu_slots():
    assert runner.make_slots(["0", "1", "2", "3"], 2) == [["0", "1"], ["2", "3"]]
    assert runner.make_slots(["0", "1", "2"], 2) == [["0", "1"]]   # the odd GPU stays idle
    assert runner.make_slots(["0", "1", "2", "3"], 1) == [["0"], ["1"], ["2"], ["3"]]
    assert runner.make_slots([], 1, parallel=3) == [None, None, None]
    with pytest.raises(UserError, match="only 2 GPU"):
        runner.make_slots(["0", "1"], 4)
    assert runner.slot_env(["2", "5"], {})["CUDA_VISIBLE_DEVICES"] == "2,5"
    assert runner.slot_env(None, {"CUDA_VISIBLE_DEVICES": "0"})["CUDA_VISIBLE_DEVICES"] == ""


def test_detect_gpus():
    assert runner.detect_gpus({"CUDA_VISIBLE_DEVICES": "3,1"}) == ["3", "1"]
    assert runner.detect_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    assert runner.detect_gpus({"CUDA_VISIBLE_DEVICES": "0,-1,2"}) == ["0"]
    assert runner.detect_gpus({}, smi="/nonexistent/nvidia-smi") == []
    assert runner.parse_gpus("0, 2") == ["0", "2"] and runner.parse_gpus("none") == []


# ---- the scheduler, with stand-in commands instead of train.py / evaluate.py --------------

def fake_run(tmp_path, name, train_code, eval_code="pass"):
    """A Run whose 'training' and 'evaluation' are short python -c programs run in its logdir."""
    logdir = str(tmp_path / name)
    ev = ("import json,os; json.dump({'summary': {'gt_known_loc': 1, 'top1_loc': 2, 'top1_clas': 3}},"
          f" open(os.path.join({logdir!r}, 'eval.json'), 'w')); " + eval_code)
    tr = (f"import json,os; print('training {name}', os.environ['CUDA_VISIBLE_DEVICES']); " + train_code
          + f"; json.dump({{}}, open(os.path.join({logdir!r}, 'done.json'), 'w'))")
    return runner.Run(name, logdir, [sys.executable, "-c", tr], [sys.executable, "-c", ev], {"x": 1})


def test_executor_failure_skip_and_gpus(tmp_path):
    ok = fake_run(tmp_path, "ok", "pass")
    bad = fake_run(tmp_path, "bad", "import sys; print('boom'); sys.exit(3)")
    done = fake_run(tmp_path, "done", "raise SystemExit('must not train')")
    write_eval(done.logdir, 1, 1, 1)
    evalonly = fake_run(tmp_path, "evalonly", "raise SystemExit('must not train')")
    write_eval(evalonly.logdir, 1, 1, 1)
    os.remove(evalonly.eval_json)
    msgs = []
    outcomes = runner.Executor([["0", "1"], ["2", "3"]], log=msgs.append).run_all([ok, bad, done, evalonly])
    assert outcomes["ok"].status == "ok" and outcomes["ok"].did == "trained"
    assert outcomes["done"].did == "skipped" and outcomes["evalonly"].did == "evaluated"
    assert outcomes["bad"].status == "failed" and outcomes["bad"].log == bad.train_log
    assert "status 3" in outcomes["bad"].message
    assert any("FAILED" in m and bad.train_log in m and "boom" in m for m in msgs)
    with open(ok.train_log) as f:
        log = f.read()
    assert "training ok 0,1" in log or "training ok 2,3" in log
    assert os.path.exists(ok.eval_json) and not os.path.exists(bad.eval_json)
    assert json.load(open(os.path.join(ok.logdir, runner.RECORD))) == {"x": 1}


def test_executor_waits_for_a_run_locked_elsewhere(tmp_path):
    import fcntl
    import threading
    busy = fake_run(tmp_path, "busy", "pass")
    free = fake_run(tmp_path, "free", "pass")
    os.makedirs(busy.logdir)
    holder = open(os.path.join(busy.logdir, runner.LOCK), "w")
    fcntl.flock(holder, fcntl.LOCK_EX)
    write_eval(busy.logdir, 1, 1, 1)        # "the other process" finishes it, then lets go
    threading.Timer(1.0, lambda: (fcntl.flock(holder, fcntl.LOCK_UN), holder.close())).start()
    msgs = []
    outcomes = runner.Executor([None], log=msgs.append).run_all([busy, free])
    assert outcomes["free"].did == "trained" and outcomes["busy"].did == "skipped"
    assert any("another process" in m for m in msgs)


# ---- command line: bad input, pass-through, dry run -----------------------------------------

def test_usage_without_data(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--table", "1"])
    assert e.value.code == 2 and "usage:" in capsys.readouterr().err


@pytest.mark.parametrize("data_flag", [["--demo"], ["--data", "TINY"]])
def test_parallel_zero_is_refused_not_taken_as_the_default(tmp_path, tiny_data, data_flag):
    data_flag = [tiny_data if a == "TINY" else a for a in data_flag]
    with pytest.raises(UserError, match="--parallel"):
        cli.main(["--table", "1", *data_flag, "--parallel", "0", "--gpus", "none", "--dry-run",
                  "--logroot", str(tmp_path / "logs"), "--results", str(tmp_path / "res")])


def test_not_tiny_imagenet_is_refused(tmp_path, tiny_data):
    with pytest.raises(UserError, match="no such folder"):
        cli.main(["--table", "1", "--data", str(tmp_path / "nope")])
    (tmp_path / "wnids.txt").write_text("n0\n")
    with pytest.raises(UserError, match="Tiny ImageNet layout: missing folder .*train"):
        cli.main(["--table", "1", "--data", str(tmp_path)])
    cli.check_tiny_imagenet(tiny_data)  # the generated layout passes


def test_passthrough_rule():
    args, extra = cli.parse_args(["--table", "1", "--data", "D", "--epochs", "2", "--only", "r18",
                                  "--lr-step-epochs=1", "--", "--seed", "3", "--logroot", "x"])
    assert args.data == "D" and args.only == "r18" and args.logroot is None
    assert extra == ["--epochs", "2", "--lr-step-epochs=1", "--seed", "3", "--logroot", "x"]
    with pytest.raises(UserError, match="--depth"):
        runner.check_passthrough(["--depth", "50"])


def test_dry_run(tmp_path, tiny_data, capsys):
    write_eval(tmp_path / "r18-cam-b256", 1, 1, 1)
    rc = cli.main(["--table", "1", "--data", tiny_data, "--logroot", str(tmp_path), "--gpus", "0,1,2,3",
                   "--gpus-per-run", "2", "--only", "r18-cam,r18-gr", "--dry-run", "--epochs", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "2 run(s)" in out and "1 finished" in out and "2 at a time on GPU 0,1, GPU 2,3" in out
    assert "# r18-cam-b256: finished" in out
    assert "CUDA_VISIBLE_DEVICES=" in out and "--gpus 2 --epochs 2" in out
    assert not os.path.exists(tmp_path / "r18-gr-b256")


def test_demo_dry_run(tmp_path, capsys):
    rc = cli.main(["--table", "2", "--demo", "--logroot", str(tmp_path / "logs"), "--gpus", "none",
                   "--parallel", "2", "--only", "r18-gr", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and report.DEMO_BANNER in out and "2 at a time on CPU, CPU" in out
    assert "# r18-gr-b4: train" in out and "# r18-gr-b16: train" in out and "--batch 32" in out
    assert "--width-mult" in out and "--threads" in out   # demo's net, cores shared by 2 runs
    assert not os.path.exists(tmp_path / "logs")


def test_report_only(tmp_path, capsys):
    write_eval(tmp_path / "logs" / "r34-gr-b256", 58.0, 36.5, 54.0)
    rc = cli.main(["--table", "1", "--report-only", "--logroot", str(tmp_path / "logs"),
                   "--results", str(tmp_path / "res")])
    out = capsys.readouterr().out
    assert rc == 0 and "36.50" in out and "+0.50" in out
    assert json.loads((tmp_path / "res" / "table1.json").read_text())["runs"]["r34-gr-b256"]["status"] == "ok"


# ---- end to end: run_table1.sh trains and evaluates two runs on generated data --------------

@pytest.mark.slow
def test_run_table1_end_to_end(tmp_path):
    from dataflow.synthetic import generate
    # 4 x 64 = 256 training images: one step of the paper's batch 256 per epoch
    data = generate(tmp_path / "data", classes=4, train_per_class=64, val_per_class=3, seed=1,
                    height=32, width=40)
    logs, res = tmp_path / "logs", tmp_path / "res"
    cmd = [os.path.join(REPO, "run_table1.sh"), "--data", str(data), "--logroot", str(logs),
           "--results", str(res), "--gpus", "none", "--only", "r18-cam,r18-gr",
           "--epochs", "1", "--lr-step-epochs", "1", "--", "--width-mult", "0.0625"]
    env = dict(os.environ, PYTHON=sys.executable)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    for name in ("r18-cam-b256", "r18-gr-b256"):
        assert os.path.exists(logs / name / "done.json") and os.path.exists(logs / name / "train.out")
    summary = json.loads((logs / "r18-gr-b256" / "eval.json").read_text())["summary"]
    saved = json.loads((res / "table1.json").read_text())
    cell = next(c for c in saved["cells"] if c["run"] == "r18-gr-b256" and c["metric"] == "top1_clas")
    assert cell["ours"] == round(summary["top1_clas"], 2) and cell["paper"] == 52.23
    assert saved["runs"]["r34-cam-b256"]["status"] == "missing"
    assert os.path.exists(res / "table1.csv") and os.path.exists(res / "table1.md")
    assert "Table 1" in p.stdout and "ResNet18" in p.stdout and f"{summary['top1_clas']:.2f}" in p.stdout

    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 finished, 0 to evaluate, 0 to train" in again.stdout
    assert again.stdout.count("skip     r18-") == 2 and "train    r18" not in again.stdout
