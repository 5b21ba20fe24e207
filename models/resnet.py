"""Pre-activation ResNet with a CAM head (GAP + one FC), as a tensorpack ModelDesc.

The network (paper sec. 2 "Baseline algorithm" and sec. 3; docs/sources.md):

* pre-activation ResNet (He et al., "Identity mappings in deep residual
  networks"), basic blocks, depth 18 = [2, 2, 2, 2] or 34 = [3, 4, 6, 3],
  widths 64/128/256/512;
* the "slight modification to the input layer" of the authors' code: a 7x7
  stem at stride 1 and no max-pool; group strides 1, 2, 2, 1 (the last group
  keeps its resolution, as in tensorpack's CAM example), so a 64x64 input
  gives a 16x16 map (total stride 4);
* global average pooling, then one fully connected layer to the classes:
  CAM for class c = sum_k W[k, c] * features[:, :, k].

The block layout follows tensorpack's ``preresnet_group`` (every group ends
with a BN+ReLU, the first block of a group has no pre-activation of its own);
that is fb.resnet.torch's pre-activation ResNet with its "both_preact" first
blocks, and has 11,277,320 trainable parameters for depth 18 and 21,385,480 for
depth 34 at 200 classes (tests/test_models_graph.py counts them by hand).

Not the paper's, for tests, the demo and the common variant only:
``width_mult`` scales every width; ``final_stride=8`` makes the last group
stride 2 (an 8x8 map from a 64x64 input).

Images enter as uint8 BGR, (N, H, W, 3); the graph normalises them with the
``mean_bgr``/``std_bgr`` it is given, so a predictor takes raw pixels.
"""

import tf_env  # noqa: F401  (sets TF_USE_LEGACY_KERAS before tensorflow is imported)

import numpy as np
import tensorflow as tf
from tensorpack import ModelDesc
from tensorpack.models import BatchNorm, BNReLU, Conv2D, FullyConnected, GlobalAvgPooling
from tensorpack.tfutils import gradproc
from tensorpack.tfutils import optimizer as tp_optimizer
from tensorpack.tfutils.argscope import argscope
from tensorpack.tfutils.summary import add_moving_summary
from tensorpack.tfutils.tower import get_current_tower_context

from models.loss import FP16_LOSS_SCALE, StaticLossScale, check_finite, weight_decay_cost
from models.plan import BASE_WIDTHS, DEPTHS, FINAL_STRIDES, STEM_KERNEL

tf1 = tf.compat.v1

# ---------------------------------------------------------------------------
# Tensor names that evaluation reads. All are relative to the tower: unprefixed in a predictor built with
# PredictConfig/OfflinePredictor and in single-device training.
INPUT_IMAGE = "input"  # uint8 (N, H, W, 3) BGR, raw pixels; normalised in-graph
INPUT_LABEL = "label"  # int32 (N,) class index in [0, num_classes)
FEATURES = "features"  # float32 (N, h, w, C) NHWC always: last map, after the final BN+ReLU
FC_W = "fc_W"  # float32 (C, K): identity of the FC weight (not the resource handle)
FC_B = "fc_b"  # float32 (K,): identity of the FC bias
LOGITS = "logits"  # float32 (N, K)
WRONG_TOP1 = "wrong-top1"  # float32 (N,): 1.0 where the top-1 class is wrong (ClassificationError)
WRONG_TOP5 = "wrong-top5"  # float32 (N,): 1.0 where the label is not in the top min(5, K)
# ---------------------------------------------------------------------------

AMP_MODES = (False, "bf16", "fp16")
# --normalize imagenet: x / 255, then ImageNet's mean/std in BGR order, written here in pixel
# units ((x / 255 - m) / s = (x - 255 m) / (255 s)); tensorpack examples/ImageNetModels/imagenet_utils.py
# and junsukchoe/SN-ResNet codes/utils.py image_preprocess: mean (0.485, 0.456, 0.406), std
# (0.229, 0.224, 0.225) in RGB (docs/sources.md)
IMAGENET_MEAN_BGR = [255.0 * m for m in (0.406, 0.456, 0.485)]
IMAGENET_STD_BGR = [255.0 * s for s in (0.225, 0.224, 0.229)]


def normalization(normalize, train):
    """``(mean_bgr, std_bgr)``, 3 floats each in pixel units, that CAMModel subtracts and divides by:
    ImageNet's for ``normalize="imagenet"``, else those of ``train`` (the training
    ``dataflow.tinyimagenet.Split``, BGR) for ``"dataset"`` (train.py --normalize)."""
    if normalize == "imagenet":
        return list(IMAGENET_MEAN_BGR), list(IMAGENET_STD_BGR)
    return train.mean_bgr().tolist(), train.std_bgr().tolist()


# --early-grad-scale scales the gradients of the stem and groups 0-2 (junsukchoe/SN-ResNet
# codes/train_resnet_tiny.py: ScaleGradient 0.1 on 'conv0.*' and 'group[0-2].*'); the optional
# tower prefix covers the replicas of SyncMultiGPUTrainerReplicated
EARLY_LAYERS = r"(tower\d+/)?(conv0|group[0-2])/.*"


def scaled_widths(width_mult):
    """Group widths for a width multiplier: ``BASE_WIDTHS`` scaled and rounded, at least 1."""
    return [max(1, int(round(w * width_mult))) for w in BASE_WIDTHS]


def param_count(depth, width_mult, num_classes):
    """Trainable parameters of :func:`backbone` + :func:`cam_head`, counted without building a graph.

    Stem conv; per group, the first block's conv1 + conv2 (+ a 1x1 projection where the width
    changes) and 2 more 3x3 convs per further block; 2 per channel for every BatchNorm (each
    block has 2, the stem and each group end 1, the first block 1 less); the FC with bias.
    """
    widths = scaled_widths(width_mult)
    c_in = widths[0]
    total = 3 * STEM_KERNEL**2 * c_in + 2 * c_in
    for c, n in zip(widths, DEPTHS[depth]):
        total += 9 * c_in * c + 9 * c * c + (c_in * c if c_in != c else 0) + (n - 1) * 18 * c * c
        total += 2 * c * (2 * n)  # BatchNorm gamma/beta: 2n - 1 in the blocks + 1 at the group end
        c_in = c
    return total + c_in * num_classes + num_classes


def _shortcut(l, ch_out, stride, data_format):
    ch_in = l.shape[1 if data_format == "channels_first" else 3]
    if ch_in != ch_out or stride != 1:  # projection only where the shape changes
        # A 1x1 convolution at stride s with SAME padding reads pixels 0, s, 2s, ...:
        # exactly a subsampling followed by a 1x1 convolution at stride 1 (same
        # variables, same numbers).  Written that way because TF 2.21's oneDNN
        # filter gradient of a 1x1 stride-2 conv crashes the process (double free)
        # when the input has <= 8 channels at >= 64x64, i.e. narrow nets on Tiny ImageNet.
        if stride != 1:
            l = (
                l[:, :, ::stride, ::stride]
                if data_format == "channels_first"
                else l[:, ::stride, ::stride, :]
            )
        return Conv2D("convshortcut", l, ch_out, 1, strides=1)
    return l


def preact_basicblock(l, ch_out, stride, preact, data_format):
    """Two 3x3 convolutions with a pre-activation; ``preact=False`` for the first
    block of a group, whose input is already activated (the previous group's bnlast)."""
    shortcut = l  # with preact the un-activated sum; else already BN+ReLU'd, shared by both paths
    if preact:
        l = BNReLU("preact", l)
    l = Conv2D("conv1", l, ch_out, 3, strides=stride, activation=BNReLU)
    l = Conv2D("conv2", l, ch_out, 3)
    return l + _shortcut(shortcut, ch_out, stride, data_format)


def preact_group(l, name, ch_out, count, stride, data_format):
    """``count`` basic blocks; the first strides; the group ends with BN+ReLU."""
    with tf1.variable_scope(name):
        for i in range(count):
            with tf1.variable_scope(f"block{i}"):
                l = preact_basicblock(l, ch_out, stride if i == 0 else 1, i > 0, data_format)
        l = BNReLU("bnlast", l)
    return l


def backbone(image, depth, *, width_mult=1.0, final_stride=4, data_format="channels_last"):
    """Pre-activation ResNet trunk.

    Args:
        image: float32 (N, H, W, 3) or (N, 3, H, W) per ``data_format``, normalised.
        depth: a key of ``DEPTHS``.
    Returns:
        float32 map in ``data_format``, C = ``scaled_widths(width_mult)[-1]`` channels,
        spatial size ceil(H / final_stride) x ceil(W / final_stride), after BN+ReLU.
    """
    blocks = DEPTHS[depth]
    widths = scaled_widths(width_mult)
    strides = FINAL_STRIDES[final_stride]
    # He initialisation over fan-out and bias-free convs, as tensorpack's ResNet example
    with (
        argscope(
            Conv2D,
            use_bias=False,
            data_format=data_format,
            kernel_initializer=tf1.variance_scaling_initializer(scale=2.0, mode="fan_out"),
        ),
        argscope([BatchNorm, GlobalAvgPooling], data_format=data_format),
    ):
        l = Conv2D("conv0", image, widths[0], STEM_KERNEL, strides=1, activation=BNReLU)
        for g, (count, width, stride) in enumerate(zip(blocks, widths, strides)):
            l = preact_group(l, f"group{g}", width, count, stride, data_format)
    return l


def cam_head(feature_map, num_classes, data_format="channels_last"):
    """GAP + FC, naming FEATURES (NHWC), FC_W, FC_B and LOGITS.

    Returns float32 logits (N, K).
    """
    if data_format == "channels_first":
        tf.transpose(feature_map, [0, 2, 3, 1], name=FEATURES)
    else:
        tf.identity(feature_map, name=FEATURES)
    pooled = GlobalAvgPooling("gap", feature_map, data_format=data_format)
    logits = FullyConnected("linear", pooled, num_classes)
    tf.identity(logits.variables.W, name=FC_W)
    tf.identity(logits.variables.b, name=FC_B)
    return tf.identity(logits, name=LOGITS)


class CAMModel(ModelDesc):
    """Pre-activation ResNet + CAM head, trained with softmax cross-entropy.

    Args:
        model: a ``runrecord.ModelSettings``: depth (18 or 34, paper sec. 3), num_classes K,
            image_shape (H, W), width_mult (1.0 = the paper's), final_stride (4, the paper's,
            or 8), mean_bgr and std_bgr (3 floats each, BGR, pixel units 0..255: the graph
            computes (image - mean) / std).
        train: a ``runrecord.TrainSettings``, whose weight_decay (L2 on conv and FC weights,
            not BN, not biases), momentum (Nesterov), lr (the ``learning_rate`` variable;
            train.py schedules it), early_grad_scale (on the variables matching EARLY_LAYERS;
            1.0 = off), amp (False, "bf16" or "fp16": the reduced precision of train.py's
            session config; the model only adds a static loss scale for "fp16") and
            data_format ("NHWC" or "NCHW" for the convolutions; the input and FEATURES stay
            NHWC) build the training graph.  None: the inference graph only, in NHWC.
    """

    def __init__(self, model, train=None):
        if model.depth not in DEPTHS:
            raise ValueError(f"depth must be one of {sorted(DEPTHS)}, got {model.depth}")
        if model.final_stride not in FINAL_STRIDES:
            raise ValueError(
                f"final_stride must be one of {sorted(FINAL_STRIDES)}, got {model.final_stride}"
            )
        if train is not None and train.amp not in AMP_MODES:
            raise ValueError(f"amp must be one of {AMP_MODES}, got {train.amp!r}")
        if train is not None and train.data_format not in ("NHWC", "NCHW"):
            raise ValueError(f"data_format must be NHWC or NCHW, got {train.data_format!r}")
        self.settings, self.train = model, train
        self.image_shape = tuple(int(s) for s in model.image_shape)
        self.mean_bgr = [float(x) for x in np.asarray(model.mean_bgr, dtype=np.float64).reshape(3)]
        self.std_bgr = [float(x) for x in np.asarray(model.std_bgr, dtype=np.float64).reshape(3)]
        self.data_format = train.data_format if train is not None else "NHWC"

    def inputs(self):
        h, w = self.image_shape
        return [
            tf.TensorSpec((None, h, w, 3), tf.uint8, INPUT_IMAGE),
            tf.TensorSpec((None,), tf.int32, INPUT_LABEL),
        ]

    def build_graph(self, image, label):
        m, fmt = self.settings, "channels_first" if self.data_format == "NCHW" else "channels_last"
        x = (tf.cast(image, tf.float32) - tf.constant(self.mean_bgr)) / tf.constant(self.std_bgr)
        if fmt == "channels_first":
            x = tf.transpose(x, [0, 3, 1, 2])
        fmap = backbone(
            x,
            int(m.depth),
            width_mult=float(m.width_mult),
            final_stride=int(m.final_stride),
            data_format=fmt,
        )
        logits = cam_head(fmap, int(m.num_classes), fmt)

        xent = tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=label, logits=logits),
            name="xentropy-loss",
        )
        wrong1 = tf.cast(
            tf.logical_not(tf1.nn.in_top_k(logits, label, 1)), tf.float32, name=WRONG_TOP1
        )
        tf.cast(
            tf.logical_not(tf1.nn.in_top_k(logits, label, min(5, int(m.num_classes)))),
            tf.float32,
            name=WRONG_TOP5,
        )
        if not get_current_tower_context().is_training:
            return xent
        train_error = tf.reduce_mean(wrong1, name="train-error-top1")
        wd_cost = weight_decay_cost(float(self._training("the training graph").weight_decay))
        cost = tf.add(xent, wd_cost, name="cost")
        add_moving_summary(xent, wd_cost, cost, train_error)
        return check_finite(cost)

    def optimizer(self):
        t = self._training("optimizer()")
        lr = tf1.get_variable("learning_rate", initializer=float(t.lr), trainable=False)
        tf1.summary.scalar("learning-rate", lr)  # "learning_rate" is the variable's name
        opt = tf1.train.MomentumOptimizer(
            lr, float(t.momentum), use_nesterov=True
        )  # paper sec. 3: Nesterov
        if t.amp == "fp16":
            opt = StaticLossScale(opt, FP16_LOSS_SCALE)
        if t.early_grad_scale != 1.0:
            opt = tp_optimizer.apply_grad_processors(
                opt,
                [
                    gradproc.ScaleGradient(
                        [(EARLY_LAYERS, float(t.early_grad_scale))], verbose=False
                    )
                ],
            )
        return opt

    def _training(self, what):
        if self.train is None:
            raise ValueError(
                f"CAMModel: {what} needs the training settings: CAMModel(model, train), "
                "not the inference-only CAMModel(model)"
            )
        return self.train
