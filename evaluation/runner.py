"""The forward pass and the per-image CAM evaluation of a set of images.

:func:`build_predictor` restores a :class:`models.CAMModel` from a checkpoint
as a tensorpack ``OfflinePredictor`` that maps uint8 BGR images to the
feature map, the FC weight and bias, and the logits.  :func:`evaluate_images`
runs it batch by batch and, per batch, computes the ground-truth class CAM,
its box and IoU, the top-5 classes, and (optionally) the threshold sweep.
"""
import time

import numpy as np

from cam import (LocalizationAccumulator, ThresholdSweep, class_activation_maps, iou, scoremap_to_box,
                 scoremaps_from_cams, top_k_classes)


def build_predictor(model_settings, checkpoint_prefix):
    """OfflinePredictor ``f(images)``, images ``(B, H, W, 3)`` uint8 BGR, returning
    ``[features (B, h, w, C), fc_w (C, K), fc_b (K,), logits (B, K)]``.

    ``checkpoint_prefix=None`` keeps the random initial weights (benchmarks).
    """
    import tf_env  # noqa: F401  (before tensorflow/tensorpack)
    import tensorflow as tf
    from tensorpack.predict import OfflinePredictor, PredictConfig
    from tensorpack.tfutils.sessinit import SmartInit

    from models import FC_B, FC_W, FEATURES, INPUT_IMAGE, LOGITS, CAMModel

    tf1 = tf.compat.v1

    class SessionCreator(tf1.train.SessionCreator):
        """All CPU cores (tensorpack's default config uses one intra-op thread, ~20% slower on
        CPU, tensorpack-notes.md); initializers built before the first run (no TF warning)."""

        def create_session(self):
            init = [tf1.global_variables_initializer(), tf1.local_variables_initializer()]
            config = tf1.ConfigProto(allow_soft_placement=True)
            config.gpu_options.allow_growth = True
            sess = tf1.Session(config=config)
            sess.run(init)
            return sess

    return OfflinePredictor(PredictConfig(
        model=CAMModel(**model_settings),
        session_creator=SessionCreator(),
        # a prefix, not a folder (tensorpack-notes.md)
        session_init=SmartInit(checkpoint_prefix) if checkpoint_prefix else None,
        input_names=[INPUT_IMAGE],
        # FC_W/FC_B are identities of the variables: fetching 'linear/W' would give a resource handle
        output_names=[FEATURES, FC_W, FC_B, LOGITS]))


def evaluate_images(predictor, images, labels, gt_boxes, *, batch_size=128, cam_threshold=0.2,
                    box_rule="authors", iou_threshold=0.5, iou_strict=False, sweep_thresholds=None,
                    keep_maps_for=(), progress=None):
    """Forward ``images`` and evaluate the ground-truth class CAM of each.

    Args:
        images: ``(N, H, W, 3)`` uint8 BGR; labels: ``(N,)`` int; gt_boxes: ``(N, 4)`` int inclusive.
        sweep_thresholds: if given, also run a :class:`cam.sweep.ThresholdSweep` over them.
        keep_maps_for: indices whose normalised scoremaps ``(H, W)`` are returned (for pictures).
        progress: optional callable ``(done, total)`` called after each batch.
    Returns: dict with ``summary`` (percent), per-image ``pred_boxes`` (N, 4), ``ious`` (N,),
        ``top5`` (N, min(5, K)), raw ``cams`` (N, h, w) at feature resolution, ``logits`` (N, K),
        ``fc_bias`` (K,), ``maps`` {index: scoremap}, ``sweep`` (result dict or None) and
        ``timing`` (seconds: ``forward``, ``postprocess`` = CAM + resize + normalise + box + IoU,
        ``sweep``).
    """
    count = len(images)
    image_shape = images.shape[1:3]
    accumulator = LocalizationAccumulator(iou_threshold, iou_strict)
    sweep = (ThresholdSweep(sweep_thresholds, box_rule, iou_threshold, iou_strict)
             if sweep_thresholds is not None else None)
    keep = set(int(i) for i in keep_maps_for)
    out = {"pred_boxes": [], "ious": [], "top5": [], "cams": [], "logits": [], "maps": {}}
    timing = {"forward": 0.0, "postprocess": 0.0, "sweep": 0.0}
    fc_b = None
    for start in range(0, count, batch_size):
        stop = min(start + batch_size, count)
        tick = time.perf_counter()
        features, fc_w, fc_b, logits = predictor(images[start:stop])
        timing["forward"] += time.perf_counter() - tick

        tick = time.perf_counter()
        batch_labels = np.asarray(labels[start:stop])
        cams = class_activation_maps(features, fc_w, batch_labels)
        maps = scoremaps_from_cams(cams, image_shape)
        boxes = np.stack([scoremap_to_box(m, cam_threshold, box_rule) for m in maps])
        ious = iou(boxes, gt_boxes[start:stop])
        top5 = top_k_classes(logits)
        accumulator.update(ious, top5, batch_labels)
        timing["postprocess"] += time.perf_counter() - tick

        if sweep is not None:
            tick = time.perf_counter()
            sweep.update(maps, gt_boxes[start:stop], top5[:, 0] == batch_labels,
                         (top5 == batch_labels[:, None]).any(axis=1))
            timing["sweep"] += time.perf_counter() - tick
        for name, value in (("pred_boxes", boxes), ("ious", ious), ("top5", top5), ("cams", cams),
                            ("logits", logits)):
            out[name].append(value)
        for i in keep.intersection(range(start, stop)):
            out["maps"][i] = maps[i - start]
        if progress is not None:
            progress(stop, count)
    for name in ("pred_boxes", "ious", "top5", "cams", "logits"):
        out[name] = np.concatenate(out[name])
    out["fc_bias"] = np.asarray(fc_b, dtype=np.float32)
    out["summary"] = accumulator.summary()
    out["sweep"] = sweep.result() if sweep is not None else None
    out["timing"] = timing
    return out
