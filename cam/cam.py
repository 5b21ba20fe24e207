"""Class activation maps (Zhou et al., CVPR 2016) from a feature map and FC weights.

Pure NumPy + OpenCV, no TensorFlow.  Shapes and conventions:

* ``features``: float32 ``(N, h, w, C)``, NHWC, the last feature map before
  global average pooling (after the final BN + ReLU).
* ``fc_w``: float32 ``(C, K)``, the weight of the one fully connected layer
  after GAP; ``fc_b``: ``(K,)``.  So ``logits = mean_hw(features) @ fc_w + fc_b``.
* A *raw CAM* is ``(N, h, w)`` float32 at feature resolution: no bias, no ReLU,
  no normalisation.  Because the head is GAP + FC, ``cam[n].mean() +
  fc_b[c] == logits[n, c]`` for the class ``c`` the CAM was taken for.
* A *scoremap* is the raw CAM resized to the image, ``(N, H, W)`` float32,
  min-max normalised to ``[0, 1]``; the protocols (``cam.protocols``) turn it
  into the level map that box extraction reads.
"""

import cv2
import numpy as np

RESIZES = {"bilinear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC}


def class_activation_maps(features, fc_w, classes):
    """Raw CAM of one class per image: ``cam[n] = sum_k features[n, :, :, k] * fc_w[k, classes[n]]``.

    Args:
        features: ``(N, h, w, C)`` float, NHWC.
        fc_w: ``(C, K)`` float, FC weight (input channels x classes).
        classes: ``(N,)`` int, the class of each image whose CAM is wanted
            (the ground-truth class for GT-known evaluation).
    Returns:
        ``(N, h, w)`` float32 raw CAMs (paper sec. 2, "aggregating the
        higher-layer activation maps with the weights between GAP layer and
        softmax layer").
    """
    features = np.asarray(features, dtype=np.float32)
    fc_w = np.asarray(fc_w, dtype=np.float32)
    classes = np.asarray(classes, dtype=np.int64)
    if features.ndim != 4:
        raise ValueError(f"features must be (N, h, w, C) NHWC, got shape {features.shape}")
    if fc_w.ndim != 2 or fc_w.shape[0] != features.shape[3]:
        raise ValueError(
            f"fc_w must be (C, K) with C = {features.shape[3]} feature channels, "
            f"got shape {fc_w.shape}"
        )
    if classes.shape != (features.shape[0],):
        raise ValueError(f"classes must be ({features.shape[0]},), got shape {classes.shape}")
    if classes.size and (classes.min() < 0 or classes.max() >= fc_w.shape[1]):
        raise ValueError(
            f"classes must be in [0, {fc_w.shape[1]}), got {classes.min()}..{classes.max()}"
        )
    weights = fc_w[:, classes].T  # (N, C): one weight vector per image
    return np.einsum("nhwc,nc->nhw", features, weights, optimize=True).astype(np.float32)


def resize_map(cam, image_shape, resize="bilinear"):
    """Resize one ``(h, w)`` map to ``image_shape = (H, W)``; returns ``(H, W)`` float32.

    ``cv2.resize`` takes the size as ``(W, H)``; the swap is done here, once
    (wsolevaluation's ``inference.py`` passes ``(H, W)``, harmless on its square
    images).  ``resize``: ``"bilinear"`` (``cv2.INTER_LINEAR``, the default of
    SN-ResNet's ``cv2.resize``) or ``"cubic"`` (``cv2.INTER_CUBIC``,
    wsolevaluation ``inference.py``); see docs/sources.md.
    """
    height, width = (int(s) for s in image_shape)
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise ValueError(f"cam must be 2-D (h, w), got shape {cam.shape}")
    return cv2.resize(cam, (width, height), interpolation=RESIZES[resize])


def normalize_map(scoremap):
    """Min-max normalise one map to ``[0, 1]``: ``(m - min) / (max - min)``, float32, same shape.

    A constant map (max == min) and a map with any non-finite value (NaN,
    +-inf) carry no localisation information; both give all zeros, which the
    box rules turn into the "no box" box ``[0, 0, 0, 0]`` (see ``cam.box``).
    """
    scoremap = np.asarray(scoremap, dtype=np.float32)
    if scoremap.size == 0 or not np.isfinite(scoremap).all():
        return np.zeros_like(scoremap)
    low, high = float(scoremap.min()), float(scoremap.max())
    if not high > low:
        return np.zeros_like(scoremap)
    out = (scoremap - low) / np.float32(high - low)
    return np.clip(out, 0.0, 1.0, out=out)
