"""The layout and precision code paths, run on the CPU (towers and clusters: test_gpu_towers.py).

* NCHW: the same variables as NHWC; a checkpoint trained in NCHW on the CPU (oneDNN)
  evaluates in evaluate.py's NHWC graph to the same numbers; without oneDNN a clear error;
* the fp16 static loss scale, at graph level;
* ``--amp``: learns on a CPU with bf16 arithmetic, refused with a clear error elsewhere.
"""

import dataclasses
import json
import os

import numpy as np
import pytest

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
import tensorflow as tf
from tensorpack.tfutils.tower import TowerContext


import runrecord
from models.loss import FP16_LOSS_SCALE
from models.resnet import INPUT_IMAGE, INPUT_LABEL, CAMModel
from tests.conftest import SMALL_3STEPS, assert_cam_identity, evaluate_cams, refused, run_py
from runrecord.machine import cpu_supports_bf16

tf1 = tf.compat.v1


# --------------------------------------------------------------------------- layouts


def _variables(data_format):
    g = tf.Graph()
    with g.as_default():
        model = CAMModel(
            runrecord.ModelSettings(
                18, 4, [32, 40], width_mult=0.0625, mean_bgr=[100, 110, 120], std_bgr=[60, 60, 60]
            ),
            runrecord.TrainSettings(aug="cam", batch=8, data_format=data_format),
        )
        image = tf1.placeholder(tf.uint8, (None, 32, 40, 3), INPUT_IMAGE)
        label = tf1.placeholder(tf.int32, (None,), INPUT_LABEL)
        with TowerContext("", is_training=True):
            cost = model.build_graph(image, label)
        model.get_optimizer().minimize(cost)
        return {(v.op.name, tuple(v.shape.as_list())) for v in tf1.global_variables()}


def test_nchw_and_nhwc_training_graphs_save_the_same_variables():
    """So an NCHW-trained checkpoint restores into evaluate.py's NHWC graph (no layout-specific
    variable; the graph-level half of test_nchw_checkpoint_evaluates_like_nhwc)."""
    assert _variables("NCHW") == _variables("NHWC")


@pytest.mark.slow
def test_nchw_checkpoint_evaluates_like_nhwc(tiny_data, tmp_path):
    """NCHW training on the CPU (TensorFlow's oneDNN kernels, on by tf_env): evaluate.py's NHWC
    graph restores the checkpoint with ``cams.mean() + bias == logit``, and gives the same
    features, FC weights and logits as the NCHW graph the checkpoint was trained in."""
    from dataflow.tinyimagenet import load_split
    from evaluation.runner import build_predictor

    logdir = str(tmp_path / "nchw")
    flags = "--batch 8 --epochs 1 --data-format NCHW".split()
    run_py("train.py", "--data", tiny_data, *SMALL_3STEPS, *flags, "--logdir", logdir)
    assert_cam_identity(evaluate_cams(tiny_data, logdir, tmp_path / "cams.npz"))
    settings = runrecord.load_settings(logdir)
    prefix, _ = runrecord.latest_checkpoint(logdir)
    images = load_split(tiny_data, "val", progress=False).images[:8]
    nhwc = build_predictor(settings.model, prefix)(images)
    nchw_train = dataclasses.replace(settings.train, data_format="NCHW")
    nchw = build_predictor(settings.model, prefix, nchw_train)(images)
    for a, b in zip(nhwc, nchw):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_nchw_on_the_cpu_without_onednn_is_a_clear_error(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    nchw = ["--batch", "8", "--data-format", "NCHW", "--logdir", str(tmp_path / "x")]
    message = refused(["--data", tiny_data, *SMALL_3STEPS, *nchw])
    assert message.startswith("--data-format NCHW on the CPU needs TensorFlow's oneDNN kernels")


# --------------------------------------------------------------------------- precisions


def _one_step(amp):
    """One step of CAMModel's optimizer (Nesterov momentum; with ``amp="fp16"`` wrapped in the
    static loss scale) on a small least-squares loss, fp32 math.

    Returns (gradients the inner optimizer computed, gradients returned, variables after the
    step by name, names of the variables the step created)."""
    g = tf.Graph()
    with g.as_default():
        rng = np.random.RandomState(0)
        x, y = tf.constant(rng.randn(5, 3), tf.float32), tf.constant(rng.randn(5, 2), tf.float32)
        w = tf1.get_variable("w", initializer=tf.constant(rng.randn(3, 2), tf.float32))
        b = tf1.get_variable("b", initializer=tf.zeros([2]))
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y))
        model = CAMModel(
            runrecord.ModelSettings(18, 2, [32, 40], mean_bgr=[0, 0, 0], std_bgr=[1, 1, 1]),
            runrecord.TrainSettings(aug="cam", batch=8, lr=0.1, amp=amp),
        )
        opt = model.get_optimizer()
        inner = opt._opt if amp else opt
        raw, compute = [], inner.compute_gradients
        inner.compute_gradients = lambda *a, **k: raw.extend(compute(*a, **k)) or list(raw)
        before = {v.op.name for v in tf1.global_variables()}
        grads = opt.compute_gradients(loss, var_list=[w, b])
        step = opt.apply_gradients(grads)
        created = sorted(v.op.name for v in tf1.global_variables() if v.op.name not in before)
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            raw_v, grad_v = sess.run([[gr for gr, _ in raw], [gr for gr, _ in grads]])
            sess.run(step)
            sess.run(step)  # twice: the momentum slots take part too
            after = sess.run({v.op.name: v.read_value() for v in tf1.global_variables()})
    return raw_v, grad_v, after, created


def test_fp16_loss_scale_changes_neither_gradients_nor_variables():
    scale = FP16_LOSS_SCALE
    raw_plain, plain, after_plain, created_plain = _one_step(False)
    raw_scaled, scaled, after_scaled, created_scaled = _one_step("fp16")
    assert scale > 1
    for r, p in zip(raw_scaled, raw_plain):  # differentiated: scale x the loss
        np.testing.assert_allclose(r, scale * p, rtol=1e-6)
    for s, p in zip(scaled, plain):  # returned: divided back
        np.testing.assert_allclose(s, p, rtol=1e-6)
    # no variable of its own
    assert created_scaled == created_plain and "w/Momentum" in created_plain
    variables = {"w", "b", "w/Momentum", "b/Momentum", "learning_rate"}
    assert after_scaled.keys() == after_plain.keys() == variables
    for name in after_plain:  # the same update of the same variables
        np.testing.assert_allclose(after_scaled[name], after_plain[name], rtol=1e-6)
    assert np.abs(after_plain["b"]).min() > 0  # b started at 0: the steps did update


@pytest.mark.slow
def test_amp_on_this_cpu(tiny_data, tmp_path):
    """--amp is TF's oneDNN bf16 rewrite on a CPU with AVX512_BF16/AMX; elsewhere a clear error."""
    logdir = str(tmp_path / "amp")
    if not cpu_supports_bf16():  # e.g. AMD Zen 3 and older, Intel before Cooper Lake
        amp = ["--data", tiny_data, "--aug", "cam", "--amp", "--logdir", logdir]
        assert "AVX512_BF16" in refused(amp)
        return
    net = "--depth 18 --aug cam --batch 16 --width-mult 0.25 --threads 2".split()
    schedule = "--epochs 8 --lr-step-epochs 8 --val-every 8 --amp".split()
    run_py("train.py", "--data", tiny_data, *net, *schedule, "--logdir", logdir)
    with open(os.path.join(logdir, "stats.json")) as f:
        stats = json.load(f)
    assert stats[-1]["xentropy-loss"] < 0.8 * stats[0]["xentropy-loss"]
