"""Tests of a table's assembly from hand-written eval.json files (seeds, baselines, protocols, the
2020 metrics) and of its outputs: the printed table, tableN.json/.csv/.md and Figure 2 from fake panels."""

import csv
import json
import os

import cv2
import numpy as np

import fileio
from cam import vis
from reproduce import figures, report
from reproduce.executor import Outcome
from tests.tables_fixtures import collect, protocols, summary, table_runs, write_eval


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
    assert len(rows) == 2 * (3 * 3 + 2)  # per depth: 3 metrics x (ours, paper, diff) + 2 baselines
    assert rows[0][:4] == ["ResNet34", "GT-known Loc", "ours", "50.00"]
    assert rows[1][:4] == ["", "", "paper", "53.46"] and rows[2][:4] == ["", "", "diff", "-3.46"]
    assert (
        rows[3][2] == "whole image box" and rows[3][3] == report.MISSING
    )  # old eval.json: no baselines
    r18_top1 = rows[11 + 5 : 11 + 8]  # ResNet18, Top-1 Loc: ours, paper, diff
    assert r18_top1[0][1] == "Top-1 Loc" and r18_top1[0][5] == "35.50"
    assert (
        r18_top1[1][5] == "34.43" and r18_top1[2][5] == "+1.07" and r18_top1[0][4] == report.MISSING
    )
    text = report.render(res)
    assert "DEMO" not in text and "— not run (no folder in " in text


def test_seeds_mean_std_and_every_seed_kept(tmp_path):
    write_eval(tmp_path / "r18-gr-b256", 60.0, 35.0, 50.0)
    write_eval(tmp_path / "r18-gr-b256-s1", 62.0, 36.0, 52.0)
    write_eval(tmp_path / "r18-cam-b256-s1", 30.0, 20.0, 50.0)  # seed 0 of this cell missing
    res = collect(tmp_path, seeds=[0, 1], depths=(18,))
    c = next(c for c in res["cells"] if c["run"] == "r18-gr-b256" and c["metric"] == "gt_known_loc")
    assert (c["mean"], c["std"], c["n"], c["seeds"]) == (61.0, 1.41, 2, {"0": 60.0, "1": 62.0})
    c = next(
        c for c in res["cells"] if c["run"] == "r18-cam-b256" and c["metric"] == "gt_known_loc"
    )
    assert (c["mean"], c["n"], c["seeds"]) == (30.0, 1, {"1": 30.0})
    headers, rows = report.grid(res)
    assert rows[0][:6] == [
        "ResNet18",
        "GT-known Loc",
        "ours",
        "30.00",
        report.MISSING,
        "61.00±1.41",
    ]
    assert len(rows) == 11  # ResNet34 absent
    text = report.render(res)
    assert "seeds: 0, 1; cells show mean±std" in text and "not run here: ResNet34" in text
    assert "r18-cam-b256:" not in text and "r18-cam-b256 " not in text.split("not run (")[0]
    paths, _ = report.write(res, str(tmp_path / "res"))
    with open(paths[1]) as f:
        rows = [
            r for r in csv.DictReader(f) if r["run"] == "r18-gr-b256" and r["metric"] == "top1_loc"
        ]
    assert [(r["seed"], r["folder"], r["value"], r["mean"]) for r in rows] == [
        ("0", "r18-gr-b256", "35.0", "35.5"),
        ("1", "r18-gr-b256-s1", "36.0", "35.5"),
    ]
    saved = json.loads(open(paths[0]).read())
    assert saved["runs"]["r18-gr-b256-s1"]["values"]["gt_known_loc"] == 62.0 and saved["seeds"] == [
        0,
        1,
    ]


def test_baselines_protocol_and_effects(tmp_path):
    for name, gt, whole in (("r34-gr-b256", 58.0, 40.0), ("r34-cam-b256", 50.0, 40.0)):
        write_eval(
            tmp_path / name,
            gt,
            30.0,
            50.0,
            protocol="authors",
            protocols=protocols(gt, 30.0, 50.0, whole=whole, fixed=44.5),
        )
    res = collect(tmp_path)
    headers, rows = report.grid(res)
    assert rows[3][2:5] == ["whole image box", "40.00", report.MISSING]
    assert rows[4][2:6] == ["best fixed box", "44.50", report.MISSING, "44.50"]
    text = report.render(res)
    assert "evaluation protocol: authors" in text
    effects = text.split("protocol quirk")[1]
    gr = next(line for line in effects.splitlines() if line.startswith("ResNet34  GR"))
    assert gr.split()[-4:] == ["1.00", "1.00", "2.00", "2.00"]  # authors - paper, paper - wsol


def test_table2_shape_reuse_and_baselines(tmp_path):
    write_eval(tmp_path / "r34-gr-b32", 58.0, 38.0, 55.0)
    write_eval(
        tmp_path / "r18-cam-b256",
        52.0,
        26.13,
        43.0,
        protocol="paper",
        protocols=protocols(52.0, 26.13, 43.0, whole=41.0),
    )  # a Table 1 run, reused
    res = collect(tmp_path, table=2)
    assert len(res["cells"]) == 18 and {c["metric"] for c in res["cells"]} == {"top1_loc"}
    headers, rows = report.grid(res)
    assert headers == [
        "Method",
        "Batch size",
        "ResNet34",
        "paper",
        "diff",
        "ResNet18",
        "paper",
        "diff",
    ]
    assert [r[:2] for r in rows[:4]] == [["CAM", "32"], ["", "128"], ["", "256"], ["HnS", "32"]]
    assert rows[2][5:] == ["26.13", "27.13", "-1.00"] and rows[6][2:5] == [
        "38.00",
        "37.84",
        "+0.16",
    ]
    assert (
        rows[9][0].startswith("whole image box")
        and rows[9][2] == report.MISSING
        and rows[9][5] == "41.00"
    )


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
    write_eval(
        tmp_path / "r18-gr-b256",
        60.0,
        35.0,
        50.0,
        protocol="authors",
        protocols=protocols(60.0, 35.0, 50.0, holdout=hold),
        wsol2020={"maxboxacc_v2": 63.25, "holdout": {"maxboxacc_v2": 61.5}},
    )
    write_eval(tmp_path / "r18-cam-b256", 50.0, 30.0, 50.0)
    res = collect(tmp_path, info={"metrics": "wsol2020", "holdout": 10})
    text = report.render(res)
    assert (
        "MaxBoxAccV2" in text
        and "Table 1:" not in text
        and "held-out training images per class: 10" in text
    )
    line = next(ln for ln in text.splitlines() if ln.startswith("ResNet18  GR "))
    assert line.split()[-4:] == ["63.25", "61.50", "44.00", "0.35"]
    assert not any(
        ln.startswith("ResNet18  CAM ") for ln in text.splitlines()
    )  # no 2020 metrics: no row
    res["info"]["metrics"] = "all"
    both = report.render(res)
    assert "Table 1:" in both and "MaxBoxAccV2" in both
    res["info"]["metrics"] = "paper"
    assert "MaxBoxAccV2" not in report.render(res)


def test_stale_and_broken_eval_json_are_missing(tmp_path):
    write_eval(tmp_path / "r18-cam-b256", 50.0, 25.0, 40.0)
    os.utime(tmp_path / "r18-cam-b256" / "done.json", (2000, 2000))  # retrained after evaluation
    write_eval(tmp_path / "r18-gr-b256", 50.0, 25.0, 40.0)
    (tmp_path / "r18-gr-b256" / "eval.json").write_text(
        json.dumps(
            {
                "summary": {"top1_loc": 1},
                "settings": {
                    "checkpoint": str(tmp_path / "r18-gr-b256" / "model-10"),
                    "split": "val",
                    "limit": None,
                },
            }
        )
    )
    write_eval(tmp_path / "r18-hns-b256", 50.0, float("nan"), 40.0)
    res = collect(tmp_path)
    assert "older than done.json" in res["runs"]["r18-cam-b256"]["message"]
    assert "unusable" in res["runs"]["r18-gr-b256"]["message"]
    assert "non-finite" in res["runs"]["r18-hns-b256"]["message"]
    assert all(c["mean"] is None for c in res["cells"])


def test_failed_run_is_reported_with_its_log(tmp_path):
    out = Outcome("failed", message="train.py exited with status 1", log="/x/r18-gr-b256/train.out")
    write_eval(
        tmp_path / "r18-gr-b256", 60.0, 35.5, 50.25
    )  # a previous eval.json: not this attempt's
    res = collect(tmp_path, outcomes={"r18-gr-b256": out})
    assert res["runs"]["r18-gr-b256"]["status"] == "failed"
    assert all(c["mean"] is None for c in res["cells"] if c["run"] == "r18-gr-b256")
    assert "FAILED: train.py exited with status 1; log /x/r18-gr-b256/train.out" in report.render(
        res
    )


def test_results_files(tmp_path):
    write_eval(tmp_path / "logs" / "r18-gr-b256", 60.0, 35.5, 50.25)
    res = collect(tmp_path / "logs", info={"train_args": ["--epochs", "2"]})
    paths, _ = report.write(res, str(tmp_path / "results"))
    assert [os.path.basename(p) for p in paths] == [
        "table1.json",
        "table1.csv",
        "table1.md",
        "table1-claims.png",
        "table1-claims.pdf",
    ]
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
            fileio.write_png(
                os.path.join(by[name].figure_dir, vis.panel_file(i, f"val/images/val_{i}.JPEG")),
                np.full((6, 9, 3), value + i, np.uint8),
            )
        fileio.write_png(
            os.path.join(by[name].figure_dir, "grid.png"), np.zeros((3, 3, 3), np.uint8)
        )
    res = collect(tmp_path, depths=(18,))
    path, pdf = figures.figure2(res, str(tmp_path / "fig.png"))
    assert open(pdf, "rb").read(5) == b"%PDF-"
    img = cv2.imread(path)
    body = img[figures.LABEL_HEIGHT + 16 :]  # under the header row (two grid paddings)
    pad = 8  # cam.vis.grid's default padding
    cells = [
        [body[pad + r * (6 + pad) + 2, pad + c * (9 + pad) + 2, 0] for c in range(2)]
        for r in range(2)
    ]
    assert cells == [[10, 200], [17, 207]]  # rows: images 0 and 7; columns: CAM, GR
    assert figures.figure2(collect(tmp_path / "none"), str(tmp_path / "x.png")) == []
