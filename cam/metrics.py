"""IoU with inclusive pixels, and ONE evaluator over a list of CAM thresholds.

Boxes are int ``[x0, y0, x1, y1]`` pixel indices with the max **inclusive**
(Tiny ImageNet's annotation convention), so a box covers
``(x1 - x0 + 1) * (y1 - y0 + 1)`` pixels; ``[3, 3, 3, 3]`` is one pixel.

:class:`BoxEvaluator` follows clovaai/wsolevaluation's ``BoxEvaluator``
(``evaluation.py``): per image, the box(es) at every threshold, the best IoU
with the ground truth at each, and per IoU threshold the count of images
localised at each CAM threshold, over the whole set (counting an image as
localised when *any* threshold works would inflate accuracy).  One fixed
threshold is a list of length one.  Metrics, in percent of the images:

* ``gt_known_loc``: localised (the box from the ground-truth class CAM);
* ``top1_loc`` / ``top5_loc``: localised and the ground truth is the top-1 /
  among the top-5 classes (equal to ILSVRC's definition: only the guess that
  is the ground-truth class can count, and its CAM is the ground-truth one);
* ``top1_clas`` / ``top5_clas``: classification only.
With fewer than 5 classes "top-5" means all classes.  Without a class prediction (score maps
of another codebase without one, ``evaluation.scoremaps``) an image's ``top1`` / ``top5`` is
None, and every metric that needs them is None (never counted as a miss).
"""

import numpy as np

from cam.box import boxes_at_cuts

TOP_K = 5  # Top-5 Loc / Top-5 Clas (ILSVRC convention)
METRICS = ("gt_known_loc", "top1_loc", "top1_clas", "top5_loc", "top5_clas")
# How each metric is printed (the paper's names; every table and report uses these)
METRIC_TITLES = {
    "gt_known_loc": "GT-known Loc",
    "top1_loc": "Top-1 Loc",
    "top1_clas": "Top-1 Clas",
    "top5_loc": "Top-5 Loc",
    "top5_clas": "Top-5 Clas",
}
CURVES = ("gt_known_loc", "top1_loc", "top5_loc")


def box_area(boxes):
    """Pixel count of inclusive boxes ``(..., 4)``; a box with ``x1 < x0`` or ``y1 < y0`` has area 0."""
    boxes = np.asarray(boxes, dtype=np.int64)
    return np.maximum(boxes[..., 2] - boxes[..., 0] + 1, 0) * np.maximum(
        boxes[..., 3] - boxes[..., 1] + 1, 0
    )


def iou(boxes_a, boxes_b, clamp=True):
    """IoU of inclusive int boxes, broadcast over leading dims: ``(..., 4), (..., 4) -> (...)`` float64.

    ``clamp=True`` (sound arithmetic, wsolevaluation ``calculate_multiple_iou``):
    the intersection's width and height are clamped at 0; an empty union gives 0.
    ``clamp=False`` (SN-ResNet ``codes/utils_loc.py`` ``bb_IOU``): areas are
    ``(x1 - x0 + 1) * (y1 - y0 + 1)`` unclamped, so two boxes apart in both x and y
    get a positive "intersection" (``[0, 0, 20, 20]`` vs ``[40, 40, 63, 63]``:
    361 / 656 = 0.55); a zero union (their ZeroDivisionError) gives 0 here.
    """
    a = np.asarray(boxes_a, dtype=np.int64)
    b = np.asarray(boxes_b, dtype=np.int64)
    if a.shape[-1:] != (4,) or b.shape[-1:] != (4,):
        raise ValueError(f"boxes must have a last dimension of 4, got {a.shape} and {b.shape}")
    inter_w = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]) + 1
    inter_h = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]) + 1
    if clamp:
        inter = np.maximum(inter_w, 0) * np.maximum(inter_h, 0)
        union = box_area(a) + box_area(b) - inter
    else:
        inter = inter_w * inter_h
        union = (
            (a[..., 2] - a[..., 0] + 1) * (a[..., 3] - a[..., 1] + 1)
            + (b[..., 2] - b[..., 0] + 1) * (b[..., 3] - b[..., 1] + 1)
            - inter
        )
    ok = union > 0 if clamp else union != 0
    return np.where(ok, inter / np.where(ok, union, 1), 0.0)


def is_localized(ious, iou_threshold, strict):
    """Bool array: ``iou > iou_threshold`` (``strict``, SN-ResNet and the paper) or ``>=`` (wsolevaluation)."""
    ious = np.asarray(ious, dtype=np.float64)
    return ious > iou_threshold if strict else ious >= iou_threshold


def top_k_classes(logits, k=TOP_K):
    """``(N, K)`` logits -> ``(N, min(k, K))`` int64 class indices, best first (ties: lower index first)."""
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, K), got shape {logits.shape}")
    k = min(k, logits.shape[1])
    return np.argsort(-logits, axis=1, kind="stable")[:, :k]


class BoxEvaluator:
    """Localisation counts of one protocol at every CAM threshold and IoU threshold.

    Args:
        protocol: a :class:`cam.protocols.Protocol` (level map, cut, pick, write-out, IoU, hit rule).
        thresholds: ``(T,)`` CAM thresholds (fractions of the map's maximum).
        iou_thresholds: IoU thresholds; the default is the paper's 0.5 alone.
    Feed it with :meth:`accumulate` (one image) or :meth:`add_box` (a given box,
    e.g. a baseline), read it with :meth:`curves`, :meth:`summary`, :meth:`best`.
    """

    def __init__(self, protocol, thresholds, iou_thresholds=(0.5,)):
        self.protocol = protocol
        self.thresholds = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        if len(self.thresholds) == 0:
            raise ValueError("need at least one CAM threshold")
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        self.count = 0
        self.unclassified = 0  # images fed without a class prediction (top1 / top5 None)
        self.clas = {"top1_clas": 0, "top5_clas": 0}
        self.hits = {
            t: {c: np.zeros(len(self.thresholds), np.int64) for c in CURVES}
            for t in self.iou_thresholds
        }

    def accumulate(self, levels, gt_box, top1, top5):
        """Add one image: ``levels`` its level map (``protocol.level_map``), ``gt_box`` (4,) inclusive,
        ``top1`` / ``top5`` whether the ground truth is the top-1 / among the top-5 classes
        (None: no class prediction).

        Returns ``(ious (T,), boxes (T, 4))``: per threshold the best IoU over the
        box(es) and the box that reached it.
        """
        p = self.protocol
        boxes, owner = boxes_at_cuts(levels, p.cuts(levels, self.thresholds), p.pick, p.write)
        ious = iou(boxes, np.asarray(gt_box)[None, :], p.clamp)
        starts = np.unique(owner)
        if len(starts) < len(boxes):  # several boxes per mask: the best of each
            ends = np.append(starts[1:], len(boxes))
            best = {s: s + int(np.argmax(ious[s:e])) for s, e in zip(starts, ends)}
            owner = np.array([best[o] for o in owner])
        self._count(ious[owner], top1, top5)
        return ious[owner], boxes[owner]

    def add_box(self, box, gt_box, top1=False, top5=False):
        """Add one image whose box is given (the same at every threshold); returns its IoU."""
        value = float(iou(box, gt_box, self.protocol.clamp))
        self._count(np.full(len(self.thresholds), value), bool(top1), bool(top5))
        return value

    def _count(self, ious, top1, top5):
        if top1 is None or top5 is None:
            self.unclassified += 1
            top1 = top5 = False
        for t, hits in self.hits.items():
            loc = is_localized(ious, t, self.protocol.strict)
            hits["gt_known_loc"] += loc
            if top1:
                hits["top1_loc"] += loc
            if top5:
                hits["top5_loc"] += loc
        self.clas["top1_clas"] += bool(top1)
        self.clas["top5_clas"] += bool(top5)
        self.count += 1

    def _check(self):
        if self.count == 0:
            raise ValueError("no images were evaluated")

    def curves(self, iou_threshold=0.5):
        """``{curve: (T,) percent}`` for :data:`CURVES` at one IoU threshold; Top-1 / Top-5 Loc are
        None when an image had no class prediction."""
        self._check()
        return {
            c: None if self.unclassified and c != "gt_known_loc" else 100.0 * h / self.count
            for c, h in self.hits[float(iou_threshold)].items()
        }

    def index(self, threshold):
        """Position of ``threshold`` in the list (ValueError when absent)."""
        found = np.flatnonzero(np.isclose(self.thresholds, threshold, rtol=0, atol=1e-9))
        if len(found) == 0:
            raise ValueError(f"threshold {threshold} was not evaluated")
        return int(found[0])

    def summary(self, threshold, iou_threshold=0.5):
        """The five :data:`METRICS` (percent; None where a class prediction is missing) at one CAM threshold."""
        i = self.index(threshold)
        out = {c: None if v is None else float(v[i]) for c, v in self.curves(iou_threshold).items()}
        out.update(
            {c: None if self.unclassified else 100.0 * n / self.count for c, n in self.clas.items()}
        )
        return {m: out[m] for m in METRICS}

    def best(self, curve="gt_known_loc", iou_threshold=0.5):
        """``(threshold, percent)`` where ``curve`` is highest (the lowest threshold on ties);
        ``(None, None)`` for a curve that needs class predictions the images lack."""
        values = self.curves(iou_threshold)[curve]
        if values is None:
            return None, None
        i = int(np.argmax(values))
        return float(self.thresholds[i]), float(values[i])

    def sweep(self, iou_threshold=0.5):
        """JSON-able curves over all thresholds, with the best threshold by GT-known Loc (MaxBoxAcc)."""
        curves = self.curves(iou_threshold)
        threshold, value = self.best("gt_known_loc", iou_threshold)
        i = self.index(threshold)
        return {
            "thresholds": self.thresholds.tolist(),
            **{c: None if v is None else v.tolist() for c, v in curves.items()},
            "num_images": self.count,
            "best": {
                "threshold": threshold,
                "max_box_acc": value,
                **{
                    c: None if curves[c] is None else float(curves[c][i])
                    for c in ("top1_loc", "top5_loc")
                },
            },
        }
