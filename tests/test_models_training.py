"""models/: the training step: weight decay, the fp16 loss scale, the early-layer gradient scale, a non-finite loss."""

import numpy as np
import pytest

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
import tensorflow as tf
from tensorpack.tfutils.tower import TowerContext

from models.loss import FP16_LOSS_SCALE, NONFINITE_LOSS
from models.resnet import INPUT_IMAGE, INPUT_LABEL
from tests.conftest import MEAN, STD, build, cam_model

tf1 = tf.compat.v1
tf1.disable_eager_execution()


def test_weight_decay_applies_to_conv_and_fc_weights_only():
    model = cam_model(18, 4, (32, 40), width_mult=0.0625, weight_decay=1e-4)
    g, _ = build(model, training=True)
    with g.as_default():
        wd = g.get_tensor_by_name("wd_cost:0")
        variables = tf1.trainable_variables()
        grads = tf1.gradients(wd, variables)
        decayed = {v.op.name for v, gr in zip(variables, grads) if gr is not None}
        expected = {
            v.op.name for v in variables if len(v.shape) in (2, 4)
        }  # conv kernels and the FC matrix
        assert decayed == expected
        assert "linear/W" in decayed and "linear/b" not in decayed
        assert not any(n.endswith(("gamma", "beta")) for n in decayed)
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            value, weights = sess.run([wd, [v for v in variables if v.op.name in expected]])
        assert value == pytest.approx(
            1e-4 * sum((w.astype(np.float64) ** 2).sum() for w in weights) / 2, rel=1e-5
        )


def test_fp16_loss_scale_returns_unscaled_gradients():
    """amp="fp16" multiplies the loss before differentiating and divides the gradients after;
    without the GPU's fp16 rewrite (here, fp32 math) the gradients equal the plain ones."""
    model = cam_model(18, 4, (32, 40), width_mult=0.0625, amp="fp16")
    g, cost = build(model, batch=2, training=True)
    with g.as_default():
        variables = tf1.trainable_variables()
        scaled = model.get_optimizer().compute_gradients(cost, var_list=variables)
        plain = tf1.gradients(cost, variables)
        feed = {
            INPUT_IMAGE + ":0": np.random.RandomState(2)
            .randint(0, 256, (2, 32, 40, 3))
            .astype(np.uint8),
            INPUT_LABEL + ":0": np.array([1, 3], np.int32),
        }
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            a, b = sess.run([[gr for gr, _ in scaled], plain], feed)
    assert FP16_LOSS_SCALE > 1
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-6)


def test_narrow_net_on_64x64_trains_without_crashing(tmp_path):
    # Regression: with an 8-channel 64x64 input to a 1x1 stride-2 projection, TF 2.21's
    # oneDNN filter gradient crashed the process ("double free"). Run out of process.
    import subprocess
    import sys

    script = f"""
import tf_env
import numpy as np, tensorflow as tf
from tensorpack.tfutils.tower import TowerContext
from models.resnet import CAMModel
from runrecord import ModelSettings, TrainSettings
tf1 = tf.compat.v1
tf1.disable_eager_execution()
m = CAMModel(ModelSettings(18, 3, [64, 64], width_mult=0.125, mean_bgr={MEAN}, std_bgr={STD}),
             TrainSettings(aug="cam", batch=8))
image = tf1.placeholder(tf.uint8, (None, 64, 64, 3))
label = tf1.placeholder(tf.int32, (None,))
with TowerContext("", is_training=True):
    cost = m.build_graph(image, label)
step = m.optimizer().minimize(cost)
with tf1.Session() as s:
    s.run(tf1.global_variables_initializer())
    for _ in range(3):
        s.run(step, {{image: np.random.randint(0, 255, (8, 64, 64, 3)), label: [0, 1, 2, 0, 1, 2, 0, 1]}})
print("trained")
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "trained" in out.stdout


def one_step_deltas(early_grad_scale, images, labels, lr=0.5):
    """Every trainable variable's change after one optimizer step on ``images``, from the same init."""
    model = cam_model(
        18, 3, images.shape[1:3], width_mult=0.125, lr=lr, early_grad_scale=early_grad_scale
    )
    g = tf.Graph()
    with g.as_default():
        tf1.set_random_seed(0)
        image = tf1.placeholder(tf.uint8, images.shape, INPUT_IMAGE)
        label = tf1.placeholder(tf.int32, labels.shape, INPUT_LABEL)
        with TowerContext("", is_training=True):
            cost = model.build_graph(image, label)
        opt = model.optimizer()
        step = opt.apply_gradients(opt.compute_gradients(cost))
        variables = tf1.trainable_variables()
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            before = sess.run(variables)
            sess.run(step, {image: images, label: labels})
            after = sess.run(variables)
    return {v.op.name: (b, a - b) for v, b, a in zip(variables, before, after)}


def test_early_grad_scale_scales_exactly_conv0_and_groups_0_to_2():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 24, 20, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2, 1], np.int32)
    plain, scaled = one_step_deltas(1.0, images, labels), one_step_deltas(0.1, images, labels)
    early = [n for n in plain if n.split("/")[0] in ("conv0", "group0", "group1", "group2")]
    late = [n for n in plain if n not in early]
    assert {n.split("/")[0] for n in late} == {"group3", "linear"} and len(early) > 20
    for name in plain:
        np.testing.assert_array_equal(plain[name][0], scaled[name][0])  # same initial weights
        expected = plain[name][1] * (0.1 if name in early else 1.0)
        assert np.abs(plain[name][1]).max() > 0, name
        # float32 rounding of (after - before) is ~1e-8 here; the scale makes 90% differences
        np.testing.assert_allclose(scaled[name][1], expected, rtol=1e-3, atol=1e-7, err_msg=name)


def test_a_nonfinite_loss_stops_the_step_before_any_weight_changes():
    model = cam_model(
        18, 3, (24, 20), width_mult=0.125, weight_decay=float("inf")
    )  # train.py refuses it; here it makes the loss inf
    g = tf.Graph()
    with g.as_default():
        image = tf1.placeholder(tf.uint8, (2, 24, 20, 3), INPUT_IMAGE)
        label = tf1.placeholder(tf.int32, (2,), INPUT_LABEL)
        with TowerContext("", is_training=True):
            cost = model.build_graph(image, label)
        opt = model.optimizer()
        step = opt.apply_gradients(opt.compute_gradients(cost))
        w = [v for v in tf1.trainable_variables() if v.op.name == "linear/W"][0]
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            before = sess.run(w)
            with pytest.raises(tf.errors.InvalidArgumentError, match=NONFINITE_LOSS):
                sess.run(step, {image: np.zeros((2, 24, 20, 3), np.uint8), label: [0, 1]})
            np.testing.assert_array_equal(sess.run(w), before)
