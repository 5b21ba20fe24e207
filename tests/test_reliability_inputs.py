"""Issue 27: no command overwrites its own inputs; evaluate.py reads settings.json through its one reader.

``run_checkpoint`` (conftest.py) is a random-weight run folder; each test copies it first.
"""

import json
import os
import shutil

import pytest

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
from tests.conftest import expect_error


@pytest.fixture
def run(run_checkpoint, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(run_checkpoint, folder)
    (folder / "checkpoint").write_text(
        'model_checkpoint_path: "model-3"\nall_model_checkpoint_paths: "model-3"\n'
    )
    for name in ("done.json", "stats.json"):
        (folder / name).write_text("{}")
    return folder


@pytest.mark.parametrize(
    "flag, name",
    [
        ("--save-cams", "model-3.index"),
        ("--json", "settings.json"),
        ("--json", "checkpoint"),
        ("--save-cams", "done.json"),
        ("--json", "stats.json"),
        ("--save-cams", "model-3.data-00000-of-00001"),
    ],
)
def test_an_output_that_is_an_input_of_the_run_is_refused(run, tiny_data, capsys, flag, name):
    """Issue 27 item 1: --save-cams RUN/model-6.index destroyed the checkpoint, exit 0."""
    target = run / name
    before = target.read_bytes()
    expect_error(
        ["--load", str(run), "--data", tiny_data, flag, str(target)],
        capsys,
        flag,
        "would overwrite",
    )
    assert target.read_bytes() == before


def test_an_output_through_a_link_or_into_the_dataset_is_refused(run, data, tmp_path, capsys):
    link = tmp_path / "alias.json"
    os.symlink(run / "settings.json", link)
    expect_error(
        ["--load", str(run), "--data", str(data), "--json", str(link)], capsys, "would overwrite"
    )
    wnids = os.path.join(data, "wnids.txt")
    argv = ["--load", str(run / "model-3"), "--data", str(data), "--json", wnids]
    expect_error(argv, capsys, "inside the dataset")
    sweep = os.path.join(data, "val", "images", "x")
    argv = ["--load", str(run), "--data", str(data), "--threshold-sweep", sweep]
    expect_error(argv, capsys, "--threshold-sweep", "inside the dataset")
    assert not os.path.exists(os.path.join(data, "val", "images", "x.json"))
    vis = os.path.join(data, "val", "images", "vis")  # a folder there would be an unannotated image
    argv = ["--load", str(run), "--data", str(data), "--vis", vis]
    expect_error(argv, capsys, "--vis", "inside the dataset")
    assert not os.path.exists(vis)


@pytest.mark.parametrize("train", ["absent", [1, 2], {"aug": "cam", "batch": 8, "holdout": "x"}])
def test_a_settings_json_without_a_train_object_is_one_error(run, tiny_data, capsys, train):
    """Issue 27 item 9: a missing or non-object "train" crashed evaluate.py (KeyError, AttributeError)."""
    path = run / "settings.json"
    doc = json.loads(path.read_text())
    if train == "absent":
        del doc["train"]
    else:
        doc["train"] = train
    path.write_text(json.dumps(doc))
    expect_error(["--load", str(run), "--data", tiny_data], capsys, str(path))
