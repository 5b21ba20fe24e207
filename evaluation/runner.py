"""The forward pass and one pass of every evaluator over a set of images.

:func:`build_predictor` checks that every graph variable of
:class:`models.CAMModel` is in the checkpoint with the same shape
(:func:`runrecord.checkpoints.check_checkpoint`), then restores it as a tensorpack
``OfflinePredictor`` mapping uint8 BGR images to the feature map, the FC weight
and bias, and the logits.
:func:`evaluators` makes the evaluators of the three protocols and MaxBoxAccV2, and
:func:`evaluate_images` runs the predictor batch by batch; per image it computes the
ground-truth class CAM, resizes it once per interpolation, builds each
protocol's level map once, and feeds every :class:`cam.metrics.BoxEvaluator`
(the three protocols and MaxBoxAccV2): all thresholds, one pass.
"""
import sys
import time

import numpy as np

from cam import NAMES, PROTOCOLS, BoxEvaluator, class_activation_maps, maxboxacc, normalize_map, resize_map, top_k_classes
from cam.protocols import WSOL_MULTI
from runrecord.checkpoints import check_checkpoint, unreadable


def build_predictor(model_settings, checkpoint_prefix, train=None):
    """OfflinePredictor ``f(images)``, images ``(B, H, W, 3)`` uint8 BGR, returning
    ``[features (B, h, w, C), fc_w (C, K), fc_b (K,), logits (B, K)]``.

    ``model_settings``: a ModelSettings; ``train``: a TrainSettings whose ``data_format``
    the convolutions use (None: ``CAMModel``'s inference graph).
    ``checkpoint_prefix=None`` keeps the random initial weights (benchmarks);
    otherwise :func:`check_checkpoint` runs first and a checkpoint that fails to
    restore (e.g. a truncated ``.data`` file) is a UserError.
    """
    import tf_env  # noqa: F401  (before tensorflow/tensorpack)
    import tensorflow as tf
    from tensorpack.predict import OfflinePredictor, PredictConfig
    from tensorpack.tfutils.sessinit import SmartInit

    from models import FC_B, FC_W, FEATURES, INPUT_IMAGE, LOGITS, CAMModel
    from training.session import SessionCreator, session_config, use_op_determinism, use_tf32

    if checkpoint_prefix:
        check_checkpoint(model_settings, checkpoint_prefix)
    use_op_determinism()   # before the graph (training.session)
    use_tf32(False)   # full float32 on GPUs whatever the training used: the CAMs and logits agree to fp32 rounding
    config = PredictConfig(
        model=CAMModel(model_settings, train),
        session_creator=SessionCreator(session_config(threads=0)),   # 0: TensorFlow uses every core
        session_init=SmartInit(checkpoint_prefix) if checkpoint_prefix else None,   # a prefix, not a folder
        input_names=[INPUT_IMAGE],
        # FC_W/FC_B are identities of the variables: fetching 'linear/W' would give a resource handle
        output_names=[FEATURES, FC_W, FC_B, LOGITS], create_graph=False)
    try:
        with tf.Graph().as_default():
            tf.compat.v1.set_random_seed(0)   # as in check_checkpoint; the checkpoint replaces them
            return OfflinePredictor(config)
    except (tf.errors.OpError, ValueError) as e:
        raise unreadable(checkpoint_prefix, e, "cannot restore the checkpoint; is a model-*.data file "
                                                "truncated or damaged?") from None


def evaluators(thresholds):
    """``{protocol: BoxEvaluator}`` at the given thresholds, plus MaxBoxAccV2's ``"wsol2020"``."""
    out = {name: BoxEvaluator(PROTOCOLS[name], thresholds[name]) for name in NAMES}
    out["wsol2020"] = BoxEvaluator(WSOL_MULTI, maxboxacc.THRESHOLDS, maxboxacc.IOU_THRESHOLDS)
    return out


def evaluate_split(predictor, split, indices, evaluators, desc, **kwargs):
    """:func:`evaluate_images` over the images ``indices`` of a loaded ``split``, with a progress bar."""
    from tensorpack.utils.utils import get_tqdm
    bar = get_tqdm(total=len(indices), desc=desc, file=sys.stderr)
    with bar:
        return evaluate_images(predictor, split.images[indices], split.labels[indices], split.boxes[indices],
                               evaluators, progress=lambda done, _: bar.update(done - bar.n), **kwargs)


def _level_maps(cam, image_shape, evaluators):
    """Each evaluator's level map of one raw CAM; one resize per interpolation, one map per kind."""
    resized, levels, out = {}, {}, {}
    for name, ev in evaluators.items():
        p = ev.protocol
        if p.resize not in resized:
            resized[p.resize] = resize_map(cam, image_shape, p.resize)
        key = (p.resize, p.levels)
        if key not in levels:
            levels[key] = p.level_map(resized[p.resize])
        out[name] = levels[key]
    return out, resized


def evaluate_images(predictor, images, labels, gt_boxes, evaluators, *, batch_size=128, record=None,
                    keep_maps_for=(), progress=None):
    """Forward ``images`` and feed the ground-truth class CAM of each to every evaluator.

    Args:
        images: ``(N, H, W, 3)`` uint8 BGR; labels: ``(N,)`` int; gt_boxes: ``(N, 4)`` int inclusive.
        evaluators: ``{name: BoxEvaluator}``, filled in place.
        record: ``(name, threshold)``: keep that evaluator's box and IoU of each image at that threshold.
        keep_maps_for: indices whose bilinear min-max scoremaps ``(H, W)`` are returned (for pictures).
        progress: optional callable ``(done, total)`` called after each batch.
    Returns: dict with per-image ``top5`` (N, min(5, K)), raw ``cams`` (N, h, w), ``logits`` (N, K),
        ``fc_bias`` (K,), ``maps`` {index: scoremap}, with ``record``: ``pred_boxes`` (N, 4) and
        ``ious`` (N,); and ``timing`` (seconds: ``forward``, ``cam`` (CAM + top-5), and per evaluator,
        the resize and level map counted in the first evaluator that needs them).
    """
    count, image_shape = len(images), images.shape[1:3]
    keep = set(int(i) for i in keep_maps_for)
    at = evaluators[record[0]].index(record[1]) if record else None
    out = {"pred_boxes": [], "ious": [], "top5": [], "cams": [], "logits": [], "maps": {}}
    timing = dict.fromkeys(["forward", "cam", *evaluators], 0.0)
    fc_b = None
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        tick = time.perf_counter()
        features, fc_w, fc_b, logits = predictor(images[start:stop])
        timing["forward"] += time.perf_counter() - tick

        tick = time.perf_counter()
        batch_labels = np.asarray(labels[start:stop])
        cams = class_activation_maps(features, fc_w, batch_labels)
        top5 = top_k_classes(logits)
        top1_ok, top5_ok = top5[:, 0] == batch_labels, (top5 == batch_labels[:, None]).any(axis=1)
        timing["cam"] += time.perf_counter() - tick
        for j, cam in enumerate(cams):
            tick = time.perf_counter()
            levels, resized = _level_maps(cam, image_shape, evaluators)
            for name, ev in evaluators.items():
                ious, boxes = ev.accumulate(levels[name], gt_boxes[start + j], top1_ok[j], top5_ok[j])
                if record and name == record[0]:
                    out["ious"].append(ious[at])
                    out["pred_boxes"].append(boxes[at])
                now = time.perf_counter()
                timing[name] += now - tick
                tick = now
            if start + j in keep:
                out["maps"][start + j] = normalize_map(resized.get("bilinear", resize_map(cam, image_shape)))
        for name, value in (("top5", top5), ("cams", cams), ("logits", logits)):
            out[name].append(value)
        if progress is not None:
            progress(stop, count)
    for name in ("top5", "cams", "logits"):
        out[name] = np.concatenate(out[name])
    for name in ("pred_boxes", "ious"):
        out[name] = np.asarray(out[name]) if record else None
    out["fc_bias"] = np.asarray(fc_b, dtype=np.float32)
    out["timing"] = timing
    return out
