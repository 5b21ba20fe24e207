"""Baselines that need no network: the whole image, and the best single fixed box.

Both are scored under a protocol's IoU and hit rule (``cam.protocols``), so
they sit beside that protocol's CAM numbers.  Boxes are ``[x0, y0, x1, y1]``
inclusive, inside the image.

:func:`best_fixed_box` maximises the number of training boxes hit by one box.
When ``intervals(W) * intervals(H) * distinct boxes`` is at most
:data:`EXHAUSTIVE_LIMIT` every box is tried (an exact maximum, the first in
(x0, x1, y0, y1) order on ties); otherwise a coarse grid of data quantiles is
searched on a fixed subsample and its best boxes are refined by coordinate
ascent on all boxes (one coordinate at a time over every position), which
reaches a local maximum, not a proven global one.
"""

import numpy as np

from cam.metrics import iou, is_localized

EXHAUSTIVE_LIMIT = 30_000_000  # box x distinct-gt pairs for the exact search (a few seconds)
COARSE_LEVELS = 9  # quantile levels per coordinate in the coarse grid
COARSE_SAMPLE = 2000  # distinct gt boxes in the coarse stage (fixed seed)


def _hits(candidates, gts, weights, protocol, iou_threshold, chunk=256):
    """Weighted hit count of each candidate ``(C, 4)`` over gts ``(G, 4)``; returns ``(C,)`` int64."""
    out = np.empty(len(candidates), np.int64)
    for start in range(0, len(candidates), chunk):
        part = candidates[start : start + chunk, None, :]
        hit = is_localized(iou(part, gts[None], protocol.clamp), iou_threshold, protocol.strict)
        out[start : start + chunk] = hit @ weights
    return out


def _intervals(size):
    lo, hi = np.triu_indices(size)
    return np.stack([lo, hi], axis=1)


def _exhaustive(gts, weights, shape, protocol, iou_threshold):
    height, width = shape
    xs, ys = _intervals(width), _intervals(height)
    best, best_hits = None, -1
    for x0, x1 in xs:  # one x-interval at a time: every y-interval at once
        cands = np.column_stack([np.full(len(ys), x0), ys[:, 0], np.full(len(ys), x1), ys[:, 1]])
        hits = _hits(cands, gts, weights, protocol, iou_threshold, chunk=len(cands))
        i = int(np.argmax(hits))
        if hits[i] > best_hits:
            best, best_hits = cands[i], int(hits[i])
    return best, best_hits


def _ascend(box, gts, weights, shape, protocol, iou_threshold):
    height, width = shape
    box, score = box.copy(), int(_hits(box[None], gts, weights, protocol, iou_threshold)[0])
    improved = True
    while improved:
        improved = False
        for k, size in ((0, width), (1, height), (2, width), (3, height)):
            lo, hi = (0, box[k + 2]) if k < 2 else (box[k - 2], size - 1)
            cands = np.repeat(box[None], hi - lo + 1, axis=0)
            cands[:, k] = np.arange(lo, hi + 1)
            hits = _hits(cands, gts, weights, protocol, iou_threshold)
            i = int(np.argmax(hits))
            if hits[i] > score:
                box, score, improved = cands[i].copy(), int(hits[i]), True
    return box, score


def best_fixed_box(gt_boxes, image_shape, protocol, iou_threshold=0.5):
    """The one box hitting the most of ``gt_boxes`` ``(N, 4)`` under ``protocol``; ``image_shape`` (H, W).

    Returns ``(box (4,) int64, hits)``.
    """
    gts, weights = np.unique(
        np.asarray(gt_boxes, np.int64).reshape(-1, 4), axis=0, return_counts=True
    )
    if len(gts) == 0:
        raise ValueError("no boxes to fit the fixed box on")
    height, width = (int(s) for s in image_shape)
    pairs = (width * (width + 1) // 2) * (height * (height + 1) // 2) * len(gts)
    if pairs <= EXHAUSTIVE_LIMIT:
        return _exhaustive(gts, weights, (height, width), protocol, iou_threshold)
    rng = np.random.default_rng(0)
    sample = rng.choice(
        len(gts), size=min(COARSE_SAMPLE, len(gts)), replace=False, p=weights / weights.sum()
    )
    levels = np.linspace(0, 1, COARSE_LEVELS)
    limits = np.array([width - 1, height - 1, width - 1, height - 1])
    values = [
        np.unique(np.clip(np.round(np.quantile(gts[:, k], levels)), 0, limits[k])).astype(np.int64)
        for k in range(4)
    ]
    grid = np.stack(np.meshgrid(*values, indexing="ij"), axis=-1).reshape(-1, 4)
    grid = grid[(grid[:, 0] <= grid[:, 2]) & (grid[:, 1] <= grid[:, 3])]
    coarse = _hits(grid, gts[sample], np.ones(len(sample), np.int64), protocol, iou_threshold)
    starts = grid[np.argsort(-coarse, kind="stable")[:3]]
    results = [_ascend(s, gts, weights, (height, width), protocol, iou_threshold) for s in starts]
    return max(results, key=lambda r: r[1])  # max keeps the first on ties
