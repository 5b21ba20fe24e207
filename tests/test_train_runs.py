"""train.py's runs: the learning-rate schedule, short runs, rerun rules, logdir trimming, kill -9 and resume."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
import tensorflow as tf
from tensorpack.callbacks import ScheduledHyperParamSetter

from training import callbacks as cbs
import runrecord
from tests.conftest import REPO, SMALL, run_script
from runrecord.machine import cpu_supports_bf16
from training import resume


FUTURE_WARNING = "will trigger an error in the future"


def run_train(*args, timeout=300):
    return run_script("train.py", *args, timeout=timeout)


def read_json(path):
    with open(path) as f:
        return json.load(f)


# --------------------------------------------------------------------------- schedule


def lr_at_epoch(lr, step_epochs, decay, epoch):
    """The paper's rule (sec. 3), written out: the rate used while training epoch ``epoch`` (1-based)."""
    return lr * decay ** ((epoch - 1) // step_epochs)


def test_lr_schedule_paper_defaults_at_the_step_boundaries():
    schedule = cbs.lr_schedule(0.1, 250, 0.1, 1500)  # paper sec. 3
    assert [e for e, _ in schedule] == [0, 250, 500, 750, 1000, 1250]
    np.testing.assert_allclose([v for _, v in schedule], [0.1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
    for epoch, expected in [
        (1, 0.1),
        (250, 0.1),
        (251, 0.01),
        (500, 0.01),
        (501, 1e-3),
        (1500, 1e-6),
    ]:
        assert lr_at_epoch(0.1, 250, 0.1, epoch) == pytest.approx(expected)


def test_tensorpack_setter_follows_lr_at_epoch():
    """Replay ScheduledHyperParamSetter's rule: the value set after epoch e is used by epoch e + 1."""
    setter = ScheduledHyperParamSetter("learning_rate", cbs.lr_schedule(0.1, 3, 0.5, 10))
    current = None
    for finished in range(0, 10):
        value = setter._get_value_to_set_at_point(finished)
        current = value if value is not None else current
        assert current == pytest.approx(lr_at_epoch(0.1, 3, 0.5, finished + 1)), finished


# --------------------------------------------------------------------------- logdir rules


def test_trim_stats_drops_entries_after_the_checkpoint(tmp_path):
    stats = [{"epoch_num": e, "global_step": 6 * e, "cost": 1.0} for e in (1, 2, 3)]
    runrecord.write_json(tmp_path / "stats.json", stats)
    resume.trim_stats(str(tmp_path), 12, 2)
    assert [s["epoch_num"] for s in read_json(tmp_path / "stats.json")] == [1, 2]
    # killed between the checkpoint of epoch 3 and its stats entry: a bare entry keeps the history
    resume.trim_stats(str(tmp_path), 18, 3)
    assert read_json(tmp_path / "stats.json")[-1] == {"epoch_num": 3, "global_step": 18}


# --------------------------------------------------------------------------- bad input, as a process


def test_bad_input_in_a_subprocess_is_one_line_on_stderr(tmp_path):
    out = run_train("--data", str(tmp_path / "nowhere"), "--aug", "gr", timeout=120)
    assert out.returncode == 2
    assert (
        out.stderr.strip()
        .splitlines()[-1]
        .startswith(f"train.py: error: argument --data: {tmp_path / 'nowhere'}: no such directory")
    )
    assert "Traceback" not in out.stderr


# --------------------------------------------------------------------------- short runs


def test_short_run_then_rerun_refuse_and_moved_data(tiny_data, tmp_path):
    logdir = str(tmp_path / "run")
    schedule = "--epochs 3 --lr-step-epochs 2 --val-every 2".split()
    args = ["--data", tiny_data, *SMALL, *schedule, "--logdir", logdir]
    out = run_train(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    assert FUTURE_WARNING not in out.stdout + out.stderr
    assert read_json(os.path.join(logdir, "done.json")) == {"global_step": 18, "epoch": 3}
    assert os.path.exists(os.path.join(logdir, "model-18.index"))
    settings = read_json(os.path.join(logdir, "settings.json"))
    assert settings["model"]["num_classes"] == 4 and settings["model"]["image_shape"] == [32, 40]
    assert settings["model"]["width_mult"] == 0.125 and settings["train"]["batch"] == 8
    assert settings["train"]["steps_per_epoch"] == 6 and "git_commit" in settings
    [machine] = settings["machine"]  # issue 24: the machine and library builds it trained with
    assert machine["from_step"] == 0 and machine["cpu"]["logical_cpus"] == os.cpu_count()
    assert machine["cpu"]["model"] and "flags" in machine["cpu"] and machine["gpus"] == []
    libraries = machine["libraries"]
    assert libraries["tensorflow"] == tf.__version__ and libraries["numpy"] == np.__version__
    assert libraries["onednn"] in ("on", "off") and libraries["cudnn_build"]
    stats = read_json(os.path.join(logdir, "stats.json"))
    assert [s["epoch_num"] for s in stats] == [1, 2, 3]
    assert all(np.isfinite(s["cost"]) for s in stats)
    # every 2 epochs and the last
    assert [("val-error-top1" in s) for s in stats] == [False, True, True]
    assert [("val-gt-known-loc" in s) for s in stats] == [False, True, True]  # localisation with it
    # the table scripts' ETA (training/watch.py)
    progress = read_json(os.path.join(logdir, "progress.json"))
    assert [e for e, _ in progress["ends"]] == [1, 2, 3] and progress["start_epoch"] == 1

    again = run_train(*args)
    assert again.returncode == 0 and "training finished" in again.stdout

    changed = run_train(*args, "--lr", "0.05")
    assert changed.returncode == 2 and "train.lr: 0.1 -> 0.05" in changed.stderr

    moved = str(tmp_path / "moved")
    shutil.copytree(tiny_data, moved, ignore=shutil.ignore_patterns(".cache"))
    args[args.index(tiny_data)] = moved
    relocated = run_train(*args)
    finished = relocated.returncode == 0 and "training finished" in relocated.stdout
    assert finished, relocated.stderr[-2000:]


@pytest.mark.skipif(not cpu_supports_bf16(), reason="needs a CPU with AVX512_BF16 or AMX")
def test_amp_run_on_cpu_uses_bf16(tiny_data, tmp_path):
    logdir = str(tmp_path / "amp")
    out = run_train("--data", tiny_data, *SMALL, "--epochs", "2", "--amp", "--logdir", logdir)
    assert out.returncode == 0, out.stderr[-3000:]
    assert read_json(os.path.join(logdir, "settings.json"))["train"]["amp"] == "bf16"
    assert all(np.isfinite(s["cost"]) for s in read_json(os.path.join(logdir, "stats.json")))


def test_kill_9_and_rerun_ends_at_the_planned_step_with_the_schedule_intact(tiny_data, tmp_path):
    logdir = str(tmp_path / "resume")
    epochs, step_epochs, spe = 12, 4, 6
    schedule = ["--epochs", str(epochs), "--lr-step-epochs", str(step_epochs), "--val-every", "100"]
    args = ["--data", tiny_data, *SMALL, *schedule, "--logdir", logdir]
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "train.py", *args], cwd=REPO, stdout=log, stderr=log
        )
        try:
            deadline = time.time() + 240
            while not os.path.exists(os.path.join(logdir, f"model-{2 * spe}.index")):
                assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
                assert time.time() < deadline, "no checkpoint after 240 s"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished
    assert not os.path.exists(os.path.join(logdir, "done.json"))
    killed_at = runrecord.latest_checkpoint(logdir)[1]
    assert 2 * spe <= killed_at < epochs * spe
    # as if it had started on another machine (issue 24)
    path = os.path.join(logdir, "settings.json")
    doc = read_json(path)
    doc["machine"][0]["cpu"]["model"] = "Another CPU"
    runrecord.write_json(path, doc)

    out = run_train(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Resuming from {logdir}/model-{killed_at}" in out.stdout + out.stderr
    done = read_json(os.path.join(logdir, "done.json"))
    assert done == {"global_step": epochs * spe, "epoch": epochs}
    assert runrecord.latest_checkpoint(logdir)[1] == epochs * spe
    first, here = read_json(path)["machine"]  # both machines, this one from the step it resumed at
    assert first["cpu"]["model"] == "Another CPU" and here["from_step"] == killed_at
    assert here["cpu"]["model"] != first["cpu"]["model"]

    stats = read_json(os.path.join(logdir, "stats.json"))
    assert [s["epoch_num"] for s in stats] == list(range(1, epochs + 1))  # none lost, none twice
    assert [s["global_step"] for s in stats] == [spe * e for e in range(1, epochs + 1)]
    # a kill between the checkpoint and the JSON write leaves that epoch's entry bare (resume.trim_stats):
    # only the epoch of the checkpoint resumed from may lack the logged statistics
    assert [s["global_step"] for s in stats if "learning-rate" not in s] in ([], [killed_at])
    for s in stats:  # the rate each epoch trained with, as logged at its end
        if "learning-rate" in s:
            assert s["learning-rate"] == pytest.approx(
                lr_at_epoch(0.1, step_epochs, 0.1, s["epoch_num"])
            )
    # each checkpoint holds the rate its next epoch uses (saved after the setter), so a run
    # resumed from it starts right; the last one keeps the final rate
    kept = tf.train.get_checkpoint_state(logdir).all_model_checkpoint_paths
    assert len(kept) >= 3
    for prefix in kept:
        epoch = int(prefix.rsplit("-", 1)[1]) // spe
        expected = lr_at_epoch(0.1, step_epochs, 0.1, min(epoch + 1, epochs))
        assert tf.train.load_variable(prefix, "learning_rate") == pytest.approx(expected), prefix
