"""train.py and training/: flags, schedule, logdir rules, short runs, kill -9 and resume."""
import dataclasses
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import tf_env  # noqa: F401
import tensorflow as tf
from tensorpack.callbacks import ScheduledHyperParamSetter
from tensorpack.train import SimpleTrainer

import train
from errors import UserError
from training import callbacks as cbs
import runrecord
from runrecord import command
from tests.conftest import REPO, SMALL, run_script
from training import devices, resume, session

tf1 = tf.compat.v1
FUTURE_WARNING = "will trigger an error in the future"


def run_train(*args, timeout=300):
    return run_script("train.py", *args, timeout=timeout)


def read_json(path):
    with open(path) as f:
        return json.load(f)


# --------------------------------------------------------------------------- schedule

def test_lr_schedule_paper_defaults_at_the_step_boundaries():
    schedule = cbs.lr_schedule(0.1, 250, 0.1, 1500)   # paper sec. 3
    assert [e for e, _ in schedule] == [0, 250, 500, 750, 1000, 1250]
    np.testing.assert_allclose([v for _, v in schedule], [0.1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6])
    for epoch, expected in [(1, 0.1), (250, 0.1), (251, 0.01), (500, 0.01), (501, 1e-3), (1500, 1e-6)]:
        assert cbs.lr_at_epoch(0.1, 250, 0.1, epoch) == pytest.approx(expected)


def test_tensorpack_setter_follows_lr_at_epoch():
    """Replay ScheduledHyperParamSetter's rule: the value set after epoch e is used by epoch e + 1."""
    setter = ScheduledHyperParamSetter("learning_rate", cbs.lr_schedule(0.1, 3, 0.5, 10))
    current = None
    for finished in range(0, 10):
        value = setter._get_value_to_set_at_point(finished)
        current = value if value is not None else current
        assert current == pytest.approx(cbs.lr_at_epoch(0.1, 3, 0.5, finished + 1)), finished


# --------------------------------------------------------------------------- devices, session

def test_batch_split_per_tower_and_rank():
    assert command.split_batch(256, 4, "GPUs") == 64
    with pytest.raises(UserError, match="divide by the number of GPUs"):
        command.split_batch(256, 3, "GPUs")
    assert command.split_batch(256, 8, "towers") == 32
    with pytest.raises(UserError, match="towers"):
        command.split_batch(100, 8, "towers")
    assert isinstance(devices.make_trainer(0), SimpleTrainer)


def test_session_config_is_unthrottled_and_sets_amp_and_xla(tiny_data):
    cores = session.available_cores()
    assert train.validate(train.parse_args(["--data", tiny_data, "--aug", "gr"])).threads == cores
    plain = session.session_config(threads=cores)
    assert plain.intra_op_parallelism_threads == cores   # tensorpack's default is 1
    rw = session.session_config(threads=2, amp="bf16").graph_options.rewrite_options
    assert rw.auto_mixed_precision_onednn_bfloat16 == 1 and rw.auto_mixed_precision == 0
    rw = session.session_config(threads=2, amp="fp16").graph_options.rewrite_options
    assert rw.auto_mixed_precision == 1
    assert session.session_config(threads=2, xla=True).graph_options.optimizer_options.global_jit_level == 1


# --------------------------------------------------------------------------- flags, environment

# the fields no flag sets: from the data, the machine (the environment) or other fields
NOT_FLAGS = ("num_classes", "image_shape", "mean_bgr", "std_bgr", "final_step", "batch_per_tower", "machines")


def test_every_setting_is_a_flag_with_its_default_or_derived(tiny_data):
    parser = command.parser()
    flags = {a.dest: a for a in parser._actions}
    for cls in (runrecord.ModelSettings, runrecord.TrainSettings, runrecord.SpeedSettings):
        for f in dataclasses.fields(cls):
            assert (f.name in NOT_FLAGS) != runrecord.settings.is_flag(cls, f.name), f.name
            if f.name in NOT_FLAGS:
                continue
            flag = flags[runrecord.settings.flag_name(cls, f.name)[2:].replace("-", "_")]
            default = runrecord.field_default(cls, f.name)
            if f.metadata["auto"]:   # resolved from the recipe, the data or the machine
                assert flag.default is None, f.name
            elif not flag.required:
                assert flag.default == (not default if f.metadata["invert"] else default), f.name
    # and the settings of the flags' defaults are the fields' defaults
    s = train.make_settings(train.parse_args(["--data", tiny_data, "--aug", "gr", "--threads", "0"]),
                            command.Env(gpus=0, towers=1, batch_per_tower=0, amp=False, workers=0, threads=0),
                            {"train_used": 300}, 4, [32, 40])
    for cls, values in ((runrecord.ModelSettings, s.model), (runrecord.TrainSettings, s.train),
                        (runrecord.SpeedSettings, s.speed)):
        for f in dataclasses.fields(cls):
            if f.name not in NOT_FLAGS + ("aug", "steps_per_epoch"):
                assert getattr(values, f.name) == runrecord.field_default(cls, f.name), f.name


def make_env(data, *argv, gpus=0, cores=6, bf16=False, onednn=True):
    flags = command.parse_args(["--data", data, "--aug", "gr", "--logdir", "unused", *argv])
    return command.make_env(flags, command.Machine(gpus=gpus, cores=cores, bf16=bf16, onednn=onednn))


def test_the_environment_from_the_flags_and_the_machines_facts(tiny_data):
    env = functools.partial(make_env, tiny_data)
    assert env() == command.Env(gpus=0, towers=1, batch_per_tower=256, amp=False, workers=0, threads=6)
    assert env("--amp", "--batch", "32", "--threads", "2", "--towers", "2", bf16=True) == command.Env(
        gpus=0, towers=2, batch_per_tower=16, amp="bf16", workers=0, threads=2)
    assert env("--amp", gpus=4, cores=20) == command.Env(gpus=4, towers=4, batch_per_tower=64, amp="fp16",
                                                         workers=8, threads=20)
    assert env("--gpus", "2", "--workers", "1", gpus=4, cores=6).workers == 1
    assert env(gpus=2, cores=6).workers == 3   # about half the cores feed the GPUs
    two = env("--cluster", "a:1,b:2", gpus=2)
    assert (two.towers, two.size, two.cluster, two.batch_per_tower) == (4, 2, ("a:1", "b:2"), 64)
    env("--data-format", "NCHW")   # oneDNN's CPU kernels take NCHW
    for argv, facts, message in [(["--amp"], {}, "AVX512_BF16"), (["--gpus", "5"], {"gpus": 4}, r"only 4 GPU\(s\) visible"),
                                 (["--data-format", "NCHW"], {"onednn": False}, "oneDNN"),
                                 (["--xla"], {}, "GPU kernels only"), (["--batch", "9", "--towers", "2"], {}, r"towers \(2\)"),
                                 (["--towers", "2"], {"gpus": 1}, "a CPU test aid")]:
        with pytest.raises(UserError, match=message):
            env(*argv, **facts)


# --------------------------------------------------------------------------- logdir rules

def test_trim_stats_drops_entries_after_the_checkpoint(tmp_path):
    stats = [{"epoch_num": e, "global_step": 6 * e, "cost": 1.0} for e in (1, 2, 3)]
    runrecord.write_json(tmp_path / "stats.json", stats)
    resume.trim_stats(str(tmp_path), 12, 2)
    assert [s["epoch_num"] for s in read_json(tmp_path / "stats.json")] == [1, 2]
    # killed between the checkpoint of epoch 3 and its stats entry: a bare entry keeps the history
    resume.trim_stats(str(tmp_path), 18, 3)
    assert read_json(tmp_path / "stats.json")[-1] == {"epoch_num": 3, "global_step": 18}


# --------------------------------------------------------------------------- bad input

def _fails_before_any_graph(argv, capsys):
    """Run train.main in-process; return (exit code, stderr). No op may have been built."""
    with tf.Graph().as_default() as g:
        with pytest.raises((SystemExit, UserError)) as info:
            train.main(argv)
        assert g.get_operations() == []
    if info.type is UserError:
        return 2, str(info.value)
    return info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--aug", "gr"], "--data"),
    (["--aug", "mixup"], "invalid choice: 'mixup'"),
    (["--aug", "gr", "--depth", "50"], "invalid choice: 50"),
    (["--aug", "gr", "--batch", "0"], "positive integer"),
    (["--aug", "gr", "--batch", "12.5"], "positive integer"),
    (["--aug", "gr", "--epochs", "-1"], "an integer in [1, 1000000]"),
    (["--aug", "gr", "--lr", "nan"], "positive number"),
    # issue 9: refused only after the data loaded (seed) or not at all (non-finite floats)
    (["--aug", "gr", "--seed", "-1"], "a seed in [0, 2147483646]"),
    (["--aug", "gr", "--wd", "nan"], "non-negative number"),
    (["--aug", "gr", "--wd", "inf"], "non-negative number"),
    (["--aug", "gr", "--momentum", "nan"], "in [0, 1)"),
    (["--aug", "gr", "--lr-decay", "inf"], "positive number"),
    (["--aug", "gr", "--early-grad-scale", "nan"], "positive number"),
    (["--aug", "gr", "--holdout", "-2"], "non-negative integer"),
    (["--aug", "gr", "--normalize", "bgr"], "invalid choice: 'bgr'"),
    # issue 8: abbreviations are refused, not taken for --depth / --batch
    (["--aug", "gr", "--dep", "34"], "unrecognized arguments: --dep"),
    (["--aug", "gr", "--bat", "32"], "unrecognized arguments: --bat"),
])
def test_bad_flags_exit_2_with_one_message(argv, message, tiny_data, capsys):
    if "--data" != message:
        argv = ["--data", tiny_data] + argv
    code, err = _fails_before_any_graph(argv, capsys)
    assert code == 2 and message in err


def test_bad_paths_and_devices_are_refused(tiny_data, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [
        (["--data", str(tmp_path / "missing")], "no such directory"),
        (["--data", str(a_file)], "is a file, not a folder"),
        (["--data", str(tmp_path)], "no wnids.txt"),
        (["--data", tiny_data, "--logdir", str(a_file / "log")], "cannot be created"),
        (["--data", tiny_data, "--gpus", "4"], "GPU(s) visible"),
        (["--data", tiny_data, "--xla"], "GPU kernels only"),
    ]
    for argv, message in cases:
        code, err = _fails_before_any_graph(argv + ["--aug", "gr", "--logdir", str(tmp_path / "log")]
                                            if "--logdir" not in argv else argv + ["--aug", "gr"], capsys)
        assert code == 2 and message in err, (argv, err)


def test_bad_input_in_a_subprocess_is_one_line_on_stderr(tmp_path):
    out = run_train("--data", str(tmp_path / "nowhere"), "--aug", "gr", timeout=120)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith(
        f"train.py: error: argument --data: {tmp_path / 'nowhere'}: no such directory")
    assert "Traceback" not in out.stderr


# --------------------------------------------------------------------------- short runs

def test_short_run_then_rerun_refuse_and_moved_data(tiny_data, tmp_path):
    logdir = str(tmp_path / "run")
    args = ["--data", tiny_data, *SMALL, "--epochs", "3", "--lr-step-epochs", "2", "--val-every", "2",
            "--logdir", logdir]
    out = run_train(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    assert FUTURE_WARNING not in out.stdout + out.stderr
    assert read_json(os.path.join(logdir, "done.json")) == {"global_step": 18, "epoch": 3}
    assert os.path.exists(os.path.join(logdir, "model-18.index"))
    settings = read_json(os.path.join(logdir, "settings.json"))
    assert settings["model"]["num_classes"] == 4 and settings["model"]["image_shape"] == [32, 40]
    assert settings["model"]["width_mult"] == 0.125 and settings["train"]["batch"] == 8
    assert settings["train"]["steps_per_epoch"] == 6 and "git_commit" in settings
    stats = read_json(os.path.join(logdir, "stats.json"))
    assert [s["epoch_num"] for s in stats] == [1, 2, 3]
    assert all(np.isfinite(s["cost"]) for s in stats)
    assert [("val-error-top1" in s) for s in stats] == [False, True, True]   # every 2 epochs and the last

    again = run_train(*args)
    assert again.returncode == 0 and "training finished" in again.stdout

    changed = run_train(*args, "--lr", "0.05")
    assert changed.returncode == 2 and "train.lr: 0.1 -> 0.05" in changed.stderr

    moved = str(tmp_path / "moved")
    shutil.copytree(tiny_data, moved, ignore=shutil.ignore_patterns(".cache"))
    args[args.index(tiny_data)] = moved
    relocated = run_train(*args)
    assert relocated.returncode == 0 and "training finished" in relocated.stdout, relocated.stderr[-2000:]


@pytest.mark.skipif(not session.cpu_supports_bf16(), reason="needs a CPU with AVX512_BF16 or AMX")
def test_amp_run_on_cpu_uses_bf16(tiny_data, tmp_path):
    logdir = str(tmp_path / "amp")
    out = run_train("--data", tiny_data, *SMALL, "--epochs", "2", "--amp", "--logdir", logdir)
    assert out.returncode == 0, out.stderr[-3000:]
    assert read_json(os.path.join(logdir, "settings.json"))["train"]["amp"] == "bf16"
    assert all(np.isfinite(s["cost"]) for s in read_json(os.path.join(logdir, "stats.json")))


def test_kill_9_and_rerun_ends_at_the_planned_step_with_the_schedule_intact(tiny_data, tmp_path):
    logdir = str(tmp_path / "resume")
    epochs, step_epochs, spe = 12, 4, 6
    args = ["--data", tiny_data, *SMALL, "--epochs", str(epochs), "--lr-step-epochs", str(step_epochs),
            "--val-every", "100", "--logdir", logdir]
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen([sys.executable, "train.py", *args], cwd=REPO, stdout=log, stderr=log)
        try:
            deadline = time.time() + 240
            while not os.path.exists(os.path.join(logdir, f"model-{2 * spe}.index")):
                assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
                assert time.time() < deadline, "no checkpoint after 240 s"
                time.sleep(0.05)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL   # killed mid-run, not finished
    assert not os.path.exists(os.path.join(logdir, "done.json"))
    killed_at = runrecord.latest_checkpoint(logdir)[1]
    assert 2 * spe <= killed_at < epochs * spe

    out = run_train(*args)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Resuming from {logdir}/model-{killed_at}" in out.stdout + out.stderr
    assert read_json(os.path.join(logdir, "done.json")) == {"global_step": epochs * spe, "epoch": epochs}
    assert runrecord.latest_checkpoint(logdir)[1] == epochs * spe

    stats = read_json(os.path.join(logdir, "stats.json"))
    assert [s["epoch_num"] for s in stats] == list(range(1, epochs + 1))   # none lost, none twice
    assert [s["global_step"] for s in stats] == [spe * e for e in range(1, epochs + 1)]
    for s in stats:   # the rate each epoch trained with, as logged at its end
        assert s["learning-rate"] == pytest.approx(cbs.lr_at_epoch(0.1, step_epochs, 0.1, s["epoch_num"]))
    # each checkpoint holds the rate its next epoch uses (saved after the setter), so a run
    # resumed from it starts right; the last one keeps the final rate
    kept = tf.train.get_checkpoint_state(logdir).all_model_checkpoint_paths
    assert len(kept) >= 3
    for prefix in kept:
        epoch = int(prefix.rsplit("-", 1)[1]) // spe
        expected = cbs.lr_at_epoch(0.1, step_epochs, 0.1, min(epoch + 1, epochs))
        assert tf.train.load_variable(prefix, "learning_rate") == pytest.approx(expected), prefix
