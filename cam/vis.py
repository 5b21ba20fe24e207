"""Pictures: the paper's Figure 2 panels, a grid of them, and the threshold-sweep plot (matplotlib).

All images are uint8 BGR ``(H, W, 3)``.  Boxes are int ``[x0, y0, x1, y1]``
inclusive; a box is drawn along the outer edge of its pixels, after an
integer nearest-neighbour upscale (``scale``) so that 64 x 64 pixels stay
visible.  Colours follow the paper's Figure 2 caption: ground truth blue,
estimate green, each over a white edge (ours) so that it shows on any object.  The heatmap uses
matplotlib's cubehelix colour map, as the authors' ``tensorpack.utils.viz.intensity_to_rgb`` default; the overlay is
``0.5 * image + 0.5 * heatmap`` as in their code (SN-ResNet ``codes/utils_loc.py``).
"""

import os
import re

import cv2
import numpy as np

from cam.protocols import CUBEHELIX

GT_COLOR = (255, 0, 0)  # BGR blue: ground truth (paper Fig. 2)
PRED_COLOR = (0, 255, 0)  # BGR green: estimate (paper Fig. 2)
# white edge of each box: a blue box still shows on a blue object (ours)
HALO_COLOR = (255, 255, 255)
BACKGROUND = (255, 255, 255)
_FONT = cv2.FONT_HERSHEY_SIMPLEX
PANEL_FILE = re.compile(
    r"^\d{5}_.+\.png$"
)  # the names panel_file gives (a Figure 2 folder's panels)


def panel_file(index, image_file):
    """The file name of the Figure 2 panel of image ``index`` of its split (``image_file``, that image's
    path in the dataset): ``00017_val_17.png``, so that a folder's panels sort in the split's order."""
    return f"{index:05d}_{os.path.splitext(os.path.basename(image_file))[0]}.png"


def heatmap(scoremap):
    """``(H, W)`` map in [0, 1] -> ``(H, W, 3)`` uint8 BGR through matplotlib's ``cubehelix``, as
    tensorpack's ``viz.intensity_to_rgb`` (RGB float * 255, cast to uint8 as SN-ResNet did).

    Its luminance rises with the value, so the grey level follows the map
    (what the authors' protocol thresholds, ``cam.protocols.authors_grey``).
    """
    rgb = CUBEHELIX(np.asarray(scoremap, dtype=np.float64))[..., :3].astype(np.float32) * 255.0
    return rgb.astype(np.uint8)[..., ::-1].copy()


def upscale(image, scale):
    """Nearest-neighbour integer upscale of ``(H, W[, 3])``."""
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def draw_box(image, box, color, scale=1, thickness=1, halo=HALO_COLOR):
    """Draw inclusive ``box`` (original pixel units) on an image upscaled by ``scale``, in ``color`` over a
    ``halo`` line one pixel wider on each side (None: none), so that it shows on an object of any colour;
    in place, returns it."""
    x0, y0, x1, y1 = (int(v) for v in box)
    corners = (x0 * scale, y0 * scale), ((x1 + 1) * scale - 1, (y1 + 1) * scale - 1)
    if halo is not None:
        cv2.rectangle(image, *corners, halo, thickness + 2)
    cv2.rectangle(image, *corners, color, thickness)
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
        raise ValueError(
            f"image {image.shape[:2]} and scoremap {scoremap.shape} must have the same (H, W)"
        )
    big = upscale(image, scale)
    heat = upscale(heatmap(scoremap), scale)
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
    """A white strip ``width`` wide with ``text`` in black, a line per ``\\n``, at least 12 pixels high."""
    lines = text.split("\n")
    font_scale = max(0.45, 0.12 * scale)
    (_, text_h), base = cv2.getTextSize("Ag", _FONT, font_scale, 1)
    step = text_h + base + 2
    strip = np.full((step * len(lines) + 2 * scale, width, 3), BACKGROUND, dtype=np.uint8)
    for k, line in enumerate(lines):
        cv2.putText(
            strip,
            line,
            (scale, scale + text_h + k * step),
            _FONT,
            font_scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return strip


def grid(panels, columns=2, pad=8):
    """Tile equal-width panel rows (as from :func:`figure_panels`) ``columns`` per row, white padding."""
    if not panels:
        raise ValueError("no panels to put in a grid")
    height = max(p.shape[0] for p in panels)
    width = max(p.shape[1] for p in panels)
    rows = -(-len(panels) // columns)
    out = np.full(
        (rows * (height + pad) + pad, columns * (width + pad) + pad, 3), BACKGROUND, np.uint8
    )
    for i, panel in enumerate(panels):
        top = pad + (i // columns) * (height + pad)
        left = pad + (i % columns) * (width + pad)
        out[top : top + panel.shape[0], left : left + panel.shape[1]] = panel
    return out


def plot_sweep(sweeps, marks=(), size=(420, 640)):
    """matplotlib line plot of threshold sweeps: GT-known Loc (solid) and Top-1 Loc (dashed) per protocol.

    ``sweeps``: ``{name: BoxEvaluator.sweep() dict}``; ``marks``: ``(threshold, label)`` pairs drawn as
    grey vertical lines.  ``size``: ``(H, W)`` pixels.  Returns ``(H, W, 3)`` uint8 BGR.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    height, width = size
    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, (name, sweep) in enumerate(sweeps.items()):
        color = f"C{i}"
        ax.plot(
            sweep["thresholds"], sweep["gt_known_loc"], color=color, label=f"{name} GT-known Loc"
        )
        ax.plot(
            sweep["thresholds"],
            sweep["top1_loc"],
            color=color,
            linestyle="--",
            label=f"{name} Top-1 Loc",
        )
    for t, label in marks:
        ax.axvline(t, color="grey", linewidth=0.8)
        ax.annotate(
            label,
            (t, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=7,
            color="grey",
            xytext=(2, -10),
            textcoords="offset points",
        )
    ax.set(xlabel="CAM threshold (fraction of the maximum)", ylabel="%", xlim=(0, 1), ylim=(0, 100))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    canvas.draw()
    return cv2.cvtColor(np.asarray(canvas.buffer_rgba()), cv2.COLOR_RGBA2BGR)
