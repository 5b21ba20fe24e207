"""CAM evaluation, NumPy + OpenCV + matplotlib's colour map only (no TensorFlow).

* :mod:`cam.cam`: raw CAMs from features and FC weights, resize, min-max normalisation.
* :mod:`cam.protocols`: the ``authors`` / ``paper`` / ``wsol`` protocols (level map, cut, pick, IoU, hit),
  and one score map's level maps under several protocols (``level_maps``).
* :mod:`cam.box`: level map to boxes at many thresholds, each distinct mask traced once.
* :mod:`cam.metrics`: inclusive IoU and the one evaluator over a list of thresholds.
* :mod:`cam.maxboxacc`: MaxBoxAccV2 and its Top-1 Loc twin.
* :mod:`cam.baselines`: the whole-image box and the best fixed box.
* :mod:`cam.vis`: the paper's Figure 2 panels, grids, the sweep plot.

Boxes everywhere are int ``[x0, y0, x1, y1]`` with the max inclusive; the
conventions and their sources are in docs/sources.md.
"""

from cam.cam import class_activation_maps, normalize_map, resize_map
from cam.metrics import (
    METRIC_TITLES,
    METRICS,
    TOP_K,
    BoxEvaluator,
    box_area,
    iou,
    is_localized,
    top_k_classes,
)
from cam.protocols import (
    CAM_THRESHOLD,
    IOU_THRESHOLD,
    NAMES,
    PROTOCOLS,
    WSOL_MULTI,
    level_maps,
    threshold_grid,
)

__all__ = [
    "class_activation_maps",
    "normalize_map",
    "resize_map",
    "METRICS",
    "METRIC_TITLES",
    "TOP_K",
    "BoxEvaluator",
    "box_area",
    "iou",
    "is_localized",
    "top_k_classes",
    "CAM_THRESHOLD",
    "IOU_THRESHOLD",
    "NAMES",
    "PROTOCOLS",
    "WSOL_MULTI",
    "level_maps",
    "threshold_grid",
]
