"""evaluate.py end to end on generated data, its output files, and its bad-input messages.

``run_checkpoint`` builds a narrow network in-process (width 0.125, random
weights) and saves it like a training run (checkpoint + settings.json), so
most tests do not depend on train.py; ``test_train_then_evaluate`` runs the
real pipeline, train.py then evaluate.py, as subprocesses.
"""
import json
import os
import re
import shutil
from dataclasses import asdict

import numpy as np
import pytest

import tf_env  # noqa: F401
import evaluate
from cam import METRICS, iou
from dataflow.synthetic import generate
from errors import run_main
from tests.conftest import SMALL, run_script
from runrecord import resolve_checkpoint

TABLE_ROW = re.compile(r"^\|\s*(GT-known Loc|Top-1 Loc|Top-1 Clas|Top-5 Loc|Top-5 Clas)\s*\|\s*([0-9.]+)\s*\|$")


def save_random_model(logdir, num_classes, image_shape, step=3, holdout=0, width_mult=0.125):
    """A ResNet-18 CAMModel with random weights, saved as ``logdir/model-STEP`` + a settings.json
    with the model and the training fields evaluate.py reads (``train.holdout``)."""
    import tensorflow as tf
    from tensorpack.tfutils.tower import TowerContext

    from models import CAMModel
    from runrecord import ModelSettings
    tf1 = tf.compat.v1
    model = CAMModel(ModelSettings(depth=18, num_classes=num_classes, image_shape=list(image_shape),
                                   width_mult=width_mult, mean_bgr=[100.0, 110.0, 120.0], std_bgr=[60.0, 60.0, 60.0]))
    with tf.Graph().as_default():
        tf1.set_random_seed(0)   # also needed once an in-process evaluate.py turned op determinism on
        inputs = [tf1.placeholder(s.dtype, s.shape, s.name) for s in model.get_input_signature()]
        with TowerContext("", is_training=False):
            model.build_graph(*inputs)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(sess, os.path.join(logdir, "model"), global_step=step)
    settings = {"model": asdict(model.settings), "train": {"aug": "cam", "batch": 8, "holdout": holdout}}
    with open(os.path.join(logdir, "settings.json"), "w") as f:
        json.dump(settings, f)
    return os.path.join(logdir, f"model-{step}")


@pytest.fixture(scope="module")
def run_checkpoint(tiny_data, tmp_path_factory):
    logdir = tmp_path_factory.mktemp("run")
    save_random_model(str(logdir), num_classes=4, image_shape=(32, 40))
    return str(logdir)


def evaluate_in_process(argv, capsys):
    """Run evaluate.py's main as the CLI would; returns (exit code, stdout, stderr)."""
    try:
        code = run_main(evaluate.main, argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def printed_summary(stdout):
    rows = dict(m.groups() for m in map(TABLE_ROW.match, stdout.splitlines()) if m)
    keys = dict(zip(("GT-known Loc", "Top-1 Loc", "Top-1 Clas", "Top-5 Loc", "Top-5 Clas"), METRICS))
    return {keys[title]: float(value) for title, value in rows.items()}


CLAMP_STRICT = {"authors": (False, True), "paper": (True, True), "wsol": (True, False)}
LAYOUT = {"summary", "protocol", "protocols", "wsol2020", "settings", "records", "timing"}


def summary_from_records(records, protocol):
    """Recompute the five metrics from the JSON records alone (independently of cam.metrics)."""
    strict = CLAMP_STRICT[protocol][1]
    hits = dict.fromkeys(METRICS, 0)
    for r in records:
        loc = r["iou"] > 0.5 if strict else r["iou"] >= 0.5
        top1, top5 = r["top5"][0] == r["label"], r["label"] in r["top5"][:5]
        hits["gt_known_loc"] += loc
        hits["top1_loc"] += loc and top1
        hits["top1_clas"] += top1
        hits["top5_loc"] += loc and top5
        hits["top5_clas"] += top5
    return {m: 100.0 * h / len(records) for m, h in hits.items()}


def check_report(stdout, report):
    """Layout; the summary is the chosen protocol's, equals the one recomputed from the records, and is printed."""
    assert set(report) == LAYOUT
    protocol = report["protocol"]
    assert set(report["protocols"]) == set(CLAMP_STRICT)
    assert report["summary"] == report["protocols"][protocol]["summary"]
    records = report["records"]
    assert report["summary"] == pytest.approx(summary_from_records(records, protocol))
    assert printed_summary(stdout) == {m: round(v, 2) for m, v in report["summary"].items()}
    clamp = CLAMP_STRICT[protocol][0]
    for r in records:   # each IoU is the one of its two boxes under the protocol's IoU
        assert r["iou"] == pytest.approx(float(iou(r["gt_box"], r["pred_box"], clamp)))
    for entry in report["protocols"].values():
        assert set(entry) == {"summary", "baselines", "holdout", "sweep"}
        assert {"whole_image", "best_fixed_box"} <= set(entry["baselines"])
    v2 = report["wsol2020"]
    assert set(v2) == {"maxboxacc_v2", "top1_loc_v2", "by_iou", "holdout"} and set(v2["by_iou"]) == {"30", "50", "70"}
    assert v2["maxboxacc_v2"] == pytest.approx(np.mean([v2["by_iou"][k]["box_acc"] for k in ("30", "50", "70")]))


def test_json_cams_vis_and_sweep(run_checkpoint, tiny_data, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, err = evaluate_in_process(
        ["--load", os.path.join(run_checkpoint, "checkpoint"), "--data", tiny_data, "--batch", "5",
         "--json", str(out / "eval.json"), "--save-cams", str(out / "cams.npz"),
         "--vis", str(out / "vis"), "--vis-count", "3", "--threshold-sweep", str(out / "sweep"),
         "--sweep-step", "0.05"], capsys)
    assert code == 0, err
    report = json.loads((out / "eval.json").read_text())
    assert len(report["records"]) == 16 and set(report["records"][0]) == {
        "file", "label", "top5", "gt_box", "pred_box", "iou"}
    assert report["protocol"] == "authors"
    check_report(stdout, report)
    s = report["settings"]
    assert (s["depth"], s["cam_threshold"], s["holdout_per_class"]) == (18, 0.2, 0)
    assert s["checkpoint"].endswith("model-3")

    # the CAM-logit identity of a GAP + FC head: mean(raw CAM) + bias = logit of that class
    cams = np.load(out / "cams.npz")
    assert cams["cams"].shape == (16, 8, 10)                      # 32x40 input, total stride 4
    n = np.arange(16)
    np.testing.assert_allclose(cams["cams"].mean(axis=(1, 2)) + cams["fc_bias"][cams["labels"]],
                               cams["logits"][n, cams["labels"]], rtol=1e-4, atol=1e-4)
    assert list(cams["files"]) == [r["file"] for r in report["records"]]
    assert [r["top5"][0] for r in report["records"]] == cams["logits"].argmax(1).tolist()

    assert len(list((out / "vis").glob("*.png"))) == 3 + 1       # one per image + the grid
    sweep = json.loads((out / "sweep.json").read_text())
    assert (out / "sweep.png").stat().st_size > 0
    for name, curves in sweep["protocols"].items():
        assert len(curves["thresholds"]) == 21 and curves["best"]["max_box_acc"] == max(curves["gt_known_loc"])
        # the sweep at 0.2 is the summary: both come from the one evaluator
        assert curves["gt_known_loc"][4] == pytest.approx(report["protocols"][name]["summary"]["gt_known_loc"])
        assert report["protocols"][name]["sweep"] == curves
    assert not list(out.glob(".*.tmp"))                           # atomic writes leave no leftovers


def test_protocol_choice_is_the_same_pass(run_checkpoint, tiny_data, tmp_path, capsys):
    reports = {}
    for protocol in ("authors", "paper", "wsol"):
        path = tmp_path / f"{protocol}.json"
        code, stdout, err = evaluate_in_process(["--load", run_checkpoint, "--data", tiny_data, "--protocol",
                                                 protocol, "--json", str(path)], capsys)
        assert code == 0, err
        reports[protocol] = json.loads(path.read_text())
        check_report(stdout, reports[protocol])
    # every run computed every protocol: the blocks agree whichever protocol was chosen
    assert reports["authors"]["protocols"] == reports["paper"]["protocols"] == reports["wsol"]["protocols"]
    assert reports["authors"]["wsol2020"] == reports["wsol"]["wsol2020"]
    records = reports["paper"]["records"]                        # the paper's tight boxes stay in the image
    assert all(r["pred_box"][2] < 40 and r["pred_box"][3] < 32 for r in records)


def test_threshold_from_holdout(tiny_data, tmp_path, capsys):
    logdir = tmp_path / "held"
    logdir.mkdir()
    save_random_model(str(logdir), num_classes=4, image_shape=(32, 40), holdout=3)
    code, stdout, err = evaluate_in_process(
        ["--load", str(logdir), "--data", tiny_data, "--threshold-from-holdout", "--sweep-step", "0.1",
         "--limit", "6", "--json", str(tmp_path / "val.json")], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "val.json").read_text())
    check_report(stdout, report)
    assert report["settings"]["holdout_images"] == 12             # 3 per class x 4 classes
    for entry in report["protocols"].values():
        held = entry["holdout"]
        assert held["num_images"] == 12 and held["threshold"] in [round(0.1 * i, 1) for i in range(11)]
        assert set(held["summary"]) == set(METRICS)
    assert report["wsol2020"]["holdout"]["num_images"] == 12
    assert len(report["records"]) == 6
    for r in report["protocols"].values():                      # fit on the 12 - 3 = 9 per class trained on
        assert r["baselines"]["fixed_box_fit_on"].startswith("36 ")

    expect_error(["--load", tiny_run(tiny_data, tmp_path), "--data", tiny_data, "--threshold-from-holdout"],
                 capsys, "--threshold-from-holdout", "train.holdout")


def tiny_run(tiny_data, tmp_path):
    logdir = tmp_path / "noheld"
    logdir.mkdir(exist_ok=True)
    save_random_model(str(logdir), num_classes=4, image_shape=(32, 40), holdout=0)
    return str(logdir)


def test_cli_subprocess_prints_the_table(run_checkpoint, tiny_data, tmp_path):
    proc = run_script("evaluate.py", "--load", run_checkpoint, "--data", tiny_data, "--json", tmp_path / "e.json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    check_report(proc.stdout, json.loads((tmp_path / "e.json").read_text()))


def test_checkpoint_lookup(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("model-5.index", "model-5.data-00000-of-00001", "model-9.index"):
        (run / name).write_text("x")
    # a run moved from elsewhere: the state file names an absolute path that no longer exists
    (run / "checkpoint").write_text('model_checkpoint_path: "/old/place/model-9"\n'
                                    'all_model_checkpoint_paths: "/old/place/model-9"\n')
    assert resolve_checkpoint(str(run)) == str(run / "model-9")
    assert resolve_checkpoint(str(run / "checkpoint")) == str(run / "model-9")
    assert resolve_checkpoint(str(run / "model-5")) == str(run / "model-5")
    assert resolve_checkpoint(str(run / "model-5.index")) == str(run / "model-5")


def expect_error(argv, capsys, *fragments):
    code, out, err = evaluate_in_process(argv, capsys)
    assert code == 2, (out, err)
    assert "Traceback" not in err
    line = [x for x in err.splitlines() if x.startswith("error: ")]
    assert len(line) == 1, err
    for fragment in fragments:
        assert fragment in line[0], line[0]
    return line[0]


def test_missing_checkpoint(tiny_data, tmp_path, capsys):
    missing = str(tmp_path / "nowhere" / "checkpoint")
    expect_error(["--load", missing, "--data", tiny_data], capsys, missing)
    expect_error(["--load", str(tmp_path / "model-1"), "--data", tiny_data], capsys, "model-1")
    expect_error(["--load", str(tmp_path), "--data", tiny_data], capsys, str(tmp_path))


def test_wrong_number_of_classes(run_checkpoint, tmp_path, capsys):
    three = generate(str(tmp_path / "three"), classes=3, train_per_class=2, val_per_class=2,
                     seed=1, height=32, width=40)
    expect_error(["--load", run_checkpoint, "--data", three], capsys, "4 classes", "3 classes")


def test_data_without_boxes_and_empty_split(run_checkpoint, tiny_data, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns(".cache"))
    ann = data / "val" / "val_annotations.txt"
    lines = ann.read_text().splitlines()
    ann.write_text("\n".join("\t".join(x.split()[:2]) for x in lines) + "\n")   # file and wnid only
    expect_error(["--load", run_checkpoint, "--data", str(data)], capsys, "val_annotations.txt")
    ann.write_text("")
    shutil.rmtree(data / "val" / "images")
    (data / "val" / "images").mkdir()
    expect_error(["--load", run_checkpoint, "--data", str(data)], capsys, "no annotated images")


def test_outputs_checked_before_any_work(run_checkpoint, tiny_data, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for flag, path, why in (("--vis", str(blocker / "vis"), "not a writable folder"),
                            ("--json", str(tmp_path / "no" / "e.json"), "does not exist")):
        code, _, err = evaluate_in_process(["--load", run_checkpoint, "--data", tiny_data, flag, path], capsys)
        assert code == 2 and f"error: argument {flag}: {path}" in err and why in err and "Traceback" not in err
    # issue 8: one set of argparse types (argtypes.py) for every entry point: no nan, no 0 batch
    # (issue 9: a sweep step of 0 was a ZeroDivisionError traceback)
    for flag, value in (("--cam-threshold", "nan"), ("--cam-threshold", "1.5"), ("--batch", "0"),
                        ("--sweep-step", "0")):
        code, _, err = evaluate_in_process(["--load", run_checkpoint, "--data", tiny_data, flag, value], capsys)
        assert code == 2 and f"error: argument {flag}: expected" in err and "Traceback" not in err, err
    expect_error(["--load", run_checkpoint, "--data", tiny_data, "--sweep-step", "0.3"], capsys, "--sweep-step")


def test_abbreviated_and_removed_flags_are_refused(run_checkpoint, tiny_data, capsys):
    for flag in (["--prot", "paper"], ["--box-rule", "wsol"], ["--iou-strict"], ["--threshold-from-train"],
                 ["--holdout", "2"]):
        code, out, err = evaluate_in_process(["--load", run_checkpoint, "--data", tiny_data] + flag, capsys)
        assert code == 2 and "unrecognized arguments: " + flag[0] in err, (flag, err)


def test_checkpoint_without_settings(run_checkpoint, tiny_data, tmp_path, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(run_checkpoint, bare)
    (bare / "settings.json").unlink()
    expect_error(["--load", str(bare), "--data", tiny_data], capsys, "settings.json", "--depth")
    code, out, err = evaluate_in_process(["--load", str(bare), "--data", tiny_data, "--depth", "18",
                                          "--width-mult", "0.125"], capsys)
    assert code == 0, err
    assert set(printed_summary(out)) == set(METRICS)
    # issue 19 item 5: nothing in the checkpoint fixes the stride or the normalisation: said loudly
    assert "GUESSED" in err and "--final-stride 4" in err and "--normalize dataset" in err
    expect_error(["--load", run_checkpoint, "--data", tiny_data, "--depth", "34"], capsys, "--depth 34")


@pytest.mark.parametrize("text, why", [('{"model": {"depth": 18', "cannot read JSON"),
                                       ("[]", "not train.py's settings.json layout (not a JSON object)")])
def test_an_unreadable_settings_json_is_named(run_checkpoint, tiny_data, tmp_path, capsys, text, why):
    """A damaged settings.json is an error naming it, not a checkpoint without settings (guessed flags)."""
    run = tmp_path / "run"
    shutil.copytree(run_checkpoint, run)
    (run / "settings.json").write_text(text)
    expect_error(["--load", str(run), "--data", tiny_data, "--depth", "18"], capsys, f"{run / 'settings.json'}: {why}")


def test_the_default_sweep_prefix_is_checked_by_the_parser(tiny_data, tmp_path, monkeypatch, capsys):
    """--threshold-sweep without PREFIX: argparse passes its const (threshold_sweep) through the type too."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "threshold_sweep.json").mkdir()
    with pytest.raises(SystemExit) as e:
        evaluate.parse_args(["--load", "x", "--data", tiny_data, "--threshold-sweep"])
    assert e.value.code == 2
    assert "argument --threshold-sweep: threshold_sweep.json is a folder" in capsys.readouterr().err


def test_data_other_than_the_runs_is_refused(run_checkpoint, tiny_data, tmp_path, capsys):
    """Issue 19 item 3: wnids.txt reversed dropped Top-1 Clas from 100 to 33.3 with no warning."""
    import dataflow
    import runrecord
    run, data = tmp_path / "run", tmp_path / "data"
    shutil.copytree(run_checkpoint, run)
    shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns(".cache"))
    settings = json.loads((run / "settings.json").read_text())
    settings["dataset"] = runrecord.dataset_fingerprint(*(dataflow.read_annotations(tiny_data, s)
                                                          for s in ("train", "val")))
    (run / "settings.json").write_text(json.dumps(settings))
    wnids = (data / "wnids.txt").read_text().split()
    (data / "wnids.txt").write_text("\n".join(reversed(wnids)) + "\n")
    expect_error(["--load", str(run), "--data", str(data)], capsys, "class order", "settings.json")


def test_outputs_resolving_to_one_path_are_refused(tiny_data, tmp_path, capsys):
    """Issue 19 item 4: the sweep overwrote eval.json (exit 0); --json F --save-cams F likewise."""
    d = str(tmp_path)
    for outputs in (["--json", f"{d}/eval.json", "--threshold-sweep", f"{d}/eval"],
                    ["--json", f"{d}/f", "--save-cams", f"{d}/./f"],
                    ["--vis", f"{d}/vis", "--save-cams", f"{d}/vis/grid.png"]):
        expect_error(["--load", d, "--data", tiny_data, *outputs], capsys, "would both write"
                     if "--vis" not in outputs else "writes its pictures there")


def test_a_failed_write_keeps_the_other_outputs(run_checkpoint, tiny_data, tmp_path, capsys, monkeypatch):
    """Issue 19 item 7: a failed write lost the whole evaluation (double traceback, no output)."""
    import fileio

    def full(path, obj, sort_keys=False):
        raise fileio.WriteError(path, OSError(28, "No space left on device"))
    monkeypatch.setattr(fileio, "write_json", full)
    json_path, cams = str(tmp_path / "eval.json"), str(tmp_path / "cams.npz")
    line = expect_error(["--load", run_checkpoint, "--data", tiny_data, "--json", json_path, "--save-cams", cams],
                        capsys, f"--json: {json_path}: cannot write (No space left on device)", "written: --save-cams")
    assert "evaluation finished" in line and np.load(cams)["cams"].shape[0] == 16


def test_settings_that_do_not_match_the_checkpoint(run_checkpoint, tiny_data, tmp_path, capsys):
    """Issue 9: a wrong --depth left the extra blocks random and exited 0; now an error names them."""
    bare = tmp_path / "bare"
    shutil.copytree(run_checkpoint, bare)
    (bare / "settings.json").unlink()
    line = expect_error(["--load", str(bare), "--data", tiny_data, "--depth", "34", "--width-mult", "0.125"],
                        capsys, "not in the checkpoint", "depth 34", "group")
    assert "more" in line                                         # many missing: a few named, the count given
    expect_error(["--load", str(bare), "--data", tiny_data, "--depth", "18", "--width-mult", "0.25"],
                 capsys, "other shapes", "width")


def test_damaged_checkpoint_data_is_one_error_line(run_checkpoint, tiny_data, tmp_path, capsys):
    """Issue 9: a truncated model-N.data file gave a traceback."""
    damaged = tmp_path / "damaged"
    shutil.copytree(run_checkpoint, damaged)
    data = next(damaged.glob("model-3.data-*"))
    data.write_bytes(data.read_bytes()[:100])
    expect_error(["--load", str(damaged), "--data", tiny_data], capsys, "model-3", "cannot restore")


def test_train_then_evaluate(tiny_data, tmp_path):
    """The real pipeline: a few training steps with train.py, then evaluate.py on its logdir."""
    logdir = str(tmp_path / "r18-gr-b8")
    train = run_script("train.py", "--data", tiny_data, *SMALL, "--epochs", "2", "--val-every", "2",
                       "--logdir", logdir)
    assert train.returncode == 0, train.stderr[-3000:]
    report_path, cams_path = tmp_path / "eval.json", tmp_path / "cams.npz"
    proc = run_script("evaluate.py", "--load", os.path.join(logdir, "checkpoint"), "--data", tiny_data,
                      "--json", str(report_path), "--save-cams", str(cams_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    check_report(proc.stdout, report)
    assert report["settings"]["checkpoint"].endswith("model-12")      # 6 steps per epoch x 2 epochs
    cams = np.load(cams_path)
    n = np.arange(len(cams["labels"]))
    np.testing.assert_allclose(cams["cams"].mean(axis=(1, 2)) + cams["fc_bias"][cams["labels"]],
                               cams["logits"][n, cams["labels"]], rtol=1e-4, atol=1e-4)


def test_quiet_evaluation_prints_the_answer_only(run_checkpoint, tiny_data):
    """Issue 16: no TensorFlow start-up lines, no per-layer shapes, no cuInit error; --verbose keeps them."""
    quiet = run_script("evaluate.py", "--load", run_checkpoint, "--data", tiny_data)
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    log = [l for l in quiet.stdout.splitlines() if l.startswith("[")]   # tensorpack's INFO lines
    answer = [l for l in quiet.stdout.splitlines() if not l.startswith("[")]
    assert len(answer) == 15 and answer[0].startswith("| metric"), quiet.stdout   # 2 tables, 3 lines
    assert len(log) <= 3 and all("decoding" in l or "split:" in l or "Restoring" in l for l in log), log
    assert [l for l in quiet.stderr.splitlines() if l.strip() and "evaluating" not in l and "decoding" not in l] == []
    loud = run_script("evaluate.py", "--load", run_checkpoint, "--data", tiny_data, "--verbose")
    assert loud.returncode == 0 and loud.stdout.count("registry.py") == 22   # one line per layer
    assert "absl::InitializeLog" in loud.stderr


def test_quiet_drops_only_the_checkpoint_counters_warning():
    import logging
    import tf_env
    record = lambda names: logging.LogRecord("tensorpack", logging.WARNING, "", 0, "The following variables are "
                                             f"in the checkpoint, but not found in the graph: {names}", None, None)
    assert not tf_env.not_counters_warning(record("global_step, learning_rate"))
    assert tf_env.not_counters_warning(record("global_step, learning_rate, linear/W"))
    assert tf_env.not_counters_warning(record("linear/W"))
