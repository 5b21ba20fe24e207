"""The forward pass and one pass of every evaluator over a set of images.

:func:`build_predictor` checks that every graph variable of
:class:`models.CAMModel` is in the checkpoint with the same shape
(:func:`runrecord.checkpoints.check_checkpoint`), then restores it as a tensorpack
``OfflinePredictor`` mapping uint8 BGR images to the feature map, the FC weight
and bias, and the logits.
:func:`evaluators` makes the evaluators of the three protocols and MaxBoxAccV2, and
:func:`evaluate_images` runs the predictor batch by batch; per image it computes the
ground-truth class CAM and hands it to :func:`score_maps`, which resizes each map
once per interpolation, builds each protocol's level map once (:func:`cam.level_maps`)
and feeds every :class:`cam.metrics.BoxEvaluator` (the three protocols and
MaxBoxAccV2): all thresholds, one pass.  :func:`evaluate_folder` feeds the same
:func:`score_maps` with the maps of a folder (:mod:`evaluation.scoremaps`, ``--cams``)
from the same point: a map at any resolution, before resize and normalisation.
"""

import contextlib
import sys
import time

import numpy as np

from cam import (
    NAMES,
    PROTOCOLS,
    BoxEvaluator,
    class_activation_maps,
    level_maps,
    maxboxacc,
    normalize_map,
    resize_map,
    top_k_classes,
)
from cam.protocols import WSOL_MULTI
from evaluation import scoremaps
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

    from models.resnet import FC_B, FC_W, FEATURES, INPUT_IMAGE, LOGITS, CAMModel
    from training.session import SessionCreator, session_config, use_op_determinism, use_tf32

    if checkpoint_prefix:
        check_checkpoint(model_settings, checkpoint_prefix)
    use_op_determinism()  # before the graph (training.session)
    use_tf32(
        False
    )  # full float32 on GPUs whatever the training used: the CAMs and logits agree to fp32 rounding
    config = PredictConfig(
        model=CAMModel(model_settings, train),
        session_creator=SessionCreator(session_config(threads=0)),  # 0: TensorFlow uses every core
        session_init=SmartInit(checkpoint_prefix)
        if checkpoint_prefix
        else None,  # a prefix, not a folder
        input_names=[INPUT_IMAGE],
        # FC_W/FC_B are identities of the variables: fetching 'linear/W' would give a resource handle
        output_names=[FEATURES, FC_W, FC_B, LOGITS],
        create_graph=False,
    )
    try:
        with tf.Graph().as_default():
            tf.compat.v1.set_random_seed(0)  # as in check_checkpoint; the checkpoint replaces them
            return OfflinePredictor(config)
    except (tf.errors.OpError, ValueError) as e:
        raise unreadable(
            checkpoint_prefix,
            e,
            "cannot restore the checkpoint; is a model-*.data file truncated or damaged?",
        ) from None


def evaluators(thresholds):
    """``{protocol: BoxEvaluator}`` at the given thresholds, plus MaxBoxAccV2's ``"wsol2020"``."""
    out = {name: BoxEvaluator(PROTOCOLS[name], thresholds[name]) for name in NAMES}
    out["wsol2020"] = BoxEvaluator(WSOL_MULTI, maxboxacc.THRESHOLDS, maxboxacc.IOU_THRESHOLDS)
    return out


@contextlib.contextmanager
def _progress(total, desc):
    """A progress bar on stderr; yields the ``progress(done, total)`` callable of :func:`score_maps`."""
    from tensorpack.utils.utils import get_tqdm

    with get_tqdm(total=total, desc=desc, file=sys.stderr) as bar:
        yield lambda done, _: bar.update(done - bar.n)


def evaluate_split(predictor, split, indices, evaluators, desc, **kwargs):
    """:func:`evaluate_images` over the images ``indices`` of a loaded ``split``, with a progress bar."""
    with _progress(len(indices), desc) as progress:
        return evaluate_images(
            predictor,
            split.images[indices],
            split.labels[indices],
            split.boxes[indices],
            evaluators,
            progress=progress,
            **kwargs,
        )


def evaluate_folder(folder, top5, split, indices, evaluators, desc, *, batch_size=128, **kwargs):
    """:func:`score_maps` over the score maps in ``folder`` (:mod:`evaluation.scoremaps`) of the images
    ``indices`` of ``split``, with a progress bar; ``top5``: their ``(N, k)`` class indices, or None.
    The result's ``timing`` has ``read`` (loading and checking the maps) in place of ``forward`` and ``cam``."""
    files = [split.files[i] for i in indices]

    def batches():
        for start in range(0, len(files), batch_size):
            tick = time.perf_counter()
            maps = [scoremaps.read_map(folder, f) for f in files[start : start + batch_size]]
            yield (
                maps,
                None if top5 is None else top5[start : start + batch_size],
                {"read": time.perf_counter() - tick},
            )

    with _progress(len(files), desc) as progress:
        return score_maps(
            batches(),
            split.image_shape,
            split.labels[indices],
            split.boxes[indices],
            evaluators,
            progress=progress,
            **kwargs,
        )


def evaluate_images(
    predictor,
    images,
    labels,
    gt_boxes,
    evaluators,
    *,
    batch_size=128,
    record=None,
    keep_maps_for=(),
    progress=None,
):
    """Forward ``images`` and feed the ground-truth class CAM of each to every evaluator (:func:`score_maps`).

    Args:
        images: ``(N, H, W, 3)`` uint8 BGR; labels: ``(N,)`` int; gt_boxes: ``(N, 4)`` int inclusive.
        evaluators, record, keep_maps_for, progress: as :func:`score_maps`.
    Returns: :func:`score_maps`'s dict, with raw ``cams`` (N, h, w) float32, ``logits`` (N, K) and
        ``fc_bias`` (K,); ``timing`` has ``forward`` and ``cam`` (CAM + top-5) seconds.
    """
    labels = np.asarray(labels)
    raw = {"cams": [], "logits": [], "fc_b": None}

    def batches():
        for start in range(0, len(images), batch_size):
            tick = time.perf_counter()
            features, fc_w, raw["fc_b"], logits = predictor(images[start : start + batch_size])
            forward = time.perf_counter() - tick
            tick = time.perf_counter()
            cams = class_activation_maps(features, fc_w, labels[start : start + batch_size])
            top5 = top_k_classes(logits)
            raw["cams"].append(cams)
            raw["logits"].append(logits)
            yield cams, top5, {"forward": forward, "cam": time.perf_counter() - tick}

    out = score_maps(
        batches(),
        images.shape[1:3],
        labels,
        gt_boxes,
        evaluators,
        record=record,
        keep_maps_for=keep_maps_for,
        progress=progress,
    )
    out.update(
        cams=np.concatenate(raw["cams"]),
        logits=np.concatenate(raw["logits"]),
        fc_bias=np.asarray(raw["fc_b"], dtype=np.float32),
    )
    return out


def score_maps(
    batches,
    image_shape,
    labels,
    gt_boxes,
    evaluators,
    *,
    record=None,
    keep_maps_for=(),
    progress=None,
):
    """Feed one score map per image to every evaluator: the one CAM-to-numbers pass.

    Args:
        batches: yields ``(maps, top5, seconds)`` per batch, in image order: ``maps`` a sequence of
            ``(h, w)`` score maps (raw CAMs, any resolution), ``top5`` ``(B, k)`` class indices best
            first or None (no class prediction), ``seconds`` ``{name: time}`` added to ``timing``.
        image_shape: ``(H, W)``; labels: ``(N,)`` int; gt_boxes: ``(N, 4)`` int inclusive.
        evaluators: ``{name: BoxEvaluator}``, filled in place.
        record: ``(name, threshold)``: keep that evaluator's box and IoU of each image at that threshold.
        keep_maps_for: indices whose bilinear min-max scoremaps ``(H, W)`` are returned (for pictures).
        progress: optional callable ``(done, total)`` called after each batch.
    Returns: dict with per-image ``top5`` (N, k) or None, ``maps`` {index: scoremap}, with ``record``:
        ``pred_boxes`` (N, 4) and ``ious`` (N,); and ``timing`` (seconds: the batches' own, then per
        evaluator, the resize and level map counted in the first evaluator that needs them).
    """
    count, labels = len(labels), np.asarray(labels)
    protocols = {name: ev.protocol for name, ev in evaluators.items()}
    keep = set(int(i) for i in keep_maps_for)
    at = evaluators[record[0]].index(record[1]) if record else None
    out = {"pred_boxes": [], "ious": [], "top5": [], "maps": {}}
    timing, start = {}, 0
    for maps, top5, seconds in batches:
        for name, value in seconds.items():
            timing[name] = timing.get(name, 0.0) + value
        stop = start + len(maps)
        if top5 is None:
            top1_ok = top5_ok = [None] * len(maps)
        else:
            top1_ok, top5_ok = (
                top5[:, 0] == labels[start:stop],
                (top5 == labels[start:stop, None]).any(axis=1),
            )
        for j, scoremap in enumerate(maps):
            tick = time.perf_counter()
            levels, resized = level_maps(scoremap, image_shape, protocols)
            for name, ev in evaluators.items():
                ious, boxes = ev.accumulate(
                    levels[name], gt_boxes[start + j], top1_ok[j], top5_ok[j]
                )
                if record and name == record[0]:
                    out["ious"].append(ious[at])
                    out["pred_boxes"].append(boxes[at])
                now = time.perf_counter()
                timing[name] = timing.get(name, 0.0) + now - tick
                tick = now
            if start + j in keep:
                out["maps"][start + j] = normalize_map(
                    resized.get("bilinear", resize_map(scoremap, image_shape))
                )
        out["top5"].append(top5)
        start = stop
        if progress is not None:
            progress(stop, count)
    out["top5"] = None if any(t is None for t in out["top5"]) else np.concatenate(out["top5"])
    for name in ("pred_boxes", "ious"):
        out[name] = np.asarray(out[name]) if record else None
    out["timing"] = timing
    return out
