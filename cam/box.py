"""Scoremap to bounding box: the authors' rule (default) and the wsolevaluation rule.

Input: one scoremap, ``(H, W)`` float, finite, normally min-max normalised
to ``[0, 1]`` (``cam.cam.normalize_map``).  Output: int32 ``[x0, y0, x1, y1]``.

Both rules binarise with a *strict* ``>``: a pixel is foreground when its
score is greater than ``threshold * max(scoremap)``.  That is what both public
codes do (``cv2.THRESH_TOZERO`` in the authors' code, ``cv2.THRESH_BINARY`` in
wsolevaluation: both keep ``src > thresh``).  Contours come from
``cv2.findContours(mask, RETR_TREE, CHAIN_APPROX_SIMPLE)``; a contour's
``cv2.boundingRect`` is ``(x, y, w, h)`` with ``x + w`` one past its last column.

``"authors"`` (default; facts.md, the first author's SN-ResNet ``utils_loc.py``):
    threshold ``cam_threshold * max`` of the normalised map (0.2 in the paper's
    runs), take the bounding rectangle with the largest area ``w * h`` (on ties
    the first in OpenCV's contour list, which OpenCV fills in reverse raster
    order, as the authors' loop did), and write it ``[x, y, x + w, y + h]``.  Read with this
    project's inclusive convention that box is one pixel too wide and one too
    tall: ``x1 = x + w`` is one past the last foreground column, and can equal
    ``W`` (outside the image).  We reproduce it faithfully because the paper's
    numbers were measured with it; on a 64 x 64 image the extra row and column
    change IoU by a few points for small boxes.
    Two differences from the authors' code, both documented choices: (1) they
    thresholded the grey level of a cubehelix colour rendering of the map
    (``tensorpack.utils.viz.intensity_to_rgb``), an 8-bit image whose luminance
    follows the map; we threshold the float map itself.  (2) Their code crashes
    when nothing survives the threshold; we return ``[0, 0, 0, 0]``.

``"wsol"`` (clovaai/wsolevaluation, ``compute_bboxes_from_scoremaps``):
    quantise to 8 bits (``uint8(map * 255)``), threshold at
    ``int(cam_threshold * max)`` of that, take the contour of largest
    ``cv2.contourArea`` (polygon area, the first one on ties), and write
    ``[x, y, min(x + w, W - 1), min(y + h, H - 1)]``; the clipping keeps the
    box inside the image but still adds a pixel where it is not at the border.
    Requires the map in ``[0, 1]``.

No contour (nothing above the threshold, e.g. an all-zero map): ``[0, 0, 0, 0]``
under both rules (wsolevaluation's choice), a one-pixel box in the top-left
corner that scores as a miss for any real object.
"""
import cv2
import numpy as np

BOX_RULES = ("authors", "wsol")
NO_BOX = (0, 0, 0, 0)   # wsolevaluation: returned when no contour survives the threshold


def _contours(mask):
    """External and hole contours of a uint8 ``(H, W)`` mask (OpenCV 3 returns 3 values, 4 and 5 return 2)."""
    found = cv2.findContours(mask, cv2.RETR_TREE, cv2.CHAIN_APPROX_SIMPLE)
    return found[-2]


def _check(scoremap, rule):
    scoremap = np.asarray(scoremap)
    if scoremap.ndim != 2 or scoremap.size == 0:
        raise ValueError(f"scoremap must be a non-empty 2-D (H, W) array, got shape {scoremap.shape}")
    if not np.isfinite(scoremap).all():
        raise ValueError("scoremap has non-finite values; normalise it with cam.normalize_map first")
    if rule not in BOX_RULES:
        raise ValueError(f"unknown box rule {rule!r}; choose one of {BOX_RULES}")
    if rule == "wsol" and (scoremap.min() < 0 or scoremap.max() > 1):
        raise ValueError("the wsol box rule needs a scoremap in [0, 1]")
    return scoremap


def _foreground_fn(scoremap, rule):
    """Return ``f(threshold) -> uint8 mask`` for one map (the quantisation is done once)."""
    if rule == "wsol":
        quantised = (scoremap * 255).astype(np.uint8)   # wsolevaluation: 8-bit copy of the map
        top = int(quantised.max())
        return lambda t: (quantised > int(t * top)).view(np.uint8)
    scoremap = scoremap.astype(np.float32, copy=False)
    top = float(scoremap.max())
    return lambda t: (scoremap > np.float32(t * top)).view(np.uint8)


def _box_from_mask(mask, rule):
    contours = _contours(mask)
    if len(contours) == 0:
        return NO_BOX
    height, width = mask.shape
    if rule == "wsol":
        x, y, w, h = cv2.boundingRect(max(contours, key=cv2.contourArea))
        return x, y, min(x + w, width - 1), min(y + h, height - 1)
    best, best_area = None, 0
    for contour in contours:
        rect = cv2.boundingRect(contour)
        if rect[2] * rect[3] > best_area:             # strict: the first rectangle wins ties
            best, best_area = rect, rect[2] * rect[3]
    x, y, w, h = best
    return x, y, x + w, y + h


def scoremap_to_box(scoremap, cam_threshold=0.2, rule="authors"):
    """One box from one scoremap; ``cam_threshold`` 0.2 is the paper's (facts.md: authors' evaluation).

    Args:
        scoremap: ``(H, W)`` float, finite (``[0, 1]`` for ``rule="wsol"``).
        cam_threshold: fraction of the map's maximum; pixels strictly above it are foreground.
        rule: ``"authors"`` or ``"wsol"`` (see the module docstring for the exact conventions).
    Returns:
        int32 ``(4,)`` ``[x0, y0, x1, y1]``; ``[0, 0, 0, 0]`` when no pixel is above the threshold.
    """
    scoremap = _check(scoremap, rule)
    mask = _foreground_fn(scoremap, rule)(cam_threshold)
    return np.asarray(_box_from_mask(mask, rule), dtype=np.int32)


def boxes_at_thresholds(scoremap, thresholds, rule="authors"):
    """Boxes of one scoremap at every threshold; returns int32 ``(T, 4)``, same rules as :func:`scoremap_to_box`.

    Thresholds that select the same pixels give the same box; the foreground
    masks are nested, so the pixel count identifies the mask and each
    distinct mask is traced once.
    """
    scoremap = _check(scoremap, rule)
    foreground = _foreground_fn(scoremap, rule)
    boxes = np.empty((len(thresholds), 4), dtype=np.int32)
    by_count = {}
    for i, t in enumerate(thresholds):
        mask = foreground(float(t))
        count = int(np.count_nonzero(mask))
        if count not in by_count:
            by_count[count] = _box_from_mask(mask, rule)
        boxes[i] = by_count[count]
    return boxes
