"""runrecord/checkpoints.py and state.py: checkpoint lookup and damage, run state, which eval.json
counts, file modes."""

import json
import os
import shutil
import time

import numpy as np
import pytest

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
import tensorflow as tf

import runrecord
from errors import UserError
from tests.conftest import run_settings

tf1 = tf.compat.v1


# --------------------------------------------------------------------------- checkpoints


def save(folder, step, size=4096):
    """A real checkpoint model-<step> (global_step + one float vector) as tensorpack writes them."""
    with tf.Graph().as_default():
        tf1.Variable(step, dtype=tf.int64, name="global_step")
        tf1.Variable(np.arange(size, dtype=np.float32), name="w")
        saver = tf1.train.Saver()
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            return saver.save(
                sess, os.path.join(folder, "model"), global_step=step, write_meta_graph=False
            )


def data_file(prefix):
    return prefix + ".data-00000-of-00001"


@pytest.fixture()
def three(tmp_path):
    return [save(str(tmp_path), step) for step in (6, 12, 18)]


def test_latest_checkpoint_is_the_newest_on_disk_even_without_the_state_file(tmp_path, three):
    os.remove(tmp_path / "checkpoint")
    assert runrecord.latest_checkpoint(str(tmp_path)) == (three[2], 18)
    assert runrecord.resolve_checkpoint(str(tmp_path)) == three[2]


@pytest.mark.parametrize("damage", ["no index", "no data", "truncated", "zeroed"])
def test_a_damaged_newest_checkpoint_is_skipped_with_a_warning(tmp_path, three, damage):
    newest = three[2]
    if damage == "no index":
        os.remove(newest + ".index")
    elif damage == "no data":
        os.remove(data_file(newest))
    elif damage == "truncated":
        os.truncate(data_file(newest), os.path.getsize(data_file(newest)) // 2)
    else:  # same size, bytes overwritten: only the checksum tells
        size = os.path.getsize(data_file(newest))
        with open(data_file(newest), "r+b") as f:
            f.seek(size // 2)
            f.write(b"\0" * 64)
    warnings = []
    assert runrecord.latest_checkpoint(str(tmp_path), warn=warnings.append) == (three[1], 12)
    assert len(warnings) == 1 and warnings[0].startswith(f"{newest}: skipped")
    assert runrecord.checkpoint_problem(three[1]) is None and runrecord.checkpoint_problem(newest)


def test_resolve_checkpoint_forms(tmp_path, three):
    assert runrecord.resolve_checkpoint(str(tmp_path / "checkpoint")) == three[2]
    assert runrecord.resolve_checkpoint(three[0] + ".index") == three[0]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no checkpoint"):
        runrecord.resolve_checkpoint(str(tmp_path / "empty"))


# --------------------------------------------------------------------------- run state


def problem(logdir):
    """Why the folder's eval.json does not count, or None."""
    return runrecord.read_evaluation(logdir)[1]


def test_run_name_is_the_default_logdir_and_the_table_run(tiny_data):
    assert runrecord.run_name(18, "gr", 256) == "r18-gr-b256"
    assert runrecord.run_name(34, "cam", 32, holdout=10, seed=2) == "r34-cam-b32-h10-s2"
    from reproduce.runs import Config
    from runrecord import command

    flags = "--aug cam --depth 34 --batch 32 --holdout 10 --seed 2".split()
    args = command.parse_args(["--data", tiny_data, *flags])
    assert args.logdir.endswith(os.path.join("train_log", "r34-cam-b32-h10-s2"))
    assert Config(34, "cam", 32, seed=2, holdout=10).name == "r34-cam-b32-h10-s2"
    assert Config(34, "cam", 32, seed=2, holdout=10).cell == "r34-cam-b32-h10"


def test_eval_doc_reads_an_old_layout_and_writes_it_back_as_it_was(tmp_path):
    old = {"summary": {"top1_loc": 1.5}, "settings": {"checkpoint": "/x/model-6", "split": "val"}}
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(old))
    doc, why = runrecord.EvalDoc.read(str(path))
    assert why is None and doc.to_json() == old and doc.protocol is None and doc.records is None
    assert doc.checkpoint == "/x/model-6" and doc.checkpoint_sha256 is None
    assert doc.scope is None  # no "limit": an evaluate.py before the images were named
    with pytest.raises(ValueError, match="no summary with gt_known_loc"):
        doc.values()
    with pytest.raises(ValueError, match="no per-image records"):
        doc.per_image()


@pytest.mark.parametrize(
    "text, why",
    [
        ("{", "is unreadable (JSONDecodeError"),
        ("[1]", "has no summary"),
        ('{"summary": {}}', "has no summary"),
        ('{"summary": {"top1_loc": NaN, "gt_known_loc": 1}}', "has a non-finite metric (top1_loc)"),
        ('{"summary": {"top1_loc": true}}', "has a non-finite metric (top1_loc)"),
        (
            '{"summary": {"top1_loc": 1}, "protocols": []}',
            "has a 'protocols' that is not a JSON object",
        ),
        ('{"summary": {"top1_loc": 1}, "protocol": 3}', "has a 'protocol' that is not a string"),
        (
            '{"summary": {"top1_loc": 1}, "records": [1]}',
            "has a 'records' that is not a list of objects",
        ),
    ],
)
def test_eval_doc_refuses_naming_the_first_bad_part(tmp_path, text, why):
    path = tmp_path / "eval.json"
    path.write_text(text)
    doc, got = runrecord.EvalDoc.read(str(path))
    assert doc is None and got.startswith(f"{path} {why}")
    none = str(tmp_path / "none.json")
    assert runrecord.EvalDoc.read(none) == (None, f"{none} does not exist")


def test_run_state(tmp_path):
    logdir = str(tmp_path / "run")
    s = run_settings()
    assert runrecord.run_state(logdir, s) == (runrecord.NEW, "not trained yet")
    os.makedirs(logdir)
    save(logdir, 6)
    state, reason = runrecord.run_state(logdir, s)
    assert state == runrecord.CONFLICT and "no settings.json" in reason
    runrecord.write_json(os.path.join(logdir, runrecord.SETTINGS), s.to_json())
    assert runrecord.run_state(logdir, s) == (runrecord.RESUMABLE, "resumable from model-6")
    state, reason = runrecord.run_state(logdir, run_settings(**{"train.holdout": 2}))
    assert state == runrecord.CONFLICT and "train.holdout: 0 -> 2" in reason
    runrecord.write_json(os.path.join(logdir, runrecord.DONE), {"global_step": 18, "epoch": 3})
    assert runrecord.run_state(logdir, s) == (runrecord.TRAINED, "trained, not evaluated")
    eval_json = os.path.join(logdir, runrecord.EVAL)
    mine = {"checkpoint": os.path.join(logdir, "model-6"), "split": "val", "limit": None}
    runrecord.write_json(eval_json, {"summary": {"top1_loc": 1.5}, "settings": mine})
    assert runrecord.run_state(logdir, s)[0] == runrecord.EVALUATED
    runrecord.write_json(eval_json, {"summary": {"top1_loc": float("nan")}, "settings": mine})
    assert runrecord.run_state(logdir, s) == (
        runrecord.TRAINED,
        "eval.json has a non-finite metric (top1_loc)",
    )
    runrecord.write_json(eval_json, {"summary": {"top1_loc": 1.5}, "settings": mine})
    os.utime(eval_json, (1, 1))  # without the checkpoint's digest, the file times decide
    assert runrecord.run_state(logdir, s) == (
        runrecord.TRAINED,
        "eval.json is older than done.json",
    )


@pytest.mark.parametrize(
    "change, reason",
    [
        # issue 19 item 2: evaluate.py --load RUN_A --json RUN_B/eval.json, and --limit 1
        ({"checkpoint": "OTHER/model-6"}, "a checkpoint of another folder"),
        ({"checkpoint": "RUN/model-3"}, "not the newest model-6"),
        ({"limit": 1, "num_images": 1}, "not the whole val split"),
        ({"split": "train"}, "not the whole val split"),
        ({"limit": "absent"}, "written by an older evaluate.py"),
    ],
)
def test_eval_json_counts_only_for_this_runs_newest_checkpoint_on_all_of_val(
    tmp_path, change, reason
):
    logdir = str(tmp_path / "run")
    os.makedirs(logdir)
    save(logdir, 6)
    ev = {
        "checkpoint": os.path.join(logdir, "model-6"),
        "split": "val",
        "limit": None,
        "num_images": 12,
    }
    runrecord.write_json(os.path.join(logdir, runrecord.DONE), {"global_step": 6, "epoch": 1})
    path = os.path.join(logdir, runrecord.EVAL)
    runrecord.write_json(path, {"summary": {"top1_loc": 1.5}, "settings": ev})
    os.utime(path, (time.time() + 5,) * 2)
    assert problem(logdir) is None
    ev.update(
        {
            k: v.replace("OTHER", str(tmp_path / "other")).replace("RUN", logdir)
            if isinstance(v, str)
            else v
            for k, v in change.items()
        }
    )
    if ev["limit"] == "absent":
        del ev["limit"]
    runrecord.write_json(path, {"summary": {"top1_loc": 1.5}, "settings": ev})
    os.utime(path, (time.time() + 5,) * 2)
    assert reason in problem(logdir)


def test_a_run_folder_stays_valid_when_copied_and_knows_its_checkpoint_by_content(tmp_path):
    # issue 24 item 3: eval.json named its checkpoint by absolute path, so a copied run's table cell was "—"
    logdir = str(tmp_path / "run")
    os.makedirs(logdir)
    prefix = save(logdir, 6)
    path = os.path.join(logdir, runrecord.EVAL)
    ev = dict(runrecord.checkpoint_reference(prefix, path), split="val", limit=None, num_images=12)
    assert ev["checkpoint"] == "model-6" and len(ev["checkpoint_sha256"]) == 64
    runrecord.write_json(os.path.join(logdir, runrecord.DONE), {"global_step": 6, "epoch": 1})
    runrecord.write_json(path, {"summary": {"top1_loc": 1.5}, "settings": ev})
    for name, copy in (
        ("rsync", shutil.copy2),
        ("cp", shutil.copyfile),
    ):  # with and without the file times
        shutil.copytree(logdir, tmp_path / name, copy_function=copy)
        os.utime(tmp_path / name / runrecord.EVAL, (1, 1))  # even older than done.json
        assert problem(str(tmp_path / name)) is None
    for f in os.listdir(logdir):  # retrained: another model-6, same name, other weights
        if f.startswith("model-6"):
            os.remove(os.path.join(logdir, f))
    save(logdir, 6, size=8)
    assert "sha256 differs" in problem(logdir)
    shutil.rmtree(
        tmp_path / "cp"
    )  # an absolute path (evaluate.py before issue 24) names another folder
    ev["checkpoint"] = str(tmp_path / "rsync" / "model-6")
    runrecord.write_json(path, {"summary": {"top1_loc": 1.5}, "settings": ev})
    assert "a checkpoint of another folder (an absolute path" in problem(logdir)


# --------------------------------------------------------------------------- file writes


def test_file_modes_follow_the_umask(tmp_path):
    import fileio

    old = os.umask(0o022)
    try:
        fileio.write_json(str(tmp_path / "a.json"), {})
        os.umask(0o077)
        fileio.write_text(str(tmp_path / "b.txt"), "x")
    finally:
        os.umask(old)
    assert (
        os.stat(tmp_path / "a.json").st_mode & 0o777 == 0o644
    )  # mkstemp gave 0600 whatever the umask
    assert os.stat(tmp_path / "b.txt").st_mode & 0o777 == 0o600
