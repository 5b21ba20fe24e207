"""A GPU host, faked on the CPU (issue 23): what train.py resolves there, what it refuses, what it records.

* an NVIDIA device that TensorFlow cannot use: train.py refuses to fall back to the CPU silently;
* one GPU unless ``--gpus`` says more, so the per-tower batch never follows the machine;
* ``--threads`` is not compared where the model runs on GPUs; ``--tf32`` is;
* ``--cluster`` task 1 needs neither ``--data`` nor ``--logdir``;
* an fp16 gradient that overflows stops the step before any weight changes.
"""

import numpy as np
import pytest

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
import tensorflow as tf

from models.loss import FP16_LOSS_SCALE, NONFINITE_GRADIENT, StaticLossScale
from runrecord import RunSettings, command
from runrecord import machine as facts
from runrecord.machine import Machine
from tests.conftest import refused, run_settings
from training import machine, session, trainer

tf1 = tf.compat.v1


def _env(data, *argv, **known):
    flags = command.parse_args(["--data", data, "--aug", "gr", "--logdir", "unused", *argv])
    return command.make_env(flags, Machine(**{"gpus": 0, "cores": 6, **known}))


def _settings(data, *argv, **known):
    flags = command.parse_args(
        ["--data", data, "--aug", "gr", "--logdir", "unused", "--batch", "8", *argv]
    )
    return command.resolve(
        flags,
        Machine(**{"gpus": 0, "cores": 6, **known}),
        lambda _: command.DataFacts({"train_used": 40}, 4, [32, 40]),
    )[1]


def test_an_nvidia_device_that_tensorflow_cannot_use_is_refused(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(machine, "nvidia_device", lambda: "/dev/nvidiactl")
    monkeypatch.setattr(machine, "visible_gpus", lambda: 0)
    argv = ["--data", tiny_data, "--aug", "gr", "--logdir", str(tmp_path / "r")]
    message = refused(argv)
    assert "NVIDIA device is present (/dev/nvidiactl) but TensorFlow sees no GPU" in message
    assert "make gpu-venv" in message and "--gpus 0" in message
    assert (
        command.make_env(command.parse_args(argv + ["--gpus", "0"]), machine.facts()).gpus == 0
    )  # the CPU
    monkeypatch.setattr(machine, "visible_gpus", lambda: 1)
    assert command.make_env(command.parse_args(argv), machine.facts()).gpus == 1


@pytest.mark.parametrize(
    "visible, found", [(None, "/dev/nvidiactl"), ("", None), ("-1", None), ("0", "/dev/nvidiactl")]
)
def test_the_nvidia_probe_respects_hidden_devices(visible, found, monkeypatch):
    """CUDA_VISIBLE_DEVICES "" or "-1" hides the GPUs on purpose (the table scripts' CPU runs, gpu-check)."""
    real = facts.os.path.exists
    monkeypatch.setattr(facts.os.path, "exists", lambda p: p == "/dev/nvidiactl" or real(p))
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert facts.nvidia_device() == found


def test_one_gpu_unless_gpus_says_more(tiny_data):
    """8 visible GPUs do not split --batch 32 into 8 towers of 4 images."""
    one = _env(tiny_data, "--batch", "32", gpus=8)
    assert (one.gpus, one.towers, one.batch_per_tower) == (1, 1, 32)
    eight = _env(tiny_data, "--batch", "32", "--gpus", "8", gpus=8)
    assert (eight.gpus, eight.towers, eight.batch_per_tower) == (8, 8, 4)
    assert _env(tiny_data, gpus=0).gpus == 0


def test_threads_are_compared_on_the_cpu_only(tiny_data):
    assert (
        _settings(tiny_data, gpus=1, cores=6).differences(_settings(tiny_data, gpus=1, cores=12))
        == []
    )
    assert _settings(tiny_data, gpus=1, cores=6).train.threads == 0  # recorded as "not compared"
    assert _settings(tiny_data, cores=6).differences(_settings(tiny_data, cores=12)) == [
        "train.threads: 6 -> 12"
    ]


def test_tf32_is_a_recorded_compared_setting(tiny_data):
    off, on = _settings(tiny_data, gpus=1), _settings(tiny_data, "--tf32", gpus=1)
    assert (off.train.tf32, on.train.tf32) == (False, True)
    assert off.differences(on) == ["train.tf32: False -> True"]
    old = off.to_json()
    del old["train"][
        "tf32"
    ]  # a settings.json written before --tf32: TensorFlow's TF32 was on, but only on GPUs
    assert RunSettings.from_json(old).train.tf32 is False


def test_tf32_is_applied_before_the_graph(tiny_data, tmp_path):
    """build_config switches TensorFlow's TF32 as the settings say (the process-wide switch)."""
    for tf32 in (True, False):
        s = run_settings(**{"train.tf32": tf32})
        env = command.Env(gpus=0, towers=1, batch_per_tower=8, amp=False, workers=0, threads=2)
        from dataflow.tinyimagenet import load_split

        split = load_split(tiny_data, "train")
        with tf.Graph().as_default():
            trainer.build_config(s, env, split, load_split(tiny_data, "val"), None, 1, ())
        assert tf.config.experimental.tensor_float_32_execution_enabled() is tf32
    session.use_tf32(True)  # TensorFlow's default, for the tests after


def test_a_cluster_task_needs_neither_data_nor_logdir(tiny_data):
    args = command.parse_args(
        ["--aug", "gr", "--cluster", "a:1,b:2", "--task", "1", "--data", "/no/such/dir"]
    )
    assert (args.task, args.data, args.logdir) == (1, "/no/such/dir", None)
    assert command.parse_args(["--aug", "gr", "--cluster", "a:1,b:2", "--task", "1"]).data is None
    with pytest.raises(SystemExit):  # the chief does
        command.parse_args(["--aug", "gr", "--cluster", "a:1,b:2", "--task", "0"])


def _fp16_step(scale_of_loss):
    """One Nesterov step through StaticLossScale on ``loss = scale_of_loss * w``; returns (error or None, w)."""
    with tf.Graph().as_default():
        w = tf1.get_variable("w", initializer=1.0)
        opt = StaticLossScale(
            tf1.train.MomentumOptimizer(0.1, 0.9, use_nesterov=True), FP16_LOSS_SCALE
        )
        step = opt.apply_gradients(opt.compute_gradients(scale_of_loss * w))
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            try:
                sess.run(step)
                error = None
            except tf.errors.InvalidArgumentError as e:
                error = str(e)
            return error, sess.run(w)


def test_an_overflowed_fp16_gradient_stops_the_step_before_any_weight_changes():
    big = (
        float(np.finfo(np.float32).max) / FP16_LOSS_SCALE * 2
    )  # finite loss, infinite scaled gradient
    error, w = _fp16_step(big)
    assert error is not None and NONFINITE_GRADIENT in error
    assert w == 1.0
    error, w = _fp16_step(2.0)
    assert error is None and w != 1.0


# --------------------------------------------------------------------------- gpu-check's host lines

BUILD = {
    "cuda_compute_capabilities": ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"],
    "cuda_version": "12.5.1",
    "cudnn_version": "9",
    "is_cuda_build": True,
}  # TF 2.21.0's tf.sysconfig.get_build_info()


@pytest.mark.parametrize(
    "capability, driver, problem",
    [
        ((9, 0), "550.54.15", "older than R555"),  # H100/H200: PTX only, JIT-compiled by the driver
        ((9, 0), "555.42.02", None),
        ((8, 0), "535.104.05", None),  # A100: machine code
        ((8, 6), "535.104.05", None),  # sm_80's machine code runs on sm_86
        ((7, 5), "470.57.02", None),  # sm_70's on sm_75
        ((5, 2), "560.35.03", "has no kernel for sm_52"),
    ],
)
def test_the_driver_must_run_tensorflows_kernels(capability, driver, problem):
    from tools.gpu_host import driver_problem

    found = driver_problem(driver, capability, BUILD)
    assert (found is None) if problem is None else (problem in found)


def test_gpu_check_fails_where_tensorflow_sees_no_gpu_of_an_nvidia_host(
    monkeypatch, tmp_path, capsys
):
    from tools import gpu_check, gpu_host

    monkeypatch.setattr(gpu_host, "nvidia_device", lambda: "/dev/nvidiactl")
    smi = [{"name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15", "capability": (9, 0)}]
    lines, problems = gpu_host.report(smi=smi, build=BUILD, visible=0)
    assert "GPU 0: NVIDIA H100 80GB HBM3, compute capability 9.0, driver 550.54.15" in lines
    assert problems[0].startswith(
        "an NVIDIA device is present (/dev/nvidiactl) but TensorFlow sees no GPU"
    )
    assert any("older than R555" in p for p in problems)
    # gpu-check: the FAIL lines make it exit 1, even when every path it can run passes (stubbed here)
    monkeypatch.setattr(gpu_check.gpu_host, "report", lambda visible: (lines, problems))
    monkeypatch.setattr(gpu_check, "generate", lambda *a, **k: str(tmp_path))
    monkeypatch.setattr(gpu_check, "train", lambda *a, **k: (None, None))
    for name in ("identical", "determinism_cost", "evaluate", "data_feed"):
        monkeypatch.setattr(gpu_check, name, lambda *a, **k: None)
    assert gpu_check.check(str(tmp_path)) == 1
    assert "FAIL  GPU host" in capsys.readouterr().out
    monkeypatch.setattr(
        gpu_check.machine, "visible_gpus", lambda: 1
    )  # the driver alone: stop before any GPU run
    monkeypatch.setattr(
        gpu_check, "gpu_part", lambda *a: pytest.fail("GPU paths run with a driver too old")
    )
    assert gpu_check.check(str(tmp_path)) == 1


def test_train_py_names_an_fp16_overflow_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    """train.py's handling of the check's error (the step itself: the test above)."""
    from types import SimpleNamespace

    from errors import UserError

    def overflow(config, trainer):
        raise tf.errors.InvalidArgumentError(
            None, None, f"assertion failed: [{NONFINITE_GRADIENT}]"
        )

    monkeypatch.setattr(trainer, "launch_train_with_config", overflow)
    env = command.Env(gpus=1, towers=1, batch_per_tower=8, amp="fp16", workers=0, threads=2)
    with pytest.raises(
        UserError,
        match=r"an fp16 gradient overflowed .*static loss scale 128.*no checkpoint had "
        r"been written.*train without --amp",
    ):
        trainer.train_steps(env, SimpleNamespace(data=None, session_creator=None), str(tmp_path))
