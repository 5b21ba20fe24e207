"""Threshold study (beyond the paper): accuracy at every CAM threshold, over the whole set.

For each threshold ``t`` in a grid from 0 to 1, every image's box is computed
at ``t`` and the accuracy at ``t`` is the fraction of *all* images localised
at that same ``t``.  The best of these dataset-level accuracies is
wsolevaluation's MaxBoxAcc (GT-known Loc at the best threshold).  Counting an
image as localised when *any* threshold works would inflate accuracy
(facts.md, pitfalls) and is never done here.

Choosing the threshold on the test set is optimistic; the protocol that does
not tune on the test set picks the best threshold on held-out *training*
images (every Tiny ImageNet training image has a box) and applies it to val
(evaluate.py ``--threshold-from-train``).
"""
import numpy as np

from cam.box import boxes_at_thresholds
from cam.metrics import IOU_THRESHOLD, iou, is_localized

CURVES = ("gt_known_loc", "top1_loc", "top5_loc")


def threshold_grid(step=0.01):
    """Thresholds ``0, step, 2 step, ..., 1`` (both ends included); ``1 / step`` must be a whole number."""
    count = round(1.0 / step)
    if not 0 < step <= 1 or abs(count * step - 1.0) > 1e-9:
        raise ValueError(f"the threshold step must divide 1 (0.01, 0.005, 0.001, ...), got {step}")
    return np.round(np.arange(count + 1) * step, 12)   # round: exact 0.07, not 0.07000000000000001


class ThresholdSweep:
    """Accumulates, per threshold, how many images are localised (GT-known, Top-1, Top-5).

    ``update(scoremaps, gt_boxes, top1_correct, top5_correct)``: ``scoremaps``
    (B, H, W) float in [0, 1] (ground-truth class CAMs, normalised);
    ``gt_boxes`` (B, 4) int inclusive; ``top1_correct``, ``top5_correct`` (B,) bool.
    """

    def __init__(self, thresholds, rule="authors", iou_threshold=IOU_THRESHOLD, strict=False):
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.rule = rule
        self.iou_threshold = iou_threshold
        self.strict = strict
        self.count = 0
        self.hits = {name: np.zeros(len(self.thresholds), dtype=np.int64) for name in CURVES}

    def update(self, scoremaps, gt_boxes, top1_correct, top5_correct):
        gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
        for scoremap, gt_box, top1, top5 in zip(scoremaps, gt_boxes, top1_correct, top5_correct):
            boxes = boxes_at_thresholds(scoremap, self.thresholds, self.rule)     # (T, 4)
            loc = is_localized(iou(boxes, gt_box[None, :]), self.iou_threshold, self.strict)
            self.hits["gt_known_loc"] += loc
            self.hits["top1_loc"] += loc & bool(top1)
            self.hits["top5_loc"] += loc & bool(top5)
        self.count += len(gt_boxes)

    def result(self):
        """Curves (percent per threshold) and the best threshold by GT-known Loc (the first on ties).

        Returns a JSON-able dict: ``thresholds``, ``gt_known_loc``, ``top1_loc``,
        ``top5_loc`` (lists of length T), ``num_images``, and ``best`` with
        ``threshold``, ``max_box_acc`` (= best GT-known Loc) and the Top-1/Top-5
        Loc at that threshold.
        """
        if self.count == 0:
            raise ValueError("no images were evaluated")
        curves = {name: 100.0 * hits / self.count for name, hits in self.hits.items()}
        best = int(np.argmax(curves["gt_known_loc"]))
        return {
            "thresholds": self.thresholds.tolist(),
            **{name: curve.tolist() for name, curve in curves.items()},
            "num_images": self.count,
            "best": {"threshold": float(self.thresholds[best]),
                     "max_box_acc": float(curves["gt_known_loc"][best]),
                     "top1_loc": float(curves["top1_loc"][best]),
                     "top5_loc": float(curves["top5_loc"][best])},
        }
