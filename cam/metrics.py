"""IoU with inclusive pixels, and the localisation / classification accuracies.

Boxes are int ``[x0, y0, x1, y1]`` pixel indices with the max **inclusive**
(Tiny ImageNet's annotation convention), so a box covers
``(x1 - x0 + 1) * (y1 - y0 + 1)`` pixels; ``[3, 3, 3, 3]`` is one pixel.

Metrics (percent of the evaluated images):

* ``gt_known_loc``: IoU(box from the ground-truth class CAM, gt box) >= 0.5.
* ``top1_loc``: the same and the top-1 predicted class is the ground truth.
* ``top1_clas``: the top-1 predicted class is the ground truth.
* ``top5_loc``: IoU >= 0.5 and the ground truth is among the top-5 classes.
  This equals the ILSVRC definition (one box per top-5 guess, correct if a
  guess has the right class and IoU >= 0.5): only the guess that is the
  ground-truth class can count, and its CAM is the ground-truth class CAM.
  The same holds for ``top1_loc``.
* ``top5_clas``: the ground truth is among the top-5 classes.
With fewer than 5 classes "top-5" means all classes.

The paper says IoU "more than 50%"; facts.md and wsolevaluation count
IoU >= 0.5, which is the default here; the authors' code counted IoU > 0.5
(``strict=True``).  The two differ only for an IoU of exactly 0.5.
"""
import numpy as np

IOU_THRESHOLD = 0.5   # paper sec. 3 "more than 50%"; facts.md: IoU >= 0.5
TOP_K = 5             # Top-5 Loc / Top-5 Clas (ILSVRC convention)
METRICS = ("gt_known_loc", "top1_loc", "top1_clas", "top5_loc", "top5_clas")


def box_area(boxes):
    """Pixel count of inclusive boxes ``(..., 4)``; a box with ``x1 < x0`` or ``y1 < y0`` has area 0."""
    boxes = np.asarray(boxes, dtype=np.int64)
    return (np.maximum(boxes[..., 2] - boxes[..., 0] + 1, 0)
            * np.maximum(boxes[..., 3] - boxes[..., 1] + 1, 0))


def iou(boxes_a, boxes_b):
    """IoU of inclusive int boxes, broadcast over leading dims: ``(..., 4), (..., 4) -> (...)`` float64.

    The intersection is clamped at 0 in each axis *before* multiplying (the
    authors' ``bb_IOU`` did not clamp, so two boxes apart in both x and y got
    a positive "intersection").  An empty union (both boxes degenerate) gives 0.
    """
    a = np.asarray(boxes_a, dtype=np.int64)
    b = np.asarray(boxes_b, dtype=np.int64)
    if a.shape[-1:] != (4,) or b.shape[-1:] != (4,):
        raise ValueError(f"boxes must have a last dimension of 4, got {a.shape} and {b.shape}")
    inter_w = np.maximum(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1, 0)
    inter_h = np.maximum(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1, 0)
    inter = inter_w * inter_h   # <= each area, so 0 when either box is degenerate
    union = box_area(a) + box_area(b) - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 0.0)


def is_localized(ious, iou_threshold=IOU_THRESHOLD, strict=False):
    """Bool array: ``iou >= iou_threshold`` (or ``>`` with ``strict=True``, the authors' code)."""
    ious = np.asarray(ious, dtype=np.float64)
    return ious > iou_threshold if strict else ious >= iou_threshold


def top_k_classes(logits, k=TOP_K):
    """``(N, K)`` logits -> ``(N, min(k, K))`` int64 class indices, best first (ties: lower index first)."""
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, K), got shape {logits.shape}")
    k = min(k, logits.shape[1])
    return np.argsort(-logits, axis=1, kind="stable")[:, :k]


class LocalizationAccumulator:
    """Counts for the five metrics, fed batch by batch; :meth:`summary` gives percentages.

    ``update(ious, top_k, labels)``: ``ious`` (B,) IoU of the ground-truth
    class CAM box with the gt box; ``top_k`` (B, k) predicted classes, best
    first; ``labels`` (B,) ground-truth classes.
    """

    def __init__(self, iou_threshold=IOU_THRESHOLD, strict=False):
        self.iou_threshold = iou_threshold
        self.strict = strict
        self.count = 0
        self.hits = dict.fromkeys(METRICS, 0)

    def update(self, ious, top_k, labels):
        ious = np.asarray(ious, dtype=np.float64).reshape(-1)
        top_k = np.asarray(top_k).reshape(len(ious), -1)
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(ious) or top_k.shape[1] == 0:
            raise ValueError(f"need one IoU, one label and >= 1 class per image, got "
                             f"{len(ious)} IoUs, {len(labels)} labels, top_k of shape {top_k.shape}")
        loc = is_localized(ious, self.iou_threshold, self.strict)
        top1 = top_k[:, 0] == labels
        top5 = (top_k[:, :TOP_K] == labels[:, None]).any(axis=1)
        for name, hit in (("gt_known_loc", loc), ("top1_loc", loc & top1), ("top1_clas", top1),
                          ("top5_loc", loc & top5), ("top5_clas", top5)):
            self.hits[name] += int(hit.sum())
        self.count += len(ious)

    def summary(self):
        """``{metric: percent}`` for :data:`METRICS`; raises ``ValueError`` when nothing was added."""
        if self.count == 0:
            raise ValueError("no images were evaluated")
        return {name: 100.0 * self.hits[name] / self.count for name in METRICS}
