"""train.py under faults (issue 9): damaged checkpoints on resume, NaN loss, a failed save, changed settings.

Each test trains a narrow net for a few 6-step epochs on the generated tiny dataset.
"""

import os
import resource
import shutil
import signal

import pytest

import runrecord
from tests.conftest import SMALL, run_script

SMALL = SMALL + ["--val-every", "100"]


def train(*args, file_size_limit=None, timeout=300):
    def limit():  # a "full disk": writes past the limit fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return run_script(
        "train.py", *args, timeout=timeout, preexec_fn=limit if file_size_limit else None
    )


def error_line(out):
    lines = [x for x in out.stderr.splitlines() if x.startswith("error: ")]
    assert out.returncode == 2 and len(lines) == 1 and "Traceback" not in out.stderr, out.stderr[
        -3000:
    ]
    return lines[0]


@pytest.fixture(scope="module")
def finished(tiny_data, tmp_path_factory):
    """A finished 3-epoch run (checkpoints model-6, -12, -18); tests damage copies of it."""
    logdir = str(tmp_path_factory.mktemp("finished") / "run")
    args = ["--data", tiny_data, *SMALL, "--epochs", "3", "--logdir", logdir]
    out = train(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    return logdir, args


def copy_run(finished, tmp_path):
    logdir, args = finished
    copy = str(tmp_path / "run")
    shutil.copytree(logdir, copy)
    return copy, [copy if a == logdir else a for a in args]


@pytest.mark.parametrize(
    "damage", ["newest .index removed", "state file removed", "newest .data truncated"]
)
def test_resume_continues_from_the_newest_checkpoint_that_restores(finished, tmp_path, damage):
    """Today's code restarts at step 0 (the first two) or dies with a traceback (the third)."""
    logdir, args = copy_run(finished, tmp_path)
    os.remove(os.path.join(logdir, runrecord.DONE))
    newest = os.path.join(logdir, "model-18")
    if damage == "newest .index removed":
        os.remove(newest + ".index")
    elif damage == "state file removed":  # and the newest gone too: only a scan finds model-12
        os.remove(os.path.join(logdir, runrecord.STATE_FILE))
        for name in os.listdir(logdir):
            if name.startswith("model-18."):
                os.remove(os.path.join(logdir, name))
    else:
        data = newest + ".data-00000-of-00001"
        os.truncate(data, os.path.getsize(data) // 3)
    out = train(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    log = out.stdout + out.stderr
    assert f"Resuming from {logdir}/model-12: global step 12, epoch 3 of 3" in log
    if damage != "state file removed":
        assert f"{newest}: skipped, it cannot be restored" in log
    done = runrecord.read_json(os.path.join(logdir, runrecord.DONE))
    assert done == {"global_step": 18, "epoch": 3}
    assert runrecord.checkpoint_problem(newest) is None  # written again by the resumed run


def test_no_restart_from_scratch_over_checkpoints_without_restart(finished, tmp_path):
    logdir, args = copy_run(finished, tmp_path)
    os.remove(os.path.join(logdir, runrecord.DONE))
    for step in (6, 12, 18):
        os.remove(os.path.join(logdir, f"model-{step}.index"))
    line = error_line(train(*args))
    assert "none can be restored" in line and "--restart" in line and "model-18" in line
    assert not os.path.exists(os.path.join(logdir, runrecord.DONE))

    out = train(*args, "--restart")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Starting at global step 0" in out.stdout + out.stderr
    moved = [d for d in os.listdir(logdir) if d.startswith("discarded-")]
    assert len(moved) == 1
    assert "model-18.data-00000-of-00001" in os.listdir(os.path.join(logdir, moved[0]))
    done = runrecord.read_json(os.path.join(logdir, runrecord.DONE))
    assert done == {"global_step": 18, "epoch": 3}


def test_a_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tiny_data, tmp_path):
    """Epoch 1 at lr 1e-3, then lr 1e32: the loss turns inf/NaN in epoch 2.
    Today's code trains on with a NaN loss and writes done.json."""
    logdir = str(tmp_path / "nan")
    schedule = "--epochs 3 --lr 1e-3 --lr-step-epochs 1 --lr-decay 1e35".split()
    out = train("--data", tiny_data, *SMALL, *schedule, "--logdir", logdir)
    line = error_line(out)
    assert "NaN or infinite" in line and f"{logdir}/model-6 is kept" in line
    assert not os.path.exists(os.path.join(logdir, runrecord.DONE))
    assert runrecord.latest_checkpoint(logdir) == (os.path.join(logdir, "model-6"), 6)
    assert sorted(runrecord.checkpoint_files(logdir)) == [6]


def test_a_checkpoint_that_cannot_be_written_stops_training_at_once(tiny_data, tmp_path):
    """Files are limited to 1 MB: the 1.4 MB checkpoint of epoch 1 fails (EFBIG, as on a full disk).
    Today's ModelSaver logs it, trains all 3 epochs, then says it stopped at global step 0."""
    logdir = str(tmp_path / "full")
    args = ["--data", tiny_data, *SMALL, "--epochs", "3", "--logdir", logdir]
    out = train(*args, file_size_limit=10**6)
    line = error_line(out)
    assert line.startswith(f"error: {logdir}/model-6: cannot write the checkpoint (")
    assert "File too large" in line
    assert "training stopped at global step 6" in line
    assert "Start Epoch 2" not in out.stdout + out.stderr
    assert not os.path.exists(os.path.join(logdir, runrecord.DONE))


def test_resume_refuses_a_changed_recipe(finished, tmp_path):
    logdir, args = copy_run(finished, tmp_path)
    out = train(*args, "--recipe", "sn-resnet", "--no-jitter")
    assert "holds a run with other settings" in error_line(out)
    assert "train.recipe: paper -> sn-resnet" in out.stderr
    assert "train.early_grad_scale: 1.0 -> 0.1" in out.stderr


def test_resume_refuses_a_changed_holdout(finished, tmp_path):
    logdir, args = copy_run(finished, tmp_path)
    out = train(*args, "--holdout", "2")
    assert "holds a run with other settings" in error_line(out)
    assert "train.holdout: 0 -> 2" in out.stderr and "dataset.holdout: 0 -> 2" in out.stderr


def test_sn_resnet_recipe_with_holdout_is_recorded(tiny_data, tmp_path):
    from models.resnet import IMAGENET_MEAN_BGR, IMAGENET_STD_BGR

    logdir = str(tmp_path / "sn")
    recipe = "--epochs 1 --recipe sn-resnet --holdout 2".split()
    out = train("--data", tiny_data, *SMALL, *recipe, "--logdir", logdir)
    assert out.returncode == 0, out.stderr[-3000:]
    s = runrecord.load_settings(logdir)
    t = s.train
    recorded = (t.recipe, t.flip, t.jitter, t.normalize, t.early_grad_scale)
    assert recorded == ("sn-resnet", True, True, "imagenet", 0.1)
    assert s.model.mean_bgr == IMAGENET_MEAN_BGR and s.model.std_bgr == IMAGENET_STD_BGR
    # 12 training images per class, the last 2 held out: 40 of 48 used, 5 steps of 8
    assert (s.train.holdout, s.dataset["holdout"], s.dataset["train_used"]) == (2, 2, 40)
    assert s.train.steps_per_epoch == 5 and runrecord.latest_checkpoint(logdir)[1] == 5


def test_the_stopped_at_message_names_the_step_reached_and_the_newest_checkpoint(tmp_path):
    """Today's message took the step from the newest checkpoint: "stopped at global step 0"
    after 6 steps had run with none saved."""
    import types
    from errors import UserError
    from training import trainer as training

    settings = types.SimpleNamespace(train=types.SimpleNamespace(final_step=18, epochs=3))
    trainer = types.SimpleNamespace(loop=types.SimpleNamespace(global_step=6))
    with pytest.raises(
        UserError,
        match="stopped at global step 6 before the planned 18; the newest "
        "checkpoint that restores is at step 0",
    ):
        training.finish(settings, str(tmp_path), trainer)
    assert not os.path.exists(tmp_path / runrecord.DONE)


def test_a_full_disk_at_start_names_the_file(tiny_data, tmp_path):
    """Files are limited to 1000 bytes: settings.json cannot be written. Today: an OSError traceback."""
    logdir = str(tmp_path / "full")
    out = train("--data", tiny_data, *SMALL, "--logdir", logdir, file_size_limit=1000)
    assert error_line(out) == f"error: {logdir}/settings.json: cannot write (File too large)"


def test_a_lost_settings_json_has_a_way_back(finished, tmp_path):
    """Issue 19 item 10: a deleted settings.json was refused with no recovery path."""
    logdir, args = copy_run(finished, tmp_path)
    os.remove(os.path.join(logdir, runrecord.SETTINGS))
    os.remove(os.path.join(logdir, runrecord.DONE))
    out = train(*args)
    assert "no settings.json" in error_line(out) and "--adopt-settings" in out.stderr
    out = train(*args, "--adopt-settings")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "training finished (global step 18" in out.stdout
    assert runrecord.load_settings(logdir).train.final_step == 18
    assert "is not a run without settings.json" in error_line(train(*args, "--adopt-settings"))
