"""models/: the graph: parameter counts, output shapes, the tensor names evaluation reads, the settings record."""

import dataclasses
import json

import numpy as np
import pytest

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
import tensorflow as tf
from tensorpack.predict import OfflinePredictor, PredictConfig

from models.plan import DEPTHS
from models.resnet import param_count
from models.resnet import FC_B, FC_W, FEATURES, INPUT_IMAGE, INPUT_LABEL, LOGITS, CAMModel
from runrecord import ModelSettings
from tests.conftest import MEAN, STD, build, cam_model

tf1 = tf.compat.v1
tf1.disable_eager_execution()


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


@pytest.mark.parametrize("depth, published", [(18, 11_277_320), (34, 21_385_480)])
def test_param_count_matches_analytic_and_published(depth, published):
    model = cam_model(depth, 200, (64, 64))
    g, _ = build(model)
    with g.as_default():
        counted = sum(int(np.prod(v.shape)) for v in tf1.trainable_variables())
    analytic = analytic_params(DEPTHS[depth], (64, 128, 256, 512), 200)
    assert counted == analytic == param_count(depth, 1.0, 200)
    assert analytic == published  # the same count in TF and PyTorch (docs/measurements.md, "Speed")


def run_forward(model, images):
    g, _ = build(model)
    with g.as_default(), tf1.Session(graph=g) as sess:
        sess.run(tf1.global_variables_initializer())
        return sess.run(
            [FEATURES + ":0", FC_W + ":0", FC_B + ":0", LOGITS + ":0"],
            {INPUT_IMAGE + ":0": images, INPUT_LABEL + ":0": np.zeros(len(images), np.int32)},
        )


def test_full_width_gives_16x16_map_from_64x64():
    model = cam_model(18, 200, (64, 64))
    images = np.random.RandomState(0).randint(0, 256, (1, 64, 64, 3)).astype(np.uint8)
    feats, w, b, logits = run_forward(model, images)
    assert feats.shape == (1, 16, 16, 512)
    assert w.shape == (512, 200) and b.shape == (200,) and logits.shape == (1, 200)


@pytest.mark.parametrize(
    "final_stride, data_format, expect_hw",
    [(4, "NHWC", (8, 10)), (8, "NHWC", (4, 5)), (4, "NCHW", (8, 10))],
)
def test_non_square_shapes_and_cam_head_consistency(final_stride, data_format, expect_hw):
    """32x40 input: the map is H/stride x W/stride, NHWC even for NCHW convolutions, and
    logits == GAP(features) @ fc_W + fc_b, which is what a CAM computed from these names assumes."""
    model = cam_model(
        18, 5, (32, 40), width_mult=0.125, final_stride=final_stride, data_format=data_format
    )
    images = np.random.RandomState(1).randint(0, 256, (3, 32, 40, 3)).astype(np.uint8)
    feats, w, b, logits = run_forward(model, images)
    assert feats.shape == (3, *expect_hw, 64)  # 512 * 0.125
    assert w.shape == (64, 5) and b.shape == (5,) and logits.shape == (3, 5)
    assert (feats >= 0).all()  # after the final BN+ReLU
    np.testing.assert_allclose(feats.mean(axis=(1, 2)) @ w + b, logits, rtol=1e-4, atol=1e-4)


def test_predictor_takes_raw_uint8_and_returns_weights_not_handles():
    from procs import available_cores
    from training.session import SessionCreator, session_config, use_op_determinism

    model = cam_model(18, 4, (32, 40), width_mult=0.0625)
    use_op_determinism()  # before the graph, as build_predictor does
    with tf.Graph().as_default():
        tf1.set_random_seed(0)  # its op determinism refuses unseeded random ops (the initialisers)
        # training's session creator serves prediction too (all cores, not tensorpack's 1 thread)
        pred = OfflinePredictor(
            PredictConfig(
                model=model,
                input_names=[INPUT_IMAGE],
                session_creator=SessionCreator(session_config()),
                output_names=[FEATURES, FC_W, FC_B, LOGITS],
                create_graph=False,
            )
        )
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
        x0, x1 = (
            sess.run(stem_in, {INPUT_IMAGE + ":0": mean_image}),
            sess.run(stem_in, {INPUT_IMAGE + ":0": bright}),
        )
    np.testing.assert_allclose(x0, 0, atol=1e-6)
    np.testing.assert_allclose(x1[0, 0, 0], (255 - np.array(MEAN)) / np.array(STD), rtol=1e-6)


def test_the_recorded_model_settings_rebuild_the_same_graph():
    """The ModelSettings is the record: through JSON (settings.json) and without training settings
    (evaluate.py's inference-only model) it rebuilds the variables of the NCHW training graph."""
    model = cam_model(
        34,
        7,
        (32, 40),
        width_mult=0.125,
        final_stride=8,
        weight_decay=3e-4,
        lr=0.05,
        data_format="NCHW",
    )
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


@pytest.mark.parametrize(
    "fields", [dict(depth=50), dict(final_stride=2), dict(amp="fp8"), dict(data_format="CHWN")]
)
def test_bad_model_arguments_are_refused(fields):
    with pytest.raises(ValueError, match=next(iter(fields))):
        cam_model(**dict(dict(depth=18, num_classes=4, image_shape=(32, 40)), **fields))


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
