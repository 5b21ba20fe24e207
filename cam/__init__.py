"""CAM evaluation, NumPy + OpenCV only (no TensorFlow).

* :mod:`cam.cam`: raw CAMs from features and FC weights, bilinear resize, min-max normalisation.
* :mod:`cam.box`: scoremap to box, the authors' rule (default) and wsolevaluation's.
* :mod:`cam.metrics`: inclusive IoU and the GT-known / Top-1 / Top-5 Loc and Clas accumulator.
* :mod:`cam.sweep`: dataset-level accuracy at every threshold (MaxBoxAcc).
* :mod:`cam.vis`: the paper's Figure 2 panels, grids, the sweep plot.

Boxes everywhere are int ``[x0, y0, x1, y1]`` with the max inclusive.
"""
from cam.box import BOX_RULES, boxes_at_thresholds, scoremap_to_box
from cam.cam import class_activation_maps, normalize_map, resize_map, scoremaps_from_cams
from cam.metrics import (IOU_THRESHOLD, METRICS, TOP_K, LocalizationAccumulator, box_area, iou,
                         is_localized, top_k_classes)
from cam.sweep import ThresholdSweep, threshold_grid

__all__ = ["BOX_RULES", "boxes_at_thresholds", "scoremap_to_box", "class_activation_maps",
           "normalize_map", "resize_map", "scoremaps_from_cams", "IOU_THRESHOLD", "METRICS", "TOP_K",
           "LocalizationAccumulator", "box_area", "iou", "is_localized", "top_k_classes",
           "ThresholdSweep", "threshold_grid"]
