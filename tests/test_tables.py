"""Tests of tables/: assembly from hand-written eval.json files (seeds, baselines, protocols, the
2020 metrics), run states, refusals that write nothing, GPU slots, the scheduler with stand-in
commands, Figure 2 from fake panels, and one short end-to-end run of run_table1.sh."""
import csv
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import fileio
import runrecord
from tests.conftest import REPO
from errors import UserError
from tables import __main__ as cli
from tables import paper, report
from tables import executor as ex
from tables import runs as rs
from tables.executor import LOCK, Executor, Outcome
from tables.runs import Expectation



@pytest.fixture(scope="module")
def table_data(tmp_path_factory):
    """A generated dataset with 4 x 64 = 256 training images: one step of the paper's batch 256."""
    from dataflow.synthetic import generate
    return str(generate(tmp_path_factory.mktemp("table") / "data", classes=4, train_per_class=64,
                        val_per_class=3, seed=1, height=32, width=40))


def summary(gt, top1, clas):
    return {"gt_known_loc": gt, "top1_loc": top1, "top1_clas": clas, "top5_loc": 0.0, "top5_clas": 0.0}


def write_eval(logdir, gt_known, top1_loc, top1_clas, done=True, settings=None, **contract):
    """A finished run's folder: settings.json, done.json, then eval.json (1 s newer) and figure panels.

    ``settings``: a RunSettings (default: some valid one); ``contract``: more eval.json fields
    (protocol, protocols, wsol2020), as evaluate.py writes them.
    """
    os.makedirs(os.path.join(logdir, rs.FIGURE_DIR), exist_ok=True)
    settings = settings or runrecord.RunSettings(runrecord.ModelSettings(18, 4, [32, 40]),
                                                 runrecord.TrainSettings("gr", 256))
    fileio.write_json(os.path.join(logdir, runrecord.SETTINGS), settings.to_json())
    if done:
        with open(os.path.join(logdir, "done.json"), "w") as f:
            json.dump({"global_step": 10, "epoch": 2}, f)
        os.utime(os.path.join(logdir, "done.json"), (1000, 1000))
    with open(os.path.join(logdir, "eval.json"), "w") as f:
        json.dump({"summary": summary(gt_known, top1_loc, top1_clas), "records": [], "settings": {
            "checkpoint": os.path.join(logdir, "model-10"), "split": "val", "limit": None}, **contract}, f)
    os.utime(os.path.join(logdir, "eval.json"), (1001, 1001))


def protocols(gt, top1, clas, *, whole=40.0, fixed=45.0, holdout=None):
    """``protocols`` of an eval.json: authors = the given values, paper 1 point lower, wsol 3 lower."""
    out = {}
    for name, shift in (("authors", 0.0), ("paper", -1.0), ("wsol", -3.0)):
        out[name] = {"summary": summary(gt + shift, top1 + shift, clas),
                     "baselines": {"whole_image": whole, "best_fixed_box": fixed}, "holdout": holdout}
    return out


def table_runs(tmp_path, table=1, seeds=(0,), batch_map=None, depths=None):
    return rs.make_runs(rs.table_configs(table, batch_map, depths, seeds), data=None, logroot=str(tmp_path))


def collect(tmp_path, table=1, seeds=(0,), batch_map=None, depths=None, **kw):
    return rs.collect(table, table_runs(tmp_path, table, seeds, batch_map, depths), batch_map=batch_map,
                           depths=depths, **kw)


# ---- the paper's numbers and the configurations --------------------------------------------

def test_paper_tables_agree_with_each_other():
    # the paper prints Top-1 Loc at batch 256 in both tables: one transcription checks the other
    assert len(paper.TABLE1) == 10 and len(paper.TABLE2) == 9
    for m in ("cam", "hns", "gr"):
        for d in paper.DEPTHS:
            assert paper.TABLE2[(m, 256)][d] == paper.TABLE1[(d, m)]["top1_loc"]


def test_configs_names_and_seeds():
    t1, t2 = rs.table_configs(1), rs.table_configs(2)
    assert len(t1) == 10 and len(t2) == 18
    assert t1[0].name == "r34-cam-b256" and {c.batch for c in t1} == {256}
    assert {c.name for c in t1 if c.aug in ("cam", "hns", "gr")} <= {c.name for c in t2}  # reuse
    assert {c.batch for c in rs.table_configs(2, {32: 4, 128: 16, 256: 32})} == {4, 16, 32}
    two = rs.table_configs(1, seeds=[0, 1], depths=(18,))
    assert [c.name for c in two[:2]] == ["r18-cam-b256", "r18-cam-b256-s1"]  # seed 0 keeps today's name
    assert len(two) == 10 and {c.depth for c in two} == {18} and two[1].cell == "r18-cam-b256"
    assert cli.parse_seeds("3") == [0, 1, 2] and cli.parse_seeds("0,4,7") == [0, 4, 7]
    assert cli.parse_seeds("5,") == [5] and cli.parse_seeds(2) == [0, 1]
    for bad in ("0", "x", "1,1", "-1,2"):
        with pytest.raises(UserError, match="--seeds"):
            cli.parse_seeds(bad)


def test_select():
    t1 = rs.table_configs(1, seeds=[0, 1])
    assert [c.name for c in rs.select(t1, "r18-gr")] == ["r18-gr-b256", "r18-gr-b256-s1"]
    assert [c.name for c in rs.select(t1, "r18-gr-b256-s1")] == ["r18-gr-b256-s1"]
    assert len(rs.select(t1, "r34")) == 10
    assert len(rs.select(rs.table_configs(2), "*-b32")) == 6
    with pytest.raises(UserError, match="r50"):
        rs.select(t1, "r50")


# ---- table assembly from hand-written eval.json files ---------------------------------------

def test_table1_from_fixture_jsons(tmp_path):
    write_eval(tmp_path / "r18-gr-b256", 60.0, 35.5, 50.25)
    write_eval(tmp_path / "r34-cam-b256", 50.0, 27.5, 44.0)
    res = collect(tmp_path)
    assert len(res["cells"]) == 30
    cell = {(c["run"], c["metric"]): c for c in res["cells"]}
    c = cell[("r18-gr-b256", "top1_loc")]
    assert (c["mean"], c["paper"], c["diff"], c["n"]) == (35.5, 34.43, 1.07, 1)
    c = cell[("r18-hns-b256", "top1_clas")]
    assert (c["mean"], c["diff"], c["n"]) == (None, None, 0)
    assert res["runs"]["r18-hns-b256"]["message"] == "not run"

    headers, rows = report.grid(res)
    assert headers == ["Depth", "Metric", "", "CAM", "HnS", "GR", "HnS after GR", "GR after HnS"]
    assert len(rows) == 2 * (3 * 3 + 2)   # per depth: 3 metrics x (ours, paper, diff) + 2 baselines
    assert rows[0][:4] == ["ResNet34", "GT-known Loc", "ours", "50.00"]
    assert rows[1][:4] == ["", "", "paper", "53.46"] and rows[2][:4] == ["", "", "diff", "-3.46"]
    assert rows[3][2] == "whole image box" and rows[3][3] == report.MISSING  # old eval.json: no baselines
    r18_top1 = rows[11 + 5: 11 + 8]  # ResNet18, Top-1 Loc: ours, paper, diff
    assert r18_top1[0][1] == "Top-1 Loc" and r18_top1[0][5] == "35.50"
    assert r18_top1[1][5] == "34.43" and r18_top1[2][5] == "+1.07" and r18_top1[0][4] == report.MISSING
    text = report.render(res)
    assert "DEMO" not in text and "— not run (no folder in " in text


def test_seeds_mean_std_and_every_seed_kept(tmp_path):
    write_eval(tmp_path / "r18-gr-b256", 60.0, 35.0, 50.0)
    write_eval(tmp_path / "r18-gr-b256-s1", 62.0, 36.0, 52.0)
    write_eval(tmp_path / "r18-cam-b256-s1", 30.0, 20.0, 50.0)   # seed 0 of this cell missing
    res = collect(tmp_path, seeds=[0, 1], depths=(18,))
    c = next(c for c in res["cells"] if c["run"] == "r18-gr-b256" and c["metric"] == "gt_known_loc")
    assert (c["mean"], c["std"], c["n"], c["seeds"]) == (61.0, 1.41, 2, {"0": 60.0, "1": 62.0})
    c = next(c for c in res["cells"] if c["run"] == "r18-cam-b256" and c["metric"] == "gt_known_loc")
    assert (c["mean"], c["n"], c["seeds"]) == (30.0, 1, {"1": 30.0})
    headers, rows = report.grid(res)
    assert rows[0][:6] == ["ResNet18", "GT-known Loc", "ours", "30.00", report.MISSING, "61.00±1.41"]
    assert len(rows) == 11   # ResNet34 absent
    text = report.render(res)
    assert "seeds: 0, 1; cells show mean±std" in text and "not run here: ResNet34" in text
    assert "r18-cam-b256:" not in text and "r18-cam-b256 " not in text.split("not run (")[0]
    paths = report.write(res, str(tmp_path / "res"))
    with open(paths[1]) as f:
        rows = [r for r in csv.DictReader(f) if r["run"] == "r18-gr-b256" and r["metric"] == "top1_loc"]
    assert [(r["seed"], r["folder"], r["value"], r["mean"]) for r in rows] == [
        ("0", "r18-gr-b256", "35.0", "35.5"), ("1", "r18-gr-b256-s1", "36.0", "35.5")]
    saved = json.loads(open(paths[0]).read())
    assert saved["runs"]["r18-gr-b256-s1"]["values"]["gt_known_loc"] == 62.0 and saved["seeds"] == [0, 1]


def test_baselines_protocol_and_effects(tmp_path):
    for name, gt, whole in (("r34-gr-b256", 58.0, 40.0), ("r34-cam-b256", 50.0, 40.0)):
        write_eval(tmp_path / name, gt, 30.0, 50.0, protocol="authors",
                   protocols=protocols(gt, 30.0, 50.0, whole=whole, fixed=44.5))
    res = collect(tmp_path)
    headers, rows = report.grid(res)
    assert rows[3][2:5] == ["whole image box", "40.00", report.MISSING]
    assert rows[4][2:6] == ["best fixed box", "44.50", report.MISSING, "44.50"]
    text = report.render(res)
    assert "evaluation protocol: authors" in text
    effects = text.split("protocol quirk")[1]
    gr = next(line for line in effects.splitlines() if line.startswith("ResNet34  GR"))
    assert gr.split()[-4:] == ["1.00", "1.00", "2.00", "2.00"]   # authors - paper, paper - wsol


def test_table2_shape_reuse_and_baselines(tmp_path):
    write_eval(tmp_path / "r34-gr-b32", 58.0, 38.0, 55.0)
    write_eval(tmp_path / "r18-cam-b256", 52.0, 26.13, 43.0, protocol="paper",
               protocols=protocols(52.0, 26.13, 43.0, whole=41.0))   # a Table 1 run, reused
    res = collect(tmp_path, table=2)
    assert len(res["cells"]) == 18 and {c["metric"] for c in res["cells"]} == {"top1_loc"}
    headers, rows = report.grid(res)
    assert headers == ["Method", "Batch size", "ResNet34", "paper", "diff", "ResNet18", "paper", "diff"]
    assert [r[:2] for r in rows[:4]] == [["CAM", "32"], ["", "128"], ["", "256"], ["HnS", "32"]]
    assert rows[2][5:] == ["26.13", "27.13", "-1.00"] and rows[6][2:5] == ["38.00", "37.84", "+0.16"]
    assert rows[9][0].startswith("whole image box") and rows[9][2] == report.MISSING and rows[9][5] == "41.00"


def test_demo_batches_are_labelled(tmp_path):
    write_eval(tmp_path / "r18-gr-b4", 10.0, 5.0, 20.0)
    res = collect(tmp_path, table=2, batch_map={32: 4, 128: 16, 256: 32}, demo=True)
    headers, rows = report.grid(res)
    # the demo prints ours only (its claims block has the paper's differences)
    assert headers == ["Method", "Batch size", "ResNet34", "ResNet18"]
    assert rows[6][1] == "32 (ran 4)" and rows[6][3] == "5.00"
    assert "[DEMO]" in report.render(res) and report.DEMO_BANNER in report.render(res)


def test_wsol2020_metrics(tmp_path):
    hold = {"threshold": 0.35, "num_images": 40, "summary": summary(70.0, 44.0, 50.0)}
    write_eval(tmp_path / "r18-gr-b256", 60.0, 35.0, 50.0, protocol="authors",
               protocols=protocols(60.0, 35.0, 50.0, holdout=hold),
               wsol2020={"maxboxacc_v2": 63.25, "holdout": {"maxboxacc_v2": 61.5}})
    write_eval(tmp_path / "r18-cam-b256", 50.0, 30.0, 50.0)
    res = collect(tmp_path, info={"metrics": "wsol2020", "holdout": 10})
    text = report.render(res)
    assert "MaxBoxAccV2" in text and "Table 1:" not in text and "held-out training images per class: 10" in text
    line = next(l for l in text.splitlines() if l.startswith("ResNet18  GR "))
    assert line.split()[-4:] == ["63.25", "61.50", "44.00", "0.35"]
    assert not any(l.startswith("ResNet18  CAM ") for l in text.splitlines())   # no 2020 metrics: no row
    res["info"]["metrics"] = "all"
    both = report.render(res)
    assert "Table 1:" in both and "MaxBoxAccV2" in both
    res["info"]["metrics"] = "paper"
    assert "MaxBoxAccV2" not in report.render(res)


def test_stale_and_broken_eval_json_are_missing(tmp_path):
    write_eval(tmp_path / "r18-cam-b256", 50.0, 25.0, 40.0)
    os.utime(tmp_path / "r18-cam-b256" / "done.json", (2000, 2000))  # retrained after evaluation
    write_eval(tmp_path / "r18-gr-b256", 50.0, 25.0, 40.0)
    (tmp_path / "r18-gr-b256" / "eval.json").write_text(json.dumps({"summary": {"top1_loc": 1}, "settings": {
        "checkpoint": str(tmp_path / "r18-gr-b256" / "model-10"), "split": "val", "limit": None}}))
    write_eval(tmp_path / "r18-hns-b256", 50.0, float("nan"), 40.0)
    res = collect(tmp_path)
    assert "older than done.json" in res["runs"]["r18-cam-b256"]["message"]
    assert "unusable" in res["runs"]["r18-gr-b256"]["message"]
    assert "non-finite" in res["runs"]["r18-hns-b256"]["message"]
    assert all(c["mean"] is None for c in res["cells"])


def test_failed_run_is_reported_with_its_log(tmp_path):
    out = Outcome("failed", message="train.py exited with status 1", log="/x/r18-gr-b256/train.out")
    write_eval(tmp_path / "r18-gr-b256", 60.0, 35.5, 50.25)   # a previous eval.json: not this attempt's
    res = collect(tmp_path, outcomes={"r18-gr-b256": out})
    assert res["runs"]["r18-gr-b256"]["status"] == "failed"
    assert all(c["mean"] is None for c in res["cells"] if c["run"] == "r18-gr-b256")
    assert "FAILED: train.py exited with status 1; log /x/r18-gr-b256/train.out" in report.render(res)


def test_results_files(tmp_path):
    write_eval(tmp_path / "logs" / "r18-gr-b256", 60.0, 35.5, 50.25)
    res = collect(tmp_path / "logs", info={"train_args": ["--epochs", "2"]})
    paths = report.write(res, str(tmp_path / "results"))
    assert [os.path.basename(p) for p in paths] == ["table1.json", "table1.csv", "table1.md", "table1-claims.png"]
    saved = json.loads((tmp_path / "results" / "table1.json").read_text())
    assert saved["cells"] == res["cells"] and saved["info"]["train_args"] == ["--epochs", "2"]
    with open(tmp_path / "results" / "table1.csv") as f:
        rows = list(csv.DictReader(f))
    row = next(r for r in rows if r["run"] == "r18-gr-b256" and r["metric"] == "gt_known_loc")
    assert (row["value"], row["paper"], row["diff"], row["status"]) == ("60.0", "57.0", "3.0", "ok")
    row = next(r for r in rows if r["run"] == "r18-cam-b256" and r["metric"] == "top1_loc")
    assert (row["value"], row["paper"], row["diff"], row["status"]) == ("", "27.13", "", "missing")
    assert {r["metric"] for r in rows if r["run"] == "r18-gr-b256"} >= {"top5_loc", "top5_clas"}
    md = (tmp_path / "results" / "table1.md").read_text()
    assert "| ResNet18 | GT-known Loc | ours            |     — |" in md and "+3.00" in md


# ---- Figure 2 from each run's evaluate.py --vis panels --------------------------------------

def test_figure2_rows_are_images_columns_methods(tmp_path):
    runs = table_runs(tmp_path, depths=(18,))
    by = {r.name: r for r in runs}
    colours = {"r18-cam-b256": 10, "r18-gr-b256": 200}
    for name, value in colours.items():
        write_eval(by[name].logdir, 1, 1, 1)
        for i in (0, 7):
            fileio.write_png(os.path.join(by[name].figure_dir, f"{i:05d}_val_{i}.png"),
                             np.full((6, 9, 3), value + i, np.uint8))
        fileio.write_png(os.path.join(by[name].figure_dir, "grid.png"), np.zeros((3, 3, 3), np.uint8))
    res = collect(tmp_path, depths=(18,))
    [path] = report.figure2(res, str(tmp_path / "fig.png"))
    import cv2
    img = cv2.imread(path)
    body = img[report.LABEL_HEIGHT + 16:]          # under the header row (two grid paddings)
    pad = 8                                          # cam.vis.grid's default padding
    cells = [[body[pad + r * (6 + pad) + 2, pad + c * (9 + pad) + 2, 0] for c in range(2)] for r in range(2)]
    assert cells == [[10, 200], [17, 207]]           # rows: images 0 and 7; columns: CAM, GR
    assert report.figure2(collect(tmp_path / "none"), str(tmp_path / "x.png")) == []


# ---- run states and reuse ------------------------------------------------------------------

def make_run(tmp_path, data, name="r18-gr-b256", train_args=(), seeds=(0,), expectation=None):
    cfg = next(c for c in rs.table_configs(1, seeds=seeds) if c.name == name)
    return rs.make_runs([cfg], data=str(data), logroot=str(tmp_path / "logs"), train_args=list(train_args),
                        gpus_per_run=0, python="py", repo="/repo", expectation=expectation)[0]


def test_run_states(tmp_path):
    run = make_run(tmp_path, tmp_path)
    assert rs.run_state(run)[0] == rs.NEW
    write_eval(run.logdir, 1, 1, 1)
    assert rs.run_state(run)[0] == rs.EVALUATED
    os.rmdir(run.figure_dir)   # evaluated before the tables asked for Figure 2: evaluated again
    assert rs.run_state(run) == (rs.TRAINED, "evaluated without the figure panels (figure2/)")
    os.makedirs(run.figure_dir)
    os.utime(os.path.join(run.logdir, "done.json"), (5000, 5000))
    assert rs.run_state(run)[0] == rs.TRAINED      # eval.json older than done.json
    os.remove(os.path.join(run.logdir, "done.json"))
    assert rs.run_state(run)[0] == rs.RESUMABLE


def test_finished_run_is_never_reused_for_other_settings(tmp_path, table_data):
    expect = Expectation(table_data, 0)
    run = make_run(tmp_path, table_data, train_args=["--epochs", "2", "--threads", "1"], expectation=expect)
    assert run.expected.train.epochs == 2 and run.expected.train.seed == 0
    write_eval(run.logdir, 1, 1, 1, settings=run.expected)      # as train.py and evaluate.py leave it
    same = make_run(tmp_path, table_data, train_args=["--threads=1", "--epochs=2", "--workers", "3"],
                    expectation=expect)   # speed settings only
    assert rs.run_state(same)[0] == rs.EVALUATED
    for other in (["--epochs", "3"], ["--epochs", "2", "--lr", "0.05"], ["--epochs", "2", "--recipe", "sn-resnet"],
                  ["--epochs", "2", "--threads", "2"], ["--epochs", "2", "--threads", "1", "--nondeterministic"]):
        state, reason = rs.run_state(make_run(tmp_path, table_data, train_args=other, expectation=expect))
        assert state == rs.CONFLICT and "other settings" in reason
    seed1 = make_run(tmp_path, table_data, "r18-gr-b256-s1", ["--epochs", "2", "--threads", "1"], seeds=(1,),
                     expectation=expect)
    assert seed1.expected.train.seed == 1 and seed1.expected.differences(run.expected) == ["train.seed: 1 -> 0"]
    with pytest.raises(UserError, match="(?s)r18-gr-b256.*nothing was run"):
        rs.refuse_conflicts([run], {run.name: (rs.CONFLICT, "holds a run with other settings")})
    other_data = tmp_path / "other"
    import shutil
    shutil.copytree(table_data, other_data)
    ann = other_data / "val" / "val_annotations.txt"
    lines = ann.read_text().splitlines()
    first = lines[0].split("\t")
    lines[0] = "\t".join(first[:2] + [str(int(first[2]) + 1)] + first[3:])   # one box moved by a pixel
    ann.write_text("\n".join(lines) + "\n")
    state, reason = rs.run_state(make_run(tmp_path, other_data, train_args=["--epochs", "2"],
                                          expectation=Expectation(str(other_data), 0)))
    assert state == rs.CONFLICT and "dataset.sha1" in reason


def test_commands(tmp_path):
    run = make_run(tmp_path, tmp_path, "r18-gr-b256-s1", train_args=["--epochs", "2"], seeds=(1,))
    logdir = str(tmp_path / "logs" / "r18-gr-b256-s1")
    assert run.train_cmd == ["py", "/repo/train.py", "--data", str(tmp_path), "--depth", "18", "--aug", "gr",
                             "--batch", "256", "--seed", "1", "--logdir", logdir, "--epochs", "2"]
    assert run.eval_cmd[:8] == ["py", "/repo/evaluate.py", "--load", logdir, "--data", str(tmp_path),
                                "--json", os.path.join(logdir, "eval.json")]
    assert run.eval_cmd[8:10] == ["--vis", run.figure_dir]
    gpu_run = rs.make_runs(rs.table_configs(1)[:1], data="d", logroot="l", gpus_per_run=2)[0]
    assert gpu_run.train_cmd[-2:] == ["--gpus", "2"]
    lines = rs.describe(run, rs.NEW, ex.env_prefix(["2", "3"]))
    assert lines[0].startswith("CUDA_VISIBLE_DEVICES=2,3 py /repo/train.py") and len(lines) == 2
    assert len(rs.describe(run, rs.TRAINED, "")) == 1 and rs.describe(run, rs.EVALUATED, "") == []


@pytest.mark.parametrize("flag", ["--depth", "--dep", "--bat", "--d", "--se=3", "--logd", "--gpu"])
def test_reserved_flags_and_their_abbreviations_are_refused(flag):
    with pytest.raises(UserError, match="set by the table script"):
        rs.check_passthrough(["--epochs", "2", flag, "34"])
    rs.check_passthrough(["--data-format", "NCHW", "--lr", "0.1", "--width-mult", "0.5"])


# ---- GPUs ----------------------------------------------------------------------------------

def test_gpu_slots():
    assert ex.make_slots(["0", "1", "2", "3"], 2) == [["0", "1"], ["2", "3"]]
    assert ex.make_slots(["0", "1", "2"], 2) == [["0", "1"]]   # the odd GPU stays idle
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


# ---- the scheduler, with stand-in commands instead of train.py / evaluate.py --------------

def fake_run(tmp_path, name, train_code, eval_code="pass"):
    """A Run whose 'training' and 'evaluation' are short python -c programs run in its logdir."""
    logdir = str(tmp_path / name)
    ev = (f"import json,os; os.makedirs(os.path.join({logdir!r}, {rs.FIGURE_DIR!r}), exist_ok=True); "
          "json.dump({'summary': {'gt_known_loc': 1, 'top1_loc': 2, 'top1_clas': 3}, 'settings': "
          f"{{'checkpoint': os.path.join({logdir!r}, 'model-1'), 'split': 'val', 'limit': None}}}},"
          f" open(os.path.join({logdir!r}, 'eval.json'), 'w')); " + eval_code)
    tr = (f"import json,os; print('training {name}', os.environ['CUDA_VISIBLE_DEVICES']); " + train_code
          + f"; json.dump({{}}, open(os.path.join({logdir!r}, 'done.json'), 'w'))")
    return rs.Run(rs.Config(18, name, 1), logdir, [sys.executable, "-c", tr], [sys.executable, "-c", ev])


def test_executor_failure_skip_and_gpus(tmp_path):
    ok = fake_run(tmp_path, "ok", "pass")
    bad = fake_run(tmp_path, "bad", "import sys; print('boom'); sys.exit(3)")
    done = fake_run(tmp_path, "done", "raise SystemExit('must not train')")
    write_eval(done.logdir, 1, 1, 1)
    evalonly = fake_run(tmp_path, "evalonly", "raise SystemExit('must not train')")
    write_eval(evalonly.logdir, 1, 1, 1)
    os.remove(evalonly.eval_json)
    msgs = []
    outcomes = Executor([["0", "1"], ["2", "3"]], log=msgs.append).run_all([ok, bad, done, evalonly])
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
    run = rs.make_runs(rs.select(rs.table_configs(1), "r18-cam"), data=table_data, logroot=str(logs),
                       expectation=Expectation(table_data, 0))[0]
    write_eval(run.logdir, 50.0, 25.0, 40.0, settings=run.expected)   # finished: this script only skips it
    argv = ["--table", "1", "--data", table_data, "--logroot", str(logs), "--results", str(tmp_path / "res"),
            "--gpus", "none", "--only", "r18-cam"]
    holder = fileio.hold_lock(str(logs / LOCK), "another table script")   # as a script running there holds it
    try:
        with pytest.raises(UserError, match=f"--logroot {logs}: in use by another process"):
            cli.main(argv)
        assert not os.path.exists(tmp_path / "res") and cli.main(argv + ["--dry-run"]) == 0
    finally:
        holder.close()
    assert cli.main(argv) == 0 and os.path.exists(tmp_path / "res" / "table1.json")


# ---- command line: refusals that write nothing, pass-through, dry run ----------------------

def test_usage_without_data(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--table", "1"])
    assert e.value.code == 2 and "usage:" in capsys.readouterr().err


def test_unknown_option_is_refused_unless_after_dashdash(tmp_path, table_data, capsys):
    base = ["--table", "1", "--data", table_data, "--logroot", str(tmp_path / "l"), "--gpus", "none", "--dry-run"]
    with pytest.raises(SystemExit) as e:
        cli.main(base + ["--onyl", "r18-cam"])
    assert e.value.code == 2 and "--onyl" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(base + ["--epochs", "2"])      # a train.py option, but before --
    args, extra = cli.parse_args(["--table", "1", "--data", table_data, "--only", "r18", "--", "--epochs", "2",
                                  "--only", "x"])
    assert args.only == "r18" and extra == ["--epochs", "2", "--only", "x"]


@pytest.mark.parametrize("passed", [["--dep", "34", "--bat", "32"], ["--depth=34"], ["--se", "4"]])
def test_abbreviated_reserved_flag_after_dashdash_is_refused(tmp_path, table_data, passed):
    with pytest.raises(UserError, match="set by the table script"):
        cli.main(["--table", "1", "--data", table_data, "--logroot", str(tmp_path / "l"), "--gpus", "none",
                  "--results", str(tmp_path / "r"), "--", *passed])
    assert not os.path.exists(tmp_path / "l") and not os.path.exists(tmp_path / "r")


@pytest.mark.parametrize("which", ["--results", "--logroot"])
def test_output_folder_that_is_a_file_is_refused_before_training(tmp_path, table_data, which, capsys):
    (tmp_path / "file").write_text("x")
    other = "--logroot" if which == "--results" else "--results"
    with pytest.raises(SystemExit):   # by the parser (argtypes.writable_dir)
        cli.main(["--table", "1", "--data", table_data, which, str(tmp_path / "file"), other, str(tmp_path / "o"),
                  "--gpus", "none", "--only", "r18-cam", "--dry-run"])   # refused even before a dry run
    assert re.search(f"argument {which}: .*is a file", capsys.readouterr().err)
    assert sorted(os.listdir(tmp_path)) == ["file"]


def test_refused_invocation_writes_nothing(tmp_path, table_data):
    logs, res = tmp_path / "logs", tmp_path / "res"
    run = rs.make_runs(rs.select(rs.table_configs(1), "r18-cam"), data=table_data, logroot=str(logs),
                       train_args=["--epochs", "2"], expectation=Expectation(table_data, 0))[0]
    write_eval(run.logdir, 50.0, 25.0, 40.0, settings=run.expected)
    assert cli.main(["--table", "1", "--report-only", "--logroot", str(logs), "--results", str(res)]) == 0
    before = {p: (res / p).read_bytes() for p in os.listdir(res)}
    for other in (["--", "--epochs", "3"], ["--", "--epochs", "2", "--no-such-flag"]):
        with pytest.raises(UserError, match="nothing was run"):   # other settings than the finished run's
            cli.main(["--table", "1", "--data", table_data, "--logroot", str(logs), "--results", str(res),
                      "--gpus", "none", "--only", "r18-cam", *other])
    assert {p: (res / p).read_bytes() for p in os.listdir(res)} == before
    assert sorted(os.listdir(logs)) == ["r18-cam-b256"]   # nothing else was started
    assert not os.path.exists(logs / "r18-cam-b256" / "train.out")


@pytest.mark.parametrize("bad", [["--parallel", "0"], ["--gpus-per-run", "0"], ["--holdout", "-1"],
                                 ["--seeds", "0"], ["--recipe", "sn-resnt"], ["--metrics", "wsol"]])
def test_bad_values_are_refused_before_anything(tmp_path, bad, capsys):
    with pytest.raises((SystemExit, UserError)) as e:
        cli.main(["--table", "1", "--demo", "--dry-run", *bad, "--gpus", "none", "--logroot", str(tmp_path / "logs"),
                  "--results", str(tmp_path / "res")])
    assert bad[0] in (str(e.value) if isinstance(e.value, UserError) else capsys.readouterr().err)
    assert os.listdir(tmp_path) == []


def test_not_tiny_imagenet_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["--table", "1", "--data", str(tmp_path / "nope"), "--dry-run"])
    assert "argument --data: " in capsys.readouterr().err
    (tmp_path / "wnids.txt").write_text("n0\n")
    with pytest.raises(UserError, match="train.n0: no such directory"):
        cli.main(["--table", "1", "--data", str(tmp_path), "--logroot", str(tmp_path / "l"), "--dry-run"])
    assert sorted(os.listdir(tmp_path)) == ["wnids.txt"]


def test_dry_run(tmp_path, table_data, capsys):
    done = rs.make_runs(rs.select(rs.table_configs(1), "r18-cam"), data=table_data,
                        logroot=str(tmp_path), train_args=["--epochs", "2", "--recipe", "sn-resnet"],
                        gpus_per_run=2, expectation=Expectation(table_data, 2))[0]
    assert done.expected.train.batch_per_tower == 128    # batch 256 over the run's 2 GPUs, as train.py splits it
    write_eval(done.logdir, 1, 1, 1, settings=done.expected)
    rc = cli.main(["--table", "1", "--data", table_data, "--logroot", str(tmp_path), "--gpus", "0,1,2,3",
                   "--gpus-per-run", "2", "--only", "r18-cam,r18-gr", "--dry-run", "--seeds", "2",
                   "--recipe", "sn-resnet", "--", "--epochs", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "4 run(s)" in out and "1 finished" in out and "2 at a time on GPU 0,1, GPU 2,3" in out
    assert "# r18-cam-b256: evaluated" in out and "# r18-gr-b256-s1: new" in out
    assert "--seed 1 --logdir" in out and "--gpus 2 --recipe sn-resnet --epochs 2" in out
    assert "--holdout" not in out and not os.path.exists(tmp_path / "r18-gr-b256")


def test_dry_run_holdout_runs_are_other_cells(tmp_path, table_data, capsys):
    write_eval(tmp_path / "r18-cam-b32", 1, 1, 1)   # trained without holdout: another cell, not a conflict
    rc = cli.main(["--table", "2", "--data", table_data, "--logroot", str(tmp_path), "--gpus", "none",
                   "--only", "r18-cam-b32", "--dry-run", "--seeds", "2", "--holdout", "5"])
    out = capsys.readouterr().out
    assert rc == 0 and "2 run(s)" in out and "0 finished" in out
    assert "# r18-cam-b32-h5: new" in out and "# r18-cam-b32-h5-s1: new" in out
    assert "--seed 1 --logdir" in out and "--holdout 5" in out and "--threshold-from-holdout" in out
    with pytest.raises(UserError, match="--batch 256: more than the 236 training images"):
        cli.main(["--table", "1", "--data", table_data, "--logroot", str(tmp_path), "--gpus", "none",
                  "--only", "r18-cam", "--dry-run", "--holdout", "5"])   # refused before anything runs


def test_demo_dry_run(tmp_path, capsys):
    rc = cli.main(["--table", "2", "--demo", "--logroot", str(tmp_path / "logs"), "--gpus", "none",
                   "--parallel", "2", "--only", "r18-gr", "--dry-run"])
    out = capsys.readouterr().out
    seeds = cli.DEMO_SEEDS
    assert rc == 0 and report.DEMO_BANNER in out and "2 at a time on CPU, CPU" in out
    assert f"{3 * seeds} run(s)" in out and "# r18-gr-b4: new" in out and "# r18-gr-b16-s1: new" in out
    assert "--width-mult" in out and "--threads" in out   # demo's net, cores shared by 2 runs
    assert not os.path.exists(tmp_path / "logs")


def test_demo_depths_and_seeds_from_demo_module(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli, "DEMO_DEPTHS", (18,))
    monkeypatch.setattr(cli, "DEMO_SEEDS", 3)
    rc = cli.main(["--table", "1", "--demo", "--logroot", str(tmp_path / "logs"), "--gpus", "none", "--dry-run"])
    out = capsys.readouterr().out
    assert rc == 0 and "15 run(s)" in out and "# r18-gr-b32-s2: new" in out and "# r34" not in out
    rc = cli.main(["--table", "1", "--demo", "--report-only", "--logroot", str(tmp_path / "logs"),
                   "--results", str(tmp_path / "res"), "--seeds", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "ResNet34" not in out.split("seeds:")[0] and "not run here: ResNet34" in out


def test_report_only(tmp_path, capsys):
    write_eval(tmp_path / "logs" / "r34-gr-b256", 58.0, 36.5, 54.0)
    rc = cli.main(["--table", "1", "--report-only", "--logroot", str(tmp_path / "logs"),
                   "--results", str(tmp_path / "res")])
    out = capsys.readouterr().out
    assert rc == 0 and "36.50" in out and "+0.50" in out
    assert json.loads((tmp_path / "res" / "table1.json").read_text())["runs"]["r34-gr-b256"]["status"] == "ok"


# ---- end to end: run_table1.sh trains and evaluates two runs on generated data --------------

@pytest.mark.slow
def test_run_table1_end_to_end(tmp_path, table_data):
    data = table_data
    logs, res = tmp_path / "logs", tmp_path / "res"
    cmd = [os.path.join(REPO, "run_table1.sh"), "--data", str(data), "--logroot", str(logs),
           "--results", str(res), "--gpus", "none", "--only", "r18-cam,r18-gr",
           "--", "--epochs", "1", "--lr-step-epochs", "1", "--width-mult", "0.0625"]
    env = dict(os.environ, PYTHON=sys.executable)
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    for name in ("r18-cam-b256", "r18-gr-b256"):
        assert os.path.exists(logs / name / "done.json") and os.path.exists(logs / name / "train.out")
    summary = json.loads((logs / "r18-gr-b256" / "eval.json").read_text())["summary"]
    saved = json.loads((res / "table1.json").read_text())
    cell = next(c for c in saved["cells"] if c["run"] == "r18-gr-b256" and c["metric"] == "top1_clas")
    assert cell["mean"] == round(summary["top1_clas"], 2) and cell["paper"] == 52.23
    assert saved["runs"]["r34-cam-b256"]["status"] == "missing"
    assert os.path.exists(res / "table1.csv") and os.path.exists(res / "table1.md")
    assert os.path.exists(res / "table1-figure2.png") and "table1-figure2.png" in p.stdout
    assert "evaluation protocol: authors" in p.stdout and "protocol quirk" in p.stdout
    whole = [l for l in p.stdout.splitlines() if "whole image box" in l][-1].split()   # ResNet18's row
    assert whole[-5] != report.MISSING and whole[-3] != report.MISSING, p.stdout   # its CAM and GR columns
    assert "Table 1" in p.stdout and "ResNet18" in p.stdout and f"{summary['top1_clas']:.2f}" in p.stdout

    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "2 finished, 0 to evaluate, 0 to train" in again.stdout
    assert again.stdout.count("skip     r18-") == 2 and "train    r18" not in again.stdout
