"""The three evaluation protocols: CAM -> level map -> foreground at a threshold -> box -> IoU -> hit.

Every step that decides a number, its public source and the reason for each
choice are in docs/sources.md ("Evaluation protocols").  In short:

============  ===================  ===============================  ==============  ===========  =====
protocol      resize (cv2)         level map, cut at threshold t    pick            write-out    hit
============  ===================  ===============================  ==============  ===========  =====
``authors``   bilinear (default)   grey of uint8 cubehelix render,  largest w*h     one past     IoU unclamped ``> 0.5``
                                   ``int(t * grey.max())``
``paper``     bilinear             min-max float, ``t * max``       largest w*h     tight        IoU clamped ``> 0.5``
``wsol``      cubic                ``uint8(255 * minmax)``,         largest contour one past,    IoU clamped ``>= 0.5``
                                   ``int(t * max)``                 area            clipped
============  ===================  ===============================  ==============  ===========  =====

``authors`` is SN-ResNet ``codes/utils_loc.py`` bit for bit from the resize on;
``wsol`` is clovaai/wsolevaluation ``inference.py`` + ``evaluation.py``; ``paper``
is the paper's words (sec. 3) with sound arithmetic.  Level maps are ``(H, W)``
for an image of ``H`` rows and ``W`` columns; boxes ``[x0, y0, x1, y1]`` with the
max inclusive (Tiny ImageNet's annotation convention).
"""

from dataclasses import dataclass

import cv2
import matplotlib
import numpy as np

from cam.cam import normalize_map, resize_map

# CAM (Zhou et al. 2016: 20% of the max), which the paper follows; SN-ResNet utils_loc.py
CAM_THRESHOLD = 0.2
IOU_THRESHOLD = 0.5  # paper sec. 3: IoU "more than 50%"
CUBEHELIX = matplotlib.colormaps["cubehelix"]  # tensorpack.utils.viz.intensity_to_rgb's default map


def authors_grey(resized):
    """SN-ResNet's grey image: ``cvtColor(uint8(intensity_to_rgb(m, normalize=True)), RGB2GRAY)``.

    ``resized``: ``(H, W)`` float32 CAM after ``cv2.resize``.  As tensorpack's
    ``viz.intensity_to_rgb``: cast to float64, min-max in place, matplotlib
    ``cubehelix`` RGBA -> RGB, float32 * 255; then ``.astype('uint8')``
    (truncation) and OpenCV's RGB -> grey.  A constant map gives NaN there,
    which the colour map paints (0, 0, 0): an all-zero grey image.
    Returns ``(H, W)`` uint8.
    """
    intensity = np.asarray(resized).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        intensity -= intensity.min()
        intensity /= intensity.max()
    rgb = (CUBEHELIX(intensity)[..., :3].astype(np.float32) * 255.0).astype(np.uint8)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def uint8_map(scoremap):
    """wsolevaluation's 8-bit copy ``(scoremap * 255).astype(uint8)`` of a ``[0, 1]`` float map."""
    return (np.asarray(scoremap, dtype=np.float32) * 255).astype(np.uint8)


@dataclass(frozen=True)
class Protocol:
    """One protocol: how a resized CAM becomes boxes and how a box is scored (see the module table)."""

    name: str
    resize: str  # "bilinear" or "cubic" (cam.cam.RESIZES)
    levels: str  # "grey8" (authors), "float" (paper), "uint8" (wsol)
    pick: str  # cam.box.PICKS
    write: str  # cam.box.WRITE_OUTS
    clamp: bool  # clamp the IoU intersection at 0 in each axis
    strict: bool  # hit at IoU > threshold (True) or >= (False)

    def level_map(self, resized):
        """``(H, W)`` float32 resized CAM -> the level map whose ``> cut`` pixels are foreground."""
        if self.levels == "grey8":
            return authors_grey(resized)
        scoremap = normalize_map(resized)
        return uint8_map(scoremap) if self.levels == "uint8" else scoremap

    def cuts(self, levels, thresholds):
        """Cut per threshold ``(T,)``: ``int(t * max)`` on 8-bit maps, ``float32(t * max)`` on float maps."""
        top = levels.max()
        if self.levels == "float":
            return [np.float32(float(t) * float(top)) for t in thresholds]
        return [int(float(t) * int(top)) for t in thresholds]

    def with_pick(self, pick):
        return Protocol(
            self.name, self.resize, self.levels, pick, self.write, self.clamp, self.strict
        )


PROTOCOLS = {
    p.name: p
    for p in (
        Protocol("authors", "bilinear", "grey8", "rect_area", "one_past", clamp=False, strict=True),
        Protocol("paper", "bilinear", "float", "rect_area", "tight", clamp=True, strict=True),
        Protocol(
            "wsol", "cubic", "uint8", "contour_area", "one_past_clipped", clamp=True, strict=False
        ),
    )
}
NAMES = tuple(PROTOCOLS)  # authors, paper, wsol: the order of evaluate.py's tables
# MaxBoxAccV2 (wsolevaluation BoxEvaluator, multi_contour_eval=True): every contour's box
WSOL_MULTI = PROTOCOLS["wsol"].with_pick("all")


def level_maps(scoremap, image_shape, protocols):
    """Each protocol's level map of one score map, and the resized maps: ``({name: level map},
    {resize: (H, W) float32 map})``.

    ``scoremap``: ``(h, w)`` real, any resolution and range (a raw CAM, or another codebase's map);
    ``image_shape``: ``(H, W)``; ``protocols``: ``{name: Protocol}``.  One resize per interpolation and
    one level map per kind, shared by the protocols that use them.
    """
    resized, levels, out = {}, {}, {}
    for name, p in protocols.items():
        if p.resize not in resized:
            resized[p.resize] = resize_map(scoremap, image_shape, p.resize)
        key = (p.resize, p.levels)
        if key not in levels:
            levels[key] = p.level_map(resized[p.resize])
        out[name] = levels[key]
    return out, resized


def whole_image_box(protocol, image_shape):
    """The box this protocol writes for a mask covering the whole image (the whole-image baseline)."""
    from cam.box import write_out

    height, width = image_shape
    return write_out([(0, 0, width, height)], protocol.write, image_shape)[0]


def threshold_grid(step=0.01):
    """Thresholds ``0, step, 2 step, ..., 1`` (both ends included); ``1 / step`` must be a whole number.

    Rounded to 12 decimals so that 0.2 is exactly 0.2 (the paper's threshold is on the grid).
    """
    count = round(1.0 / step) if step > 0 else 0
    if not 0 < step <= 1 or abs(count * step - 1.0) > 1e-9:
        raise ValueError(
            f"the threshold step must be in (0, 1] and divide 1 (0.01, 0.005, 0.001, ...), got {step}"
        )
    return np.round(np.arange(count + 1) * step, 12)
