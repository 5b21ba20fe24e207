"""models/: parameter counts, output shapes, the tensor names evaluation reads, weight decay."""
import dataclasses
import json

import numpy as np
import pytest

import tf_env  # noqa: F401
import tensorflow as tf
from tensorpack.predict import OfflinePredictor, PredictConfig
from tensorpack.tfutils.tower import TowerContext

import models
from models import FC_B, FC_W, FEATURES, INPUT_IMAGE, INPUT_LABEL, LOGITS, CAMModel
from runrecord import ModelSettings, TrainSettings

tf1 = tf.compat.v1
tf1.disable_eager_execution()

MEAN, STD = [104.0, 114.0, 123.0], [57.0, 57.0, 58.0]


def cam_model(depth, num_classes, image_shape, **fields):
    """``CAMModel(ModelSettings, TrainSettings)``; ``fields`` go to whichever settings has them."""
    model = {k: fields.pop(k) for k in list(fields) if k in ModelSettings.__dataclass_fields__}
    model = ModelSettings(depth, num_classes, list(image_shape), **dict(dict(mean_bgr=MEAN, std_bgr=STD), **model))
    return CAMModel(model, TrainSettings(aug="cam", batch=8, **fields))


def analytic_params(blocks, widths, num_classes, stem_kernel=7, in_ch=3):
    """Trainable parameters of a pre-activation ResNet + GAP + FC, counted by hand.

    Stem: k x k conv (no bias) + BN. Group g of n basic blocks of width c:
    the first block (input c_in, already activated) has conv1 3x3 c_in->c + BN,
    conv2 3x3 c->c and a 1x1 projection shortcut if c_in != c; every other block
    has a pre-activation BN, conv1 + BN, conv2; the group ends with a BN.
    BN has gamma and beta (2 per channel); FC has weights and bias.
    """
    total = stem_kernel * stem_kernel * in_ch * widths[0] + 2 * widths[0]
    c_in = widths[0]
    for n, c in zip(blocks, widths):
        total += 9 * c_in * c + 2 * c + 9 * c * c + (c_in * c if c_in != c else 0)
        total += (n - 1) * (2 * c + 9 * c * c + 2 * c + 9 * c * c)
        total += 2 * c
        c_in = c
    return total + c_in * num_classes + num_classes


def build(model, batch=None, training=False):
    """Build ``model`` in a new graph; return the graph and its cost."""
    g = tf.Graph()
    with g.as_default():
        h, w = model.image_shape
        image = tf1.placeholder(tf.uint8, (batch, h, w, 3), INPUT_IMAGE)
        label = tf1.placeholder(tf.int32, (batch,), INPUT_LABEL)
        with TowerContext("", is_training=training):
            cost = model.build_graph(image, label)
    return g, cost


@pytest.mark.parametrize("depth, published", [(18, 11_277_320), (34, 21_385_480)])
def test_param_count_matches_analytic_and_published(depth, published):
    model = cam_model(depth, 200, (64, 64))
    g, _ = build(model)
    with g.as_default():
        counted = sum(int(np.prod(v.shape)) for v in tf1.trainable_variables())
    analytic = analytic_params(models.DEPTHS[depth], (64, 128, 256, 512), 200)
    assert counted == analytic == models.param_count(depth, 1.0, 200)
    assert analytic == published   # the same count in TF and PyTorch (README "Speed")


def run_forward(model, images):
    g, _ = build(model)
    with g.as_default(), tf1.Session(graph=g) as sess:
        sess.run(tf1.global_variables_initializer())
        return sess.run([FEATURES + ":0", FC_W + ":0", FC_B + ":0", LOGITS + ":0"],
                        {INPUT_IMAGE + ":0": images, INPUT_LABEL + ":0": np.zeros(len(images), np.int32)})


def test_full_width_gives_16x16_map_from_64x64():
    model = cam_model(18, 200, (64, 64))
    images = np.random.RandomState(0).randint(0, 256, (1, 64, 64, 3)).astype(np.uint8)
    feats, w, b, logits = run_forward(model, images)
    assert feats.shape == (1, 16, 16, 512)
    assert w.shape == (512, 200) and b.shape == (200,) and logits.shape == (1, 200)


@pytest.mark.parametrize("final_stride, data_format, expect_hw", [
    (4, "NHWC", (8, 10)), (8, "NHWC", (4, 5)), (4, "NCHW", (8, 10))])
def test_non_square_shapes_and_cam_head_consistency(final_stride, data_format, expect_hw):
    """32x40 input: the map is H/stride x W/stride, NHWC even for NCHW convolutions, and
    logits == GAP(features) @ fc_W + fc_b, which is what a CAM computed from these names assumes."""
    model = cam_model(18, 5, (32, 40), width_mult=0.125, final_stride=final_stride, data_format=data_format)
    images = np.random.RandomState(1).randint(0, 256, (3, 32, 40, 3)).astype(np.uint8)
    feats, w, b, logits = run_forward(model, images)
    assert feats.shape == (3, *expect_hw, 64)   # 512 * 0.125
    assert w.shape == (64, 5) and b.shape == (5,) and logits.shape == (3, 5)
    assert (feats >= 0).all()   # after the final BN+ReLU
    np.testing.assert_allclose(feats.mean(axis=(1, 2)) @ w + b, logits, rtol=1e-4, atol=1e-4)


def test_predictor_takes_raw_uint8_and_returns_weights_not_handles():
    from training.session import SessionCreator, available_cores, session_config
    model = cam_model(18, 4, (32, 40), width_mult=0.0625)
    with tf.Graph().as_default():
        tf1.set_random_seed(0)   # its op determinism refuses unseeded random ops (the initialisers)
        # training's session creator serves prediction too (all cores, not tensorpack's 1 thread)
        pred = OfflinePredictor(PredictConfig(model=model, input_names=[INPUT_IMAGE],
                                              session_creator=SessionCreator(session_config()),
                                              output_names=[FEATURES, FC_W, FC_B, LOGITS], create_graph=False))
        assert pred.sess._config.intra_op_parallelism_threads == available_cores()
        images = np.full((2, 32, 40, 3), 200, np.uint8)
        feats, w, b, logits = pred(images)
    assert feats.shape == (2, 8, 10, 32) and w.shape == (32, 4) and w.dtype == np.float32
    assert logits.shape == (2, 4) and np.isfinite(logits).all()


def test_normalisation_happens_in_the_graph():
    """An image equal to the mean is all zeros after normalisation, so with the
    stem's BN at its initial state the stem sees zeros whatever mean is passed."""
    model = cam_model(18, 4, (32, 40), width_mult=0.0625)
    g, _ = build(model)
    with g.as_default(), tf1.Session(graph=g) as sess:
        sess.run(tf1.global_variables_initializer())
        stem_in = g.get_operation_by_name("conv0/Conv2D").inputs[0]
        mean_image = np.broadcast_to(np.array(MEAN, np.uint8), (1, 32, 40, 3))
        bright = np.full((1, 32, 40, 3), 255, np.uint8)
        x0, x1 = sess.run(stem_in, {INPUT_IMAGE + ":0": mean_image}), sess.run(stem_in, {INPUT_IMAGE + ":0": bright})
    np.testing.assert_allclose(x0, 0, atol=1e-6)
    np.testing.assert_allclose(x1[0, 0, 0], (255 - np.array(MEAN)) / np.array(STD), rtol=1e-6)


def test_weight_decay_applies_to_conv_and_fc_weights_only():
    model = cam_model(18, 4, (32, 40), width_mult=0.0625, weight_decay=1e-4)
    g, _ = build(model, training=True)
    with g.as_default():
        wd = g.get_tensor_by_name("wd_cost:0")
        variables = tf1.trainable_variables()
        grads = tf1.gradients(wd, variables)
        decayed = {v.op.name for v, gr in zip(variables, grads) if gr is not None}
        expected = {v.op.name for v in variables if len(v.shape) in (2, 4)}   # conv kernels and the FC matrix
        assert decayed == expected
        assert "linear/W" in decayed and "linear/b" not in decayed
        assert not any(n.endswith(("gamma", "beta")) for n in decayed)
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            value, weights = sess.run([wd, [v for v in variables if v.op.name in expected]])
        assert value == pytest.approx(1e-4 * sum((w.astype(np.float64) ** 2).sum() for w in weights) / 2, rel=1e-5)


def test_the_recorded_model_settings_rebuild_the_same_graph():
    """The ModelSettings is the record: through JSON (settings.json) and without training settings
    (evaluate.py's inference-only model) it rebuilds the variables of the NCHW training graph."""
    model = cam_model(34, 7, (32, 40), width_mult=0.125, final_stride=8,
                      weight_decay=3e-4, lr=0.05, data_format="NCHW")
    again = CAMModel(ModelSettings(**json.loads(json.dumps(dataclasses.asdict(model.settings)))))

    def variables(m):
        g, _ = build(m)
        with g.as_default():
            return {(v.op.name, tuple(v.shape.as_list())) for v in tf1.global_variables()}
    assert variables(model) == variables(again)
    assert again.mean_bgr == MEAN and again.image_shape == (32, 40) and again.data_format == "NHWC"


def test_the_inference_only_model_refuses_to_train():
    model = CAMModel(ModelSettings(18, 4, [32, 40], width_mult=0.0625, mean_bgr=MEAN, std_bgr=STD))
    with pytest.raises(ValueError, match=r"optimizer\(\) needs the training settings"):
        model.optimizer()
    with pytest.raises(ValueError, match="the training graph needs the training settings"):
        build(model, training=True)


@pytest.mark.parametrize("fields", [dict(depth=50), dict(final_stride=2), dict(amp="fp8"),
                                    dict(data_format="CHWN")])
def test_bad_model_arguments_are_refused(fields):
    with pytest.raises(ValueError, match=next(iter(fields))):
        cam_model(**dict(dict(depth=18, num_classes=4, image_shape=(32, 40)), **fields))


def test_fp16_loss_scale_returns_unscaled_gradients():
    """amp="fp16" multiplies the loss before differentiating and divides the gradients after;
    without the GPU's fp16 rewrite (here, fp32 math) the gradients equal the plain ones."""
    model = cam_model(18, 4, (32, 40), width_mult=0.0625, amp="fp16")
    g, cost = build(model, batch=2, training=True)
    with g.as_default():
        variables = tf1.trainable_variables()
        scaled = model.get_optimizer().compute_gradients(cost, var_list=variables)
        plain = tf1.gradients(cost, variables)
        feed = {INPUT_IMAGE + ":0": np.random.RandomState(2).randint(0, 256, (2, 32, 40, 3)).astype(np.uint8),
                INPUT_LABEL + ":0": np.array([1, 3], np.int32)}
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            a, b = sess.run([[gr for gr, _ in scaled], plain], feed)
    assert models.FP16_LOSS_SCALE > 1
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-3, atol=1e-6)


def test_strided_shortcut_equals_a_stride_2_projection():
    # models.resnet._shortcut subsamples then applies a 1x1 conv at stride 1 (to avoid a
    # oneDNN crash); that must equal the 1x1 conv at stride 2 it replaces, on odd sizes too.
    from tensorpack.tfutils.argscope import argscope
    from tensorpack.models import Conv2D
    from models.resnet import _shortcut
    rng = np.random.RandomState(0)
    x_val = rng.rand(2, 7, 10, 3).astype(np.float32)
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, (None, 7, 10, 3))
        with argscope(Conv2D, use_bias=False), tf1.variable_scope("s"):
            ours = _shortcut(x, 5, 2, "channels_last")
        kernel = [v for v in tf1.global_variables() if v.name.startswith("s/convshortcut/W")][0]
        reference = tf.nn.conv2d(x, kernel, strides=2, padding="SAME")
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            got, want = sess.run([ours, reference], {x: x_val})
    assert got.shape == want.shape == (2, 4, 5, 5)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_narrow_net_on_64x64_trains_without_crashing(tmp_path):
    # Regression: with an 8-channel 64x64 input to a 1x1 stride-2 projection, TF 2.21's
    # oneDNN filter gradient crashed the process ("double free"). Run out of process.
    import subprocess
    import sys
    script = f"""
import tf_env
import numpy as np, tensorflow as tf
from tensorpack.tfutils.tower import TowerContext
from models import CAMModel
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
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "trained" in out.stdout


def one_step_deltas(early_grad_scale, images, labels, lr=0.5):
    """Every trainable variable's change after one optimizer step on ``images``, from the same init."""
    model = cam_model(18, 3, images.shape[1:3], width_mult=0.125, lr=lr,
                     early_grad_scale=early_grad_scale)
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
        np.testing.assert_array_equal(plain[name][0], scaled[name][0])   # same initial weights
        expected = plain[name][1] * (0.1 if name in early else 1.0)
        assert np.abs(plain[name][1]).max() > 0, name
        # float32 rounding of (after - before) is ~1e-8 here; the scale makes 90% differences
        np.testing.assert_allclose(scaled[name][1], expected, rtol=1e-3, atol=1e-7, err_msg=name)


def test_a_nonfinite_loss_stops_the_step_before_any_weight_changes():
    model = cam_model(18, 3, (24, 20), width_mult=0.125,
                     weight_decay=float("inf"))   # train.py refuses it; here it makes the loss inf
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
            with pytest.raises(tf.errors.InvalidArgumentError, match=models.NONFINITE_LOSS):
                sess.run(step, {image: np.zeros((2, 24, 20, 3), np.uint8), label: [0, 1]})
            np.testing.assert_array_equal(sess.run(w), before)
