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
NO_BOX = np.zeros((1, 4), dtype=np.int64)


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


def boxes_from_mask(mask, pick, write):
    """Boxes ``(n, 4)`` int64 of one uint8 ``(H, W)`` mask: n = 1 unless ``pick == "all"``."""
    contours = contours_of(mask)
    if len(contours) == 0:
        return NO_BOX
    if pick == "all":
        rects = [cv2.boundingRect(c) for c in contours]
    elif pick == "rect_area":
        rects = [cv2.boundingRect(contours[0])]
        for c in contours[1:]:
            rect = cv2.boundingRect(c)
            if rect[2] * rect[3] > rects[0][2] * rects[0][3]:   # strict: the first wins ties
                rects = [rect]
    elif pick == "contour_area":
        rects = [cv2.boundingRect(max(contours, key=cv2.contourArea))]   # max keeps the first on ties
    else:
        raise ValueError(f"unknown pick rule {pick!r}; choose one of {PICKS}")
    return write_out(rects, write, mask.shape)


def boxes_at_cuts(levels, cuts, pick, write):
    """Boxes of one level map at each cut, tracing each distinct mask once.

    Args:
        levels: ``(H, W)`` level map (uint8 or float32).
        cuts: ``(T,)`` cut values, foreground ``levels > cut``.
    Returns:
        ``(boxes (M, 4) int64, owner (T,) int)``: the boxes of the distinct
        masks, concatenated, and for each cut the index of its mask's first
        box; ``starts`` of each mask are the sorted unique ``owner`` values.
        Masks are nested, so the foreground pixel count identifies one.
    """
    segments, owner, by_count, total = [], np.empty(len(cuts), dtype=np.int64), {}, 0
    by_cut = {}
    for i, cut in enumerate(cuts):
        key = cut.item() if hasattr(cut, "item") else cut
        if key not in by_cut:
            mask = (levels > cut).view(np.uint8)
            count = int(np.count_nonzero(mask))
            if count not in by_count:
                boxes = boxes_from_mask(mask, pick, write)
                by_count[count] = total
                segments.append(boxes)
                total += len(boxes)
            by_cut[key] = by_count[count]
        owner[i] = by_cut[key]
    return np.concatenate(segments), owner
