"""Pictures: the paper's Figure 2 panels, a grid of them, and the threshold-sweep plot.

All images are uint8 BGR ``(H, W, 3)``.  Boxes are int ``[x0, y0, x1, y1]``
inclusive; a box is drawn along the outer edge of its pixels, after an
integer nearest-neighbour upscale (``scale``) so that 64 x 64 pixels stay
visible.  Colours follow the paper's Figure 2 caption: ground truth blue,
estimate green.  The heatmap uses the cubehelix colour map, as the authors'
``tensorpack.utils.viz.intensity_to_rgb`` default; the overlay is
``0.5 * image + 0.5 * heatmap`` as in their code.
"""
import cv2
import numpy as np

GT_COLOR = (255, 0, 0)        # BGR blue: ground truth (paper Fig. 2)
PRED_COLOR = (0, 255, 0)      # BGR green: estimate (paper Fig. 2)
BACKGROUND = (255, 255, 255)
CURVE_COLORS = {"gt_known_loc": (200, 80, 0), "top1_loc": (0, 140, 0), "top5_loc": (0, 0, 200)}
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def cubehelix(values, start=0.5, rotations=-1.5, hue=1.0, gamma=1.0):
    """Green's (2011) cubehelix colour map with matplotlib's ``'cubehelix'`` defaults.

    ``values`` ``(...)`` in [0, 1] -> ``(..., 3)`` uint8 BGR.

    Its luminance rises linearly with the value, so the grey level of the
    colour image follows the map (what the authors' box rule thresholded).
    """
    lam = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) ** gamma
    amp = hue * lam * (1.0 - lam) / 2.0
    phi = 2.0 * np.pi * (start / 3.0 + rotations * lam)
    cos, sin = np.cos(phi), np.sin(phi)
    red = lam + amp * (-0.14861 * cos + 1.78277 * sin)     # Green 2011, eq. 2
    green = lam + amp * (-0.29227 * cos - 0.90649 * sin)
    blue = lam + amp * (1.97294 * cos)
    bgr = np.stack([blue, green, red], axis=-1)
    return np.round(np.clip(bgr, 0.0, 1.0) * 255.0).astype(np.uint8)


def upscale(image, scale):
    """Nearest-neighbour integer upscale of ``(H, W[, 3])``."""
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def draw_box(image, box, color, scale=1, thickness=1):
    """Draw inclusive ``box`` (original pixel units) on an image upscaled by ``scale``; in place, returns it."""
    x0, y0, x1, y1 = (int(v) for v in box)
    cv2.rectangle(image, (x0 * scale, y0 * scale), ((x1 + 1) * scale - 1, (y1 + 1) * scale - 1),
                  color, thickness)
    return image


def figure_panels(image, scoremap, gt_box, pred_box, scale=4, caption=None):
    """Paper Fig. 2 for one image: [input + gt (blue) + estimate (green) | heatmap | overlay].

    Args:
        image: ``(H, W, 3)`` uint8 BGR.  scoremap: ``(H, W)`` float in [0, 1].
        gt_box, pred_box: inclusive ``[x0, y0, x1, y1]``.  scale: integer upscale.
        caption: optional text written in a strip under the panels.
    Returns: ``(H', 3 W scale + gaps, 3)`` uint8 BGR.
    """
    if image.shape[:2] != scoremap.shape:
        raise ValueError(f"image {image.shape[:2]} and scoremap {scoremap.shape} must have the same (H, W)")
    big = upscale(image, scale)
    heat = upscale(cubehelix(scoremap), scale)
    overlay = (0.5 * big.astype(np.float32) + 0.5 * heat.astype(np.float32)).astype(np.uint8)
    boxed = big.copy()
    thickness = max(1, scale // 2)
    draw_box(boxed, gt_box, GT_COLOR, scale, thickness)
    draw_box(boxed, pred_box, PRED_COLOR, scale, thickness)
    gap = np.full((big.shape[0], max(1, scale), 3), BACKGROUND, dtype=np.uint8)
    row = np.concatenate([boxed, gap, heat, gap, overlay], axis=1)
    if caption is None:
        return row
    return np.concatenate([row, _text_strip(caption, row.shape[1], scale)], axis=0)


def _text_strip(text, width, scale):
    font_scale = max(0.3, 0.12 * scale)
    (_, text_h), base = cv2.getTextSize(text, _FONT, font_scale, 1)
    strip = np.full((text_h + base + 2 * scale, width, 3), BACKGROUND, dtype=np.uint8)
    cv2.putText(strip, text, (scale, text_h + scale), _FONT, font_scale, (0, 0, 0), 1, cv2.LINE_AA)
    return strip


def grid(panels, columns=2, pad=8):
    """Tile equal-width panel rows (as from :func:`figure_panels`) ``columns`` per row, white padding."""
    if not panels:
        raise ValueError("no panels to put in a grid")
    height = max(p.shape[0] for p in panels)
    width = max(p.shape[1] for p in panels)
    rows = -(-len(panels) // columns)
    out = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad, 3), BACKGROUND, np.uint8)
    for i, panel in enumerate(panels):
        top = pad + (i // columns) * (height + pad)
        left = pad + (i % columns) * (width + pad)
        out[top:top + panel.shape[0], left:left + panel.shape[1]] = panel
    return out


def plot_sweep(result, marks=(), size=(420, 640)):
    """Line plot of a :class:`cam.sweep.ThresholdSweep` result: accuracy (%) against threshold.

    ``marks``: ``(threshold, label)`` pairs drawn as grey vertical lines
    (e.g. the paper's 0.2 and the best threshold).  ``size``: ``(H, W)``.
    Returns ``(H, W, 3)`` uint8 BGR.
    """
    height, width = size
    left, right, top, bottom = 56, 150, 20, 44          # margins in pixels for ticks and legend
    img = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    plot_w, plot_h = width - left - right, height - top - bottom

    def to_px(t, acc):
        return (int(round(left + t * plot_w)), int(round(top + (1.0 - acc / 100.0) * plot_h)))

    for tick in np.linspace(0.0, 1.0, 6):
        x, _ = to_px(tick, 0)
        _, y = to_px(0, tick * 100)
        cv2.line(img, (x, top), (x, top + plot_h), (230, 230, 230), 1)
        cv2.line(img, (left, y), (left + plot_w, y), (230, 230, 230), 1)
        cv2.putText(img, f"{tick:.1f}", (x - 10, top + plot_h + 16), _FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{tick * 100:.0f}", (left - 30, y + 4), _FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.rectangle(img, (left, top), (left + plot_w, top + plot_h), (0, 0, 0), 1)
    cv2.putText(img, "CAM threshold", (left + plot_w // 2 - 50, height - 8), _FONT, 0.45, (0, 0, 0), 1,
                cv2.LINE_AA)
    cv2.putText(img, "%", (8, top + plot_h // 2), _FONT, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for i, (t, label) in enumerate(marks):
        x, _ = to_px(t, 0)
        cv2.line(img, (x, top), (x, top + plot_h), (150, 150, 150), 1)
        cv2.putText(img, label, (x + 3, top + 12 + 14 * i), _FONT, 0.35, (100, 100, 100), 1, cv2.LINE_AA)
    thresholds = np.asarray(result["thresholds"])
    for i, (name, color) in enumerate(CURVE_COLORS.items()):
        points = np.array([to_px(t, a) for t, a in zip(thresholds, result[name])], dtype=np.int32)
        cv2.polylines(img, [points.reshape(-1, 1, 2)], False, color, 2, cv2.LINE_AA)
        y = top + 20 + 20 * i
        cv2.line(img, (left + plot_w + 10, y), (left + plot_w + 30, y), color, 2)
        cv2.putText(img, name, (left + plot_w + 36, y + 4), _FONT, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return img
