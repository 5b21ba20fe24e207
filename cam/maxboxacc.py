"""MaxBoxAccV2 (Choe et al., CVPR 2020; clovaai/wsolevaluation) and its Top-1 Loc twin.

wsolevaluation's ``BoxEvaluator`` with ``multi_contour_eval=True`` on maps
resized with ``cv2.INTER_CUBIC`` and min-max normalised (its ``inference.py``):
at each CAM threshold in ``np.arange(0, 1, 0.01)`` the boxes of every contour
of the 8-bit map (``cam.protocols.WSOL_MULTI``), the best IoU over them, and
per IoU threshold 0.3 / 0.5 / 0.7 (``>=``) the box accuracy over the whole set;
each accuracy is maximised over the CAM thresholds on its own, and
MaxBoxAccV2 is the mean of the three.  ``top1_loc_v2`` does the same with
Top-1 Loc (localised and top-1 correct), which wsolevaluation does not
provide (its issues #14 and #50).  With a held-out evaluator, each threshold is
the best one there and the value is read on the evaluated set at it.
"""

import numpy as np

# wsolevaluation evaluation.py: cam_threshold_list = np.arange(0, 1, cam_curve_interval), its CLI default 0.01
THRESHOLDS = np.arange(0, 1, 0.01)
# wsolevaluation evaluation.py: iou_threshold_list default [30, 50, 70], a hit at IoU >= t / 100
IOU_THRESHOLDS = (30 / 100, 50 / 100, 70 / 100)


def maxboxacc_v2(evaluator, chosen_on=None):
    """JSON-able MaxBoxAccV2 of a :class:`cam.metrics.BoxEvaluator` over :data:`THRESHOLDS` and :data:`IOU_THRESHOLDS`.

    ``chosen_on``: another such evaluator (held-out images); each threshold is
    then chosen there (the lowest on ties) instead of on ``evaluator``'s images.
    Returns ``{"maxboxacc_v2", "top1_loc_v2", "by_iou": {"30"|"50"|"70": {"box_acc",
    "box_acc_threshold", "top1_loc", "top1_loc_threshold"}}}``, percent; the Top-1 Loc entries are
    None without class predictions (:class:`cam.metrics.BoxEvaluator`).
    """
    by_iou = {}
    for t in IOU_THRESHOLDS:
        entry = {}
        for curve, name in (("gt_known_loc", "box_acc"), ("top1_loc", "top1_loc")):
            threshold, value = (chosen_on or evaluator).best(curve, t)
            if chosen_on is not None and threshold is not None:
                values = evaluator.curves(t)[curve]
                value = None if values is None else float(values[evaluator.index(threshold)])
            entry[name], entry[name + "_threshold"] = value, threshold
        by_iou[str(round(100 * t))] = entry
    means = {
        key: None
        if any(e[name] is None for e in by_iou.values())
        else float(np.mean([e[name] for e in by_iou.values()]))
        for key, name in (("maxboxacc_v2", "box_acc"), ("top1_loc_v2", "top1_loc"))
    }
    return dict(means, by_iou=by_iou)
