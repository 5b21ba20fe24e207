"""evaluate.py's bad input: checkpoints, settings.json, data and output paths, each one ``error:`` line.

``run_checkpoint`` (conftest.py) is a narrow network with random weights saved like a training run.
"""

import json
import shutil

import numpy as np
import pytest

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
import evaluate
from cam import METRICS
from dataflow.synthetic import generate
from runrecord import resolve_checkpoint
from tests.conftest import evaluate_in_process, expect_error, printed_summary


def test_checkpoint_lookup(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("model-5.index", "model-5.data-00000-of-00001", "model-9.index"):
        (run / name).write_text("x")
    # a run moved from elsewhere: the state file names an absolute path that no longer exists
    (run / "checkpoint").write_text(
        'model_checkpoint_path: "/old/place/model-9"\n'
        'all_model_checkpoint_paths: "/old/place/model-9"\n'
    )
    assert resolve_checkpoint(str(run)) == str(run / "model-9")
    assert resolve_checkpoint(str(run / "checkpoint")) == str(run / "model-9")
    assert resolve_checkpoint(str(run / "model-5")) == str(run / "model-5")
    assert resolve_checkpoint(str(run / "model-5.index")) == str(run / "model-5")


def test_missing_checkpoint(tiny_data, tmp_path, capsys):
    missing = str(tmp_path / "nowhere" / "checkpoint")
    expect_error(["--load", missing, "--data", tiny_data], capsys, missing)
    expect_error(["--load", str(tmp_path / "model-1"), "--data", tiny_data], capsys, "model-1")
    expect_error(["--load", str(tmp_path), "--data", tiny_data], capsys, str(tmp_path))


def test_wrong_number_of_classes(run_checkpoint, tmp_path, capsys):
    three = generate(
        str(tmp_path / "three"),
        classes=3,
        train_per_class=2,
        val_per_class=2,
        seed=1,
        height=32,
        width=40,
    )
    expect_error(["--load", run_checkpoint, "--data", three], capsys, "4 classes", "3 classes")


def test_data_without_boxes_and_empty_split(run_checkpoint, tiny_data, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns(".cache"))
    ann = data / "val" / "val_annotations.txt"
    lines = ann.read_text().splitlines()
    ann.write_text("\n".join("\t".join(x.split()[:2]) for x in lines) + "\n")  # file and wnid only
    expect_error(["--load", run_checkpoint, "--data", str(data)], capsys, "val_annotations.txt")
    ann.write_text("")
    shutil.rmtree(data / "val" / "images")
    (data / "val" / "images").mkdir()
    expect_error(["--load", run_checkpoint, "--data", str(data)], capsys, "no annotated images")


def test_outputs_checked_before_any_work(run_checkpoint, tiny_data, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for flag, path, why in (
        ("--vis", str(blocker / "vis"), "not a writable folder"),
        ("--json", str(tmp_path / "no" / "e.json"), "does not exist"),
    ):
        code, _, err = evaluate_in_process(
            ["--load", run_checkpoint, "--data", tiny_data, flag, path], capsys
        )
        assert (
            code == 2
            and f"error: argument {flag}: {path}" in err
            and why in err
            and "Traceback" not in err
        )
    # issue 8: one set of argparse types (argtypes.py) for every entry point: no nan, no 0 batch
    # (issue 9: a sweep step of 0 was a ZeroDivisionError traceback)
    for flag, value in (
        ("--cam-threshold", "nan"),
        ("--cam-threshold", "1.5"),
        ("--batch", "0"),
        ("--sweep-step", "0"),
    ):
        argv = ["--load", run_checkpoint, "--data", tiny_data, flag, value]
        code, _, err = evaluate_in_process(argv, capsys)
        refused = code == 2 and f"error: argument {flag}: expected" in err
        assert refused and "Traceback" not in err, err
    argv = ["--load", run_checkpoint, "--data", tiny_data, "--sweep-step", "0.3"]
    expect_error(argv, capsys, "--sweep-step")


def test_abbreviated_and_removed_flags_are_refused(run_checkpoint, tiny_data, capsys):
    for flag in (
        ["--prot", "paper"],
        ["--box-rule", "wsol"],
        ["--iou-strict"],
        ["--threshold-from-train"],
        ["--holdout", "2"],
    ):
        code, out, err = evaluate_in_process(
            ["--load", run_checkpoint, "--data", tiny_data] + flag, capsys
        )
        assert code == 2 and "unrecognized arguments: " + flag[0] in err, (flag, err)


def test_checkpoint_without_settings(run_checkpoint, tiny_data, tmp_path, capsys):
    bare = tmp_path / "bare"
    shutil.copytree(run_checkpoint, bare)
    (bare / "settings.json").unlink()
    expect_error(["--load", str(bare), "--data", tiny_data], capsys, "settings.json", "--depth")
    code, out, err = evaluate_in_process(
        ["--load", str(bare), "--data", tiny_data, "--depth", "18", "--width-mult", "0.125"], capsys
    )
    assert code == 0, err
    assert set(printed_summary(out)) == set(METRICS)
    # issue 19 item 5: nothing in the checkpoint fixes the stride or the normalisation: said loudly
    assert "GUESSED" in err and "--final-stride 4" in err and "--normalize dataset" in err
    expect_error(
        ["--load", run_checkpoint, "--data", tiny_data, "--depth", "34"], capsys, "--depth 34"
    )


@pytest.mark.parametrize(
    "text, why",
    [
        ('{"model": {"depth": 18', "cannot read JSON"),
        ("[]", "not train.py's settings.json layout (not a JSON object)"),
    ],
)
def test_an_unreadable_settings_json_is_named(
    run_checkpoint, tiny_data, tmp_path, capsys, text, why
):
    """A damaged settings.json is an error naming it, not a checkpoint without settings (guessed flags)."""
    run = tmp_path / "run"
    shutil.copytree(run_checkpoint, run)
    (run / "settings.json").write_text(text)
    expect_error(
        ["--load", str(run), "--data", tiny_data, "--depth", "18"],
        capsys,
        f"{run / 'settings.json'}: {why}",
    )


def test_the_default_sweep_prefix_is_checked_by_the_parser(
    tiny_data, tmp_path, monkeypatch, capsys
):
    """--threshold-sweep without PREFIX: argparse passes its const (threshold_sweep) through the type too."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "threshold_sweep.json").mkdir()
    with pytest.raises(SystemExit) as e:
        evaluate.parse_args(["--load", "x", "--data", tiny_data, "--threshold-sweep"])
    assert e.value.code == 2
    assert "argument --threshold-sweep: threshold_sweep.json is a folder" in capsys.readouterr().err


def test_data_other_than_the_runs_is_refused(run_checkpoint, tiny_data, tmp_path, capsys):
    """Issue 19 item 3: wnids.txt reversed dropped Top-1 Clas from 100 to 33.3 with no warning."""
    from dataflow import annotations
    import runrecord

    run, data = tmp_path / "run", tmp_path / "data"
    shutil.copytree(run_checkpoint, run)
    shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns(".cache"))
    settings = json.loads((run / "settings.json").read_text())
    settings["dataset"] = runrecord.dataset_fingerprint(
        *(annotations.read_annotations(tiny_data, s) for s in ("train", "val"))
    )
    (run / "settings.json").write_text(json.dumps(settings))
    wnids = (data / "wnids.txt").read_text().split()
    (data / "wnids.txt").write_text("\n".join(reversed(wnids)) + "\n")
    expect_error(["--load", str(run), "--data", str(data)], capsys, "class order", "settings.json")


def test_outputs_resolving_to_one_path_are_refused(tiny_data, tmp_path, capsys):
    """Issue 19 item 4: the sweep overwrote eval.json (exit 0); --json F --save-cams F likewise."""
    d = str(tmp_path)
    (tmp_path / "vis").mkdir()  # --vis is created when its pictures are written, not by the parser
    for outputs in (
        ["--json", f"{d}/eval.json", "--threshold-sweep", f"{d}/eval"],
        ["--json", f"{d}/f", "--save-cams", f"{d}/./f"],
        ["--vis", f"{d}/vis", "--save-cams", f"{d}/vis/grid.png"],
    ):
        expect_error(
            ["--load", d, "--data", tiny_data, *outputs],
            capsys,
            "would both write" if "--vis" not in outputs else "writes its pictures there",
        )


def test_a_failed_write_keeps_the_other_outputs(
    run_checkpoint, tiny_data, tmp_path, capsys, monkeypatch
):
    """Issue 19 item 7: a failed write lost the whole evaluation (double traceback, no output)."""
    import fileio

    def full(path, obj, sort_keys=False):
        raise fileio.WriteError(path, OSError(28, "No space left on device"))

    monkeypatch.setattr(fileio, "write_json", full)
    json_path, cams = str(tmp_path / "eval.json"), str(tmp_path / "cams.npz")
    line = expect_error(
        ["--load", run_checkpoint, "--data", tiny_data, "--json", json_path, "--save-cams", cams],
        capsys,
        f"--json: {json_path}: cannot write (No space left on device)",
        "written: --save-cams",
    )
    assert "evaluation finished" in line and np.load(cams)["cams"].shape[0] == 16


def test_settings_that_do_not_match_the_checkpoint(run_checkpoint, tiny_data, tmp_path, capsys):
    """Issue 9: a wrong --depth left the extra blocks random and exited 0; now an error names them."""
    bare = tmp_path / "bare"
    shutil.copytree(run_checkpoint, bare)
    (bare / "settings.json").unlink()
    line = expect_error(
        ["--load", str(bare), "--data", tiny_data, "--depth", "34", "--width-mult", "0.125"],
        capsys,
        "not in the checkpoint",
        "depth 34",
        "group",
    )
    assert "more" in line  # many missing: a few named, the count given
    expect_error(
        ["--load", str(bare), "--data", tiny_data, "--depth", "18", "--width-mult", "0.25"],
        capsys,
        "other shapes",
        "width",
    )


def test_damaged_checkpoint_data_is_one_error_line(run_checkpoint, tiny_data, tmp_path, capsys):
    """Issue 9: a truncated model-N.data file gave a traceback."""
    damaged = tmp_path / "damaged"
    shutil.copytree(run_checkpoint, damaged)
    data = next(damaged.glob("model-3.data-*"))
    data.write_bytes(data.read_bytes()[:100])
    expect_error(["--load", str(damaged), "--data", tiny_data], capsys, "model-3", "cannot restore")
