"""The claims' verdicts from eval.json files with hand-written per-image hits, and where they are printed."""

import json
import os

import cv2
import numpy as np

from reproduce import paper, report, runs as rs
from runrecord import EvalDoc
from tests.tables_fixtures import table_runs, write_eval


def records(gt_hits, clas_hits=None):
    """eval.json records of images val_0.. : IoU 0.6 (a hit under every protocol) or 0.1, top-1 right or wrong."""
    clas_hits = gt_hits if clas_hits is None else clas_hits
    return [
        {
            "file": f"val_{i}.JPEG",
            "label": 2,
            "top5": [2 if c else 0, 1],
            "gt_box": [0, 0, 9, 9],
            "pred_box": [0, 0, 9, 9],
            "iou": 0.6 if g else 0.1,
        }
        for i, (g, c) in enumerate(zip(gt_hits, clas_hits))
    ]


def table1(tmp_path, hits, seeds=(0,), demo=False):
    """A collected ResNet-18 Table 1 whose run of (method, seed) has the records of ``hits[method][seed]``
    (every other method: no hit)."""
    runs = table_runs(tmp_path, seeds=seeds, depths=(18,))
    for r in runs:
        h = hits.get(r.config.aug, {}).get(r.config.seed, [0] * 100)
        pct = 100.0 * np.mean(h)
        write_eval(r.logdir, pct, pct, pct, protocol="paper", records=records(h))
    return rs.collect(1, runs, depths=(18,), demo=demo)


def find(recs, claim, metric="gt_known_loc"):
    return next(r for r in recs if r["claim"] == claim and r["metric"] == metric)


def test_supported_contradicted_inconclusive_by_hand(tmp_path):
    # GR hits images 0-59 of 100, CAM images 0-49 and HnS as CAM, one seed each; HnS after GR = GR.
    gr, cam = [1] * 60 + [0] * 40, [1] * 50 + [0] * 50
    res = table1(
        tmp_path, {"gr": {0: gr}, "cam": {0: cam}, "hns": {0: cam}, "hns_after_gr": {0: gr}}
    )
    recs = res["claims"]
    # GR - CAM: +10 points; paired, a resample's difference is the share of its draws among images
    # 50-59, 0 only with probability 0.9 ** 100 < 1e-4: the interval is above 0 (unpaired it covers 0).
    r = find(recs, "t1-gr>cam")
    assert r["difference"] == 10.0 and r["interval"][0] > 0 and r["verdict"] == "supported"
    assert r["paper_difference"] == round(
        paper.TABLE1[(18, "gr")]["gt_known_loc"] - paper.TABLE1[(18, "cam")]["gt_known_loc"], 2
    )
    assert (
        r["cells"] == ["r18-gr-b256", "r18-cam-b256"]
        and r["images"] == 100
        and r["protocol"] == "paper"
    )
    # "GR after HnS is below GR": it hits nothing, GR 60%: -60 points, the claim's side.
    assert find(recs, "t1-gr_after_hns<gr")["verdict"] == "supported"
    # "HnS beats CAM": the same hits: 0 in every resample, an interval [0, 0] covers 0.
    r = find(recs, "t1-hns>cam")
    assert r["difference"] == 0.0 and r["interval"] == [0.0, 0.0] and r["verdict"] == "inconclusive"
    # "GR beats HnS" (HnS = CAM): supported; "HnS after GR is below GR", the same hits: inconclusive.
    assert find(recs, "t1-gr>hns", "top1_clas")["verdict"] == "supported"
    assert find(recs, "t1-hns_after_gr<gr")["verdict"] == "inconclusive"
    # an interval below 0: against "A > B", for "A < B"
    assert (
        paper.verdict(-12.0, -3.0, 1) == "contradicted"
        and paper.verdict(-12.0, -3.0, -1) == "supported"
    )
    assert paper.verdict(-1.0, 2.0, 1) == "inconclusive"


def test_contradicted_from_records(tmp_path):
    # HnS after GR hits 80 of 100 images, GR 20 of them: "HnS after GR is below GR" is contradicted.
    res = table1(
        tmp_path, {"gr": {0: [1] * 20 + [0] * 80}, "hns_after_gr": {0: [1] * 80 + [0] * 20}}
    )
    r = find(res["claims"], "t1-hns_after_gr<gr", "top1_loc")
    assert r["difference"] == 60.0 and r["interval"][0] > 0 and r["verdict"] == "contradicted"


def test_seed_spread_widens_the_interval(tmp_path):
    # GR: seed 0 hits all 100 images, seed 1 none; CAM none.  Images alone: +50 in every resample.
    # Seeds resampled: both draws seed 1 with probability 1/4 > 2.5%, a difference of 0: inconclusive.
    res = table1(tmp_path, {"gr": {0: [1] * 100, 1: [0] * 100}}, seeds=(0, 1))
    r = find(res["claims"], "t1-gr>cam")
    assert (
        r["difference"] == 50.0
        and r["seeds"] == [2, 2]
        and r["resampled"].startswith("seeds (paired")
    )
    assert r["interval"][0] == 0.0 and r["verdict"] == "inconclusive"
    assert "ONE SEED" not in report.render(res)


def test_paired_seeds_remove_what_a_seed_shares_across_methods(tmp_path):
    # issue 24: seed s of GR and of CAM start from the same weights and see the images in the same order.
    # Here seed 0 is a good draw for both (GR 80, CAM 60 hits of 100) and seed 1 a bad one (GR 40, CAM
    # 20): GR - CAM is +20 with either seed.  Drawn apart, GR's seed 1 against CAM's seed 0 gives -20.
    gr, cam = (
        {0: [1] * 80 + [0] * 20, 1: [1] * 40 + [0] * 60},
        {0: [1] * 60 + [0] * 40, 1: [1] * 20 + [0] * 80},
    )
    a, b = (np.array([v[s] for s in (0, 1)], dtype=np.float64) for v in (gr, cam))
    apart, paired = paper.interval(a, b), paper.interval(a, b, paired_seeds=True)
    assert apart[0] < 0 < 10 < paired[0] and paired[1] - paired[0] < (apart[1] - apart[0]) / 2
    r = find(table1(tmp_path, {"gr": gr, "cam": cam}, seeds=(0, 1))["claims"], "t1-gr>cam")
    assert r["interval"] == [round(v, 2) for v in paired] and r["verdict"] == "supported"


def test_one_seed_table_says_its_interval_ignores_seeds(tmp_path):
    res = table1(tmp_path, {"gr": {0: [1] * 70 + [0] * 30}, "cam": {0: [1] * 30 + [0] * 70}})
    text = report.render(res)
    assert (
        "ONE SEED in a cell: its intervals cover the sampling of the validation images only" in text
    )
    assert "supported (1 seed, images only)" in text
    r = find(res["claims"], "t1-gr>cam")
    assert r["resampled"].startswith("images only")


def test_rendering_and_writing_only_show_the_claims_collect_tested(tmp_path, monkeypatch):
    res = table1(tmp_path / "logs", {"gr": {0: [1] * 70 + [0] * 30}})
    assert find(res["claims"], "t1-gr>cam")["verdict"] == "supported"

    def fail(*args):
        raise AssertionError("the claims were tested again")

    monkeypatch.setattr(paper, "check_claims", fail)
    monkeypatch.setattr(paper, "check_instance", fail)
    assert "supported (1 seed, images only)" in report.render(res) + report.render(
        res, markdown=True
    )
    report.write(res, str(tmp_path / "out"))
    assert rs.PER_IMAGE not in json.loads((tmp_path / "out" / "table1.json").read_text())


def test_a_run_without_records_leaves_its_claims_not_computed_and_says_why(tmp_path):
    runs = table_runs(tmp_path, depths=(18,))
    for r in runs:
        write_eval(
            r.logdir,
            50.0,
            30.0,
            60.0,
            protocol="paper",
            records=records([1, 0]) if r.config.aug != "cam" else [{"file": "val_0.JPEG"}],
        )
    res = rs.collect(1, runs, depths=(18,))
    assert res["runs"]["r18-cam-b256"]["status"] == "ok"  # its numbers still count in the table
    r = find(res["claims"], "t1-gr>cam")
    assert r["verdict"] == "not computed" and r["reason"].startswith("records unusable: ")
    assert "r18-cam-b256" in r["reason"] and "malformed records (KeyError" in r["reason"]
    assert find(res["claims"], "t1-gr>hns")["verdict"] == "inconclusive"  # the others are tested


def test_written_json_md_png_and_demo_rows(tmp_path):
    res = table1(tmp_path / "logs", {"gr": {0: [1] * 70 + [0] * 30}}, demo=True)
    paths, _ = report.write(res, str(tmp_path / "out"))
    png = str(tmp_path / "out" / "table1-claims.png")
    assert png in paths
    img = cv2.imread(png)
    assert img is not None and img.shape[0] > 200 and img.shape[1] == 1000
    with open(tmp_path / "out" / "table1.json") as f:
        saved = json.load(f)["claims"]
    r = find(saved, "t1-gr>cam")
    assert r["verdict"] == "supported" and r["sentence"].startswith("both HnS and GR")
    assert {
        "claim",
        "sentence",
        "cells",
        "difference",
        "interval",
        "verdict",
        "seeds",
        "images",
        "protocol",
        "paper_difference",
    } <= set(r)
    with open(tmp_path / "out" / "table1.md") as f:
        md = f.read()
    assert "## Claims of the paper" in md and "table1-claims.png" in md
    # the demo table: ours only; the paper's differences are in the claims block
    headers, rows = report.grid(res)
    assert not any(row[2] in ("paper", "diff") for row in rows) and any(
        row[2] == "ours" for row in rows
    )
    # Table 2's claims need cells Table 1 does not have: none; a missing cell is "not computed"
    assert all(r["claim"].startswith("t1") for r in saved)
    os.remove(res["runs"]["r18-cam-b256"]["eval_json"])
    res = rs.collect(1, table_runs(tmp_path / "logs", depths=(18,)), depths=(18,))
    assert find(res["claims"], "t1-gr>cam")["verdict"] == "not computed"


def test_hits_follow_the_protocol_rule_and_top1(tmp_path):
    # IoU exactly 0.5: a hit under wsol (>=), not under paper (>); Top-1 Loc needs the top-1 class too.
    recs = records([1, 1, 0], clas_hits=[1, 0, 1])
    recs[0]["iou"] = 0.5
    for protocol, gt in (("paper", [0, 1, 0]), ("wsol", [1, 1, 0])):
        path = tmp_path / f"{protocol}.json"
        path.write_text(
            json.dumps({"protocol": protocol, "records": recs, "summary": {"top1_loc": 1.0}})
        )
        doc, _ = EvalDoc.read(str(path))
        got, files, hits, ious = doc.per_image()
        assert got == protocol and files == ["val_0.JPEG", "val_1.JPEG", "val_2.JPEG"]
        assert ious.tolist() == [0.5, 0.6, 0.1]
        assert hits["gt_known_loc"].tolist() == gt and hits["top1_clas"].tolist() == [1, 0, 1]
        assert hits["top1_loc"].tolist() == [g & c for g, c in zip(gt, [1, 0, 1])]


def test_iou_scatter_of_each_compared_pair(tmp_path):
    # issue 24 item 5: per image, A's IoU against B's (mean over seeds), as PNG and PDF
    from reproduce import figures

    res = table1(
        tmp_path,
        {"gr": {0: [1] * 60 + [0] * 40, 1: [1] * 40 + [0] * 60}, "cam": {0: [1] * 50 + [0] * 50}},
        seeds=(0, 1),
    )
    gr = figures._mean_ious(res, "r18-gr-b256")
    assert (
        len(gr) == 100
        and gr["val_0.JPEG"] == 0.6
        and gr["val_45.JPEG"] == 0.35
        and gr["val_99.JPEG"] == 0.1
    )
    png, pdf = figures.iou_scatter(res, str(tmp_path / "iou"))
    assert cv2.imread(png).shape[2] == 3 and open(pdf, "rb").read(5) == b"%PDF-"
    assert figures.iou_scatter({"claims": [], "runs": {}}, str(tmp_path / "none")) == []
