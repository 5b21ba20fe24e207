"""train.py's flags, the settings and environment made from them, and its bad-input messages (in-process)."""

import dataclasses
import functools
import subprocess
import sys

import pytest

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
import tensorflow as tf
from tensorpack.train import SimpleTrainer

import train
from errors import UserError
from procs import available_cores
import runrecord
from runrecord import command
from runrecord.machine import Machine
from training import devices, machine, session
from tests.conftest import REPO


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
    cores = available_cores()
    assert (
        command.make_env(
            command.parse_args(["--data", tiny_data, "--aug", "gr"]), machine.facts()
        ).threads
        == cores
    )
    plain = session.session_config(threads=cores)
    assert plain.intra_op_parallelism_threads == cores  # tensorpack's default is 1
    rw = session.session_config(threads=2, amp="bf16").graph_options.rewrite_options
    assert rw.auto_mixed_precision_onednn_bfloat16 == 1 and rw.auto_mixed_precision == 0
    rw = session.session_config(threads=2, amp="fp16").graph_options.rewrite_options
    assert rw.auto_mixed_precision == 1
    assert (
        session.session_config(threads=2, xla=True).graph_options.optimizer_options.global_jit_level
        == 1
    )


# --------------------------------------------------------------------------- flags, environment

# the fields no flag sets: from the data, the machine (the environment) or other fields
NOT_FLAGS = (
    "num_classes",
    "image_shape",
    "mean_bgr",
    "std_bgr",
    "final_step",
    "batch_per_tower",
    "machines",
)


RESOLVED = (
    "amp",
    "threads",
    "workers",
    "gpus",
)  # flags that reach their field through the environment


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
            if f.metadata["auto"]:  # resolved from the recipe, the data or the machine
                assert flag.default is None, f.name
            elif not flag.required:
                assert flag.default == (not default if f.metadata["invert"] else default), f.name
    # every flag reaches its field: a value other than the default for each, through make_settings
    argv, expected = ["--data", tiny_data], {}
    for cls in (runrecord.ModelSettings, runrecord.TrainSettings, runrecord.SpeedSettings):
        for f in dataclasses.fields(cls):
            if f.name in NOT_FLAGS + RESOLVED:
                continue
            default, meta = runrecord.field_default(cls, f.name), f.metadata
            value = (
                [c for c in meta["choices"] if c != default][-1]
                if meta.get("choices")
                else not default
                if isinstance(default, bool)
                else default / 2
                if isinstance(default, float)
                else default + 1
            )
            flag = runrecord.settings.flag_name(cls, f.name)
            argv += (
                [flag]
                if meta.get("action") == "store_true"
                else [f"--{'' if value else 'no-'}{f.name}"]
                if isinstance(value, bool)
                else [flag, str(value)]
            )
            expected[f.name] = value
    s = command.make_settings(
        command.parse_args(argv),
        command.Env(gpus=0, towers=1, batch_per_tower=0, amp=False, workers=0, threads=0),
        command.DataFacts({"train_used": 300}, 4, [32, 40]),
    )
    assert {
        k: v for part in (s.model, s.train, s.speed) for k, v in vars(part).items() if k in expected
    } == expected


def test_a_batch_larger_than_the_training_images_is_refused_with_the_data_named(tiny_data):
    for more in ([], ["--steps-per-epoch", "1"]):
        flags = command.parse_args(
            ["--data", tiny_data, "--aug", "gr", "--batch", "41", "--logdir", "unused", *more]
        )
        with pytest.raises(
            UserError, match=f"--batch 41: more than the 40 training images in {tiny_data}"
        ):
            command.resolve(
                flags, Machine(gpus=0), lambda _: command.DataFacts({"train_used": 40}, 4, [32, 40])
            )


def make_env(data, *argv, gpus=0, cores=6, bf16=False, onednn=True):
    flags = command.parse_args(["--data", data, "--aug", "gr", "--logdir", "unused", *argv])
    return command.make_env(flags, Machine(gpus=gpus, cores=cores, bf16=bf16, onednn=onednn))


def test_the_environment_from_the_flags_and_the_machines_facts(tiny_data):
    env = functools.partial(make_env, tiny_data)
    assert env() == command.Env(
        gpus=0, towers=1, batch_per_tower=256, amp=False, workers=0, threads=6
    )
    assert env(
        "--amp", "--batch", "32", "--threads", "2", "--towers", "2", bf16=True
    ) == command.Env(gpus=0, towers=2, batch_per_tower=16, amp="bf16", workers=0, threads=2)
    assert env("--amp", "--gpus", "4", gpus=4, cores=20) == command.Env(
        gpus=4, towers=4, batch_per_tower=64, amp="fp16", workers=6, threads=20
    )  # 4 x 8,000 / 6,000 img/s
    assert env("--gpus", "2", "--workers", "1", gpus=4, cores=6).workers == 1
    assert (
        env("--gpus", "2", gpus=2, cores=6).workers == 3
    )  # enough for 2 GPUs (runrecord.cost.default_workers)
    assert (
        env("--recipe", "sn-resnet", "--gpus", "2", gpus=2, cores=6).workers == 4
    )  # the jitter needs more: the cores less 2
    two = env("--cluster", "a:1,b:2", "--gpus", "2", gpus=2)
    assert (two.towers, two.size, two.cluster, two.batch_per_tower) == (4, 2, ("a:1", "b:2"), 64)
    env("--data-format", "NCHW")  # oneDNN's CPU kernels take NCHW
    for argv, facts, message in [
        (["--amp"], {}, "AVX512_BF16"),
        (["--xla"], {}, "GPU kernels only"),
        (["--gpus", "5"], {"gpus": 4}, r"only 4 GPU\(s\) visible"),
        (["--data-format", "NCHW"], {"onednn": False}, "oneDNN"),
        (["--batch", "9", "--towers", "2"], {}, r"towers \(2\)"),
        (["--towers", "2"], {"gpus": 1}, "a CPU test aid"),
    ]:
        with pytest.raises(UserError, match=message):
            env(*argv, **facts)


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


@pytest.mark.parametrize(
    "argv, message",
    [
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
    ],
)
def test_bad_flags_exit_2_with_one_message(argv, message, tiny_data, capsys):
    if "--data" != message:
        argv = ["--data", tiny_data] + argv
    code, err = _fails_before_any_graph(argv, capsys)
    assert code == 2 and message in err


def test_help_and_a_bad_flag_answer_without_tensorflow():
    """train.py parses before it imports TensorFlow (runrecord.command): --help and a bad flag end there."""
    probe = (
        "import sys, train\n"
        "try:\n    train.main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, sorted(m for m in ('tensorflow', 'tensorpack') if m in sys.modules), file=sys.stderr)"
    )
    for argv, said, code in (
        (["--help"], "--aug {", 0),
        (["--aug", "gr", "--dep", "34"], "--dep", 2),
    ):
        out = subprocess.run(
            [sys.executable, "-c", probe, *argv],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert said in out.stdout + out.stderr and out.stderr.strip().endswith(f"{code} []"), (
            out.stderr[-2000:]
        )


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
        code, err = _fails_before_any_graph(
            argv + ["--aug", "gr", "--logdir", str(tmp_path / "log")]
            if "--logdir" not in argv
            else argv + ["--aug", "gr"],
            capsys,
        )
        assert code == 2 and message in err, (argv, err)
