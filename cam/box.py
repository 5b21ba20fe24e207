"""Scoremap to boxes under the three protocols; every distinct foreground mask is traced once.

Each protocol (``cam.protocols``) turns a CAM into a *level map* ``(H, W)``
and a threshold ``t`` into a *cut*; the foreground is ``levels > cut``
(strict, as both public codes: ``cv2.THRESH_TOZERO`` / ``cv2.THRESH_BINARY``
keep ``src > thresh``).  Contours come from ``cv2.findContours(mask,
RETR_TREE, CHAIN_APPROX_SIMPLE)``; ``cv2.boundingRect`` gives ``(x, y, w, h)``
with ``x + w`` one past the last foreground column.

Pick rules (which contour's rectangle):

* ``"rect_area"``: the bounding rectangle of largest ``w * h``, the first on
  ties (SN-ResNet ``codes/utils_loc.py`` ``large_rect``; OpenCV lists contours
  in reverse raster order of discovery).
* ``"contour_area"``: the contour of largest ``cv2.contourArea`` (polygon
  area), the first on ties (wsolevaluation ``evaluation.py``
  ``compute_bboxes_from_scoremaps``).
* ``"all"``: every contour's rectangle (wsolevaluation, ``multi_contour_eval=True``).

Write-outs (rectangle to ``[x0, y0, x1, y1]``), see docs/sources.md:

* ``"one_past"``: ``[x, y, x + w, y + h]`` (SN-ResNet);
* ``"tight"``: ``[x, y, x + w - 1, y + h - 1]``, the inclusive box of the pixels;
* ``"one_past_clipped"``: ``[x, y, min(x + w, W - 1), min(y + h, H - 1)]`` (wsolevaluation).

No contour (nothing above the cut): one box ``[0, 0, 0, 0]`` (wsolevaluation's
choice; SN-ResNet's code crashes there).
"""

import cv2
import numpy as np

PICKS = ("rect_area", "contour_area", "all")
WRITE_OUTS = ("one_past", "tight", "one_past_clipped")
NO_RECT = (0, 0, 0, 0)  # stands for "no contour"; written as the box [0, 0, 0, 0] (wsolevaluation)


def contours_of(mask):
    """External and hole contours of a uint8 ``(H, W)`` mask (OpenCV 3 returns 3 values, 4 and 5 return 2)."""
    return cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)[-2]


def write_out(rects, write, shape):
    """``(n, 4)`` ``(x, y, w, h)`` rectangles -> ``(n, 4)`` int64 ``[x0, y0, x1, y1]`` boxes; ``shape`` = (H, W)."""
    rects = np.asarray(rects, dtype=np.int64).reshape(-1, 4)
    x, y, w, h = rects.T
    if write == "one_past":
        return np.stack([x, y, x + w, y + h], axis=1)
    if write == "tight":
        return np.stack([x, y, x + w - 1, y + h - 1], axis=1)
    if write == "one_past_clipped":
        height, width = shape
        return np.stack([x, y, np.minimum(x + w, width - 1), np.minimum(y + h, height - 1)], axis=1)
    raise ValueError(f"unknown write-out {write!r}; choose one of {WRITE_OUTS}")


def _rects(mask, pick):
    """The ``(x, y, w, h)`` rectangles a pick rule keeps from one uint8 mask; ``[(0, 0, 0, 0)]`` for none."""
    contours = contours_of(mask)
    if len(contours) == 0:
        return [NO_RECT]
    if pick == "all":
        return [cv2.boundingRect(c) for c in contours]
    if pick == "rect_area":
        best = cv2.boundingRect(contours[0])
        for c in contours[1:]:
            rect = cv2.boundingRect(c)
            if rect[2] * rect[3] > best[2] * best[3]:  # strict: the first wins ties
                best = rect
        return [best]
    if pick == "contour_area":
        return [cv2.boundingRect(max(contours, key=cv2.contourArea))]  # max keeps the first on ties
    raise ValueError(f"unknown pick rule {pick!r}; choose one of {PICKS}")


def _boxes(rects, write, shape):
    boxes = write_out(rects, write, shape)
    boxes[np.asarray(rects).reshape(-1, 4)[:, 2] == 0] = 0  # no contour: [0, 0, 0, 0]
    return boxes


def boxes_from_mask(mask, pick, write):
    """Boxes ``(n, 4)`` int64 of one uint8 ``(H, W)`` mask: n = 1 unless ``pick == "all"``."""
    return _boxes(_rects(mask, pick), write, mask.shape)


def foreground_counts(levels, cuts):
    """Pixels above each cut, without building the masks: a histogram for 8-bit maps, a sort otherwise."""
    cuts = np.asarray(cuts)
    if levels.dtype == np.uint8:
        above = levels.size - np.cumsum(np.bincount(levels.ravel(), minlength=256))
        return above[np.clip(cuts, 0, 255).astype(np.int64)]
    ordered = np.sort(levels.ravel())
    return levels.size - np.searchsorted(ordered, cuts, side="right")


def boxes_at_cuts(levels, cuts, pick, write):
    """Boxes of one level map at each cut, tracing each distinct mask once.

    Args:
        levels: ``(H, W)`` level map (uint8 or float32).
        cuts: ``(T,)`` cut values, foreground ``levels > cut``.
    Returns:
        ``(boxes (M, 4) int64, owner (T,) int)``: the boxes of the distinct
        masks, concatenated mask after mask, and for each cut the index of its
        mask's first box.  Masks are nested, so the foreground pixel count
        identifies one; it is read from a histogram before any mask is built.
    """
    rects, owner, first_of = [], np.empty(len(cuts), dtype=np.int64), {}
    for i, (cut, count) in enumerate(zip(cuts, foreground_counts(levels, cuts).tolist())):
        if count not in first_of:
            first_of[count] = len(rects)
            rects.extend(_rects((levels > cut).view(np.uint8), pick) if count else [NO_RECT])
        owner[i] = first_of[count]
    return _boxes(rects, write, levels.shape), owner
