"""evaluate.py --cams: score maps of any codebase (one .npy per image, evaluation/scoremaps.py), the round
trip of this project's own maps through --save-cams-dir, the refusals, and docs/evaluation.md's notebook
example; the parser answers without TensorFlow."""

import contextlib
import io
import json
import os
import re
import shutil

import numpy as np
import pytest

import tf_env  # noqa: F401  (before conftest.save_random_model imports tensorflow)
from cam import METRICS
from tests.conftest import REPO, evaluate_in_process, expect_error, run_script

# what differs between a --load and a --cams document of the same maps: where the maps came from
SOURCE = (
    "checkpoint",
    "checkpoint_sha256",
    "model_settings",
    "score_maps",
    "depth",
    "width_mult",
    "final_stride",
)


@pytest.fixture(scope="module")
def own_maps(run_checkpoint, tiny_data, tmp_path_factory):
    """``(folder, eval.json of --load, its printout)``: run_checkpoint evaluated with --save-cams-dir."""
    import evaluate
    from errors import run_main

    out, printed = tmp_path_factory.mktemp("own"), io.StringIO()
    with contextlib.redirect_stdout(printed):
        argv = ["--load", run_checkpoint, "--data", tiny_data, "--json", str(out / "a.json")]
        argv += ["--save-cams-dir", str(out / "maps")]
        argv += ["--threshold-sweep", str(out / "sweep_a"), "--sweep-step", "0.1"]
        run_main(evaluate.main, argv)
    return str(out / "maps"), json.loads((out / "a.json").read_text()), printed.getvalue()


@pytest.fixture
def maps(own_maps, tmp_path):
    """A private copy of own_maps' folder that a test may change."""
    return str(shutil.copytree(own_maps[0], tmp_path / "maps"))


def test_own_maps_round_trip_to_the_same_numbers(own_maps, tiny_data, tmp_path, capsys):
    folder, a, printed = own_maps
    first = os.path.join(folder, "val", "images", "val_0.JPEG.npy")  # wsolevaluation: .npy appended
    raw = np.load(first)
    assert raw.dtype == np.float32 and raw.shape == (8, 10)  # 32x40 images, total stride 4
    assert np.load(os.path.join(folder, "predictions.npy")).shape == (16, 4)
    argv = ["--cams", folder, "--data", tiny_data, "--json", str(tmp_path / "b.json")]
    argv += ["--threshold-sweep", str(tmp_path / "sweep_b"), "--sweep-step", "0.1"]
    code, stdout, err = evaluate_in_process(argv, capsys)
    assert code == 0, err
    b = json.loads((tmp_path / "b.json").read_text())
    # the same float32 maps through the same code path: equal to the last bit, every number and record
    for key in ("summary", "protocol", "wsol2020", "records"):
        assert b[key] == a[key], key
    # the fixed box is fit on the same 48 boxes, said otherwise
    for name, entry in b["protocols"].items():
        fit_on = entry["baselines"].pop("fixed_box_fit_on")
        assert fit_on == "48 training images (all: --cams names no run)"
        fit_on = a["protocols"][name]["baselines"].pop("fixed_box_fit_on")
        assert fit_on.startswith("48 training images the run")
    assert b["protocols"] == a["protocols"]
    b_settings = {k: v for k, v in b["settings"].items() if k not in SOURCE}
    assert b_settings == {k: v for k, v in a["settings"].items() if k not in SOURCE}
    assert b["settings"]["score_maps"]["folder"] == folder and b["settings"]["checkpoint"] is None
    assert set(b["timing"]) == {"read", *a["protocols"], "wsol2020"}
    assert stdout.splitlines()[:-1] == printed.splitlines()[:-1]  # all but the speed line
    assert a["protocols"]["wsol"]["sweep"]["thresholds"] == [round(0.1 * i, 1) for i in range(11)]


def test_integer_predictions_are_class_indices(own_maps, maps, tiny_data, tmp_path, capsys):
    """predictions.npy as top-k class indices (best first) gives the numbers of the logits it came from."""
    logits = np.load(os.path.join(maps, "predictions.npy"))
    top_k = np.argsort(-logits, axis=1, kind="stable").astype(np.int32)
    np.save(os.path.join(maps, "predictions.npy"), top_k)
    argv = ["--cams", maps, "--data", tiny_data, "--json", str(tmp_path / "i.json")]
    code, _, err = evaluate_in_process(argv, capsys)
    assert code == 0, err
    i = json.loads((tmp_path / "i.json").read_text())
    assert i["summary"] == own_maps[1]["summary"] and i["records"] == own_maps[1]["records"]


def test_any_resolution_and_no_predictions(maps, tiny_data, tmp_path, capsys):
    """Another codebase's maps at image resolution (float64, any range), without class predictions:
    the localisation numbers, and every metric that needs a class is null, never a miss."""
    os.remove(os.path.join(maps, "predictions.npy"))
    for name in os.listdir(os.path.join(maps, "val", "images")):
        path = os.path.join(maps, "val", "images", name)
        # 32x40, nearest
        np.save(path, np.kron(np.load(path).astype(np.float64), np.ones((4, 4))) * 7 + 3)
    argv = ["--cams", maps, "--data", tiny_data, "--limit", "6"]
    argv += ["--vis", str(tmp_path / "vis"), "--vis-count", "2", "--json", str(tmp_path / "c.json")]
    code, stdout, err = evaluate_in_process(argv, capsys)
    assert code == 0, err
    c = json.loads((tmp_path / "c.json").read_text())
    assert c["settings"]["num_images"] == 6 and c["settings"]["score_maps"]["predictions"] is None
    for entry in c["protocols"].values():
        assert [m for m in METRICS if entry["summary"][m] is None] == list(METRICS[1:])
    assert c["wsol2020"]["top1_loc_v2"] is None and c["wsol2020"]["maxboxacc_v2"] is not None
    assert all(r["top5"] is None for r in c["records"])
    gt_known = 100 * np.mean([r["iou"] > 0.5 for r in c["records"]])  # authors: IoU > 0.5
    assert c["summary"]["gt_known_loc"] == pytest.approx(gt_known)
    assert "not measured" in stdout and "null in --json" in stdout
    assert len(os.listdir(tmp_path / "vis")) == 2 + 1


def _damage(maps, how):
    path = os.path.join(maps, "val", "images", "val_3.JPEG.npy")
    if how == "missing":
        os.remove(path)
    elif how == "3-D":
        np.save(path, np.zeros((1, 8, 10), np.float32))
    elif how == "NaN":
        np.save(path, np.full((8, 10), np.nan, np.float32))
    elif how == "rows":
        np.save(os.path.join(maps, "predictions.npy"), np.zeros((3, 4), np.float32))
    elif how == "classes":
        np.save(os.path.join(maps, "predictions.npy"), np.zeros((16, 5), np.float32))
    elif how == "renamed":
        for name in os.listdir(os.path.join(maps, "val", "images")):
            stem = os.path.join(maps, "val", "images", name[: -len(".JPEG.npy")])
            os.rename(stem + ".JPEG.npy", stem + ".npy")
    return path


@pytest.mark.parametrize(
    "how, fragments",
    [
        ("missing", ["no score map", "val_3.JPEG.npy", "1 of the 16"]),
        ("renamed", ["no score map", "val_0.JPEG.npy", "appends .npy"]),
        ("3-D", ["val_3.JPEG.npy", "2-D", "(1, 8, 10)"]),
        ("NaN", ["val_3.JPEG.npy", "NaN"]),
        ("rows", ["predictions.npy", "3 rows", "16 evaluated"]),
        ("classes", ["predictions.npy", "5 class scores", "4 classes"]),
    ],
)
def test_bad_maps_are_one_error_naming_the_file(maps, tiny_data, capsys, how, fragments):
    _damage(maps, how)
    expect_error(["--cams", maps, "--data", tiny_data], capsys, *fragments)


def test_flags_that_need_a_checkpoint_are_refused(
    maps, run_checkpoint, tiny_data, tmp_path, capsys
):
    for extra, flag in (
        (["--save-cams", str(tmp_path / "c.npz")], "--save-cams"),
        (["--depth", "18"], "--depth"),
        (["--save-cams-dir", str(tmp_path / "d")], "--save-cams-dir"),
        (["--threshold-from-holdout"], "--threshold-from-holdout"),
    ):
        expect_error(
            ["--cams", maps, "--data", tiny_data, *extra], capsys, f"{flag} needs a checkpoint"
        )
    argv = ["--cams", maps, "--load", run_checkpoint, "--data", tiny_data]
    code, _, err = evaluate_in_process(argv, capsys)
    assert code == 2 and "not allowed with argument" in err
    expect_error(["--cams", str(tmp_path / "none"), "--data", tiny_data], capsys, "no such folder")
    argv = ["--cams", maps, "--data", tiny_data, "--json", os.path.join(maps, "predictions.npy")]
    expect_error(argv, capsys, "would overwrite the --cams predictions")
    argv = ["--load", run_checkpoint, "--data", tiny_data, "--save-cams-dir", maps]
    expect_error(argv, capsys, "not empty")


def test_the_parser_loads_no_tensorflow(tiny_data):
    """--help, a refused flag and a refused flag value answer before TensorFlow is imported (issue 26, item 7)."""
    probe = (
        "import sys, evaluate, errors\n"
        "data = ['--data', sys.argv[1]]\n"
        "for argv in (['--help'], ['--load', 'x', '--prot', 'x'] + data, ['--load', 'x', '--cams', 'y'] + data,\n"
        "             ['--cams', 'nowhere'] + data):\n"
        "    try:\n        errors.run_main(evaluate.main, argv)\n    except SystemExit:\n        pass\n"
        "print(sorted(m for m in ('tensorflow', 'tensorpack', 'tf_env') if m in sys.modules))"
    )
    out = run_script("-c", probe, tiny_data, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "--cams DIR" in out.stdout and "unrecognized arguments: --prot" in out.stderr
    assert "not allowed with argument" in out.stderr
    assert "error: --cams nowhere: no such folder" in out.stderr
    assert out.stdout.splitlines()[-1] == "[]"


def test_the_notebook_example_of_the_docs_runs_as_shown():
    """docs/evaluation.md's example (cam/ on NumPy arrays) prints the output block shown under it."""
    with open(os.path.join(REPO, "docs", "evaluation.md"), encoding="utf-8") as f:
        text = f.read()
    code, shown = re.search(r"```python\n(.*?)```\n.*?```text\n(.*?)```", text, re.DOTALL).groups()
    out = run_script("-c", code, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout == shown
