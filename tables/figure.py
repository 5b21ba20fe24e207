"""The paper's Figure 2 across methods: the same validation images (rows) under each method (columns).

Each run's evaluation writes its Figure 2 panels with ``evaluate.py --vis <logdir>/figure2``
(:mod:`tables.runs`): one PNG per image, ``{index:05d}_{name}.png``, made by
``cam.vis.figure_panels`` (input with the ground-truth box in blue and the estimate in
green | heatmap | overlay).  Every run of a table evaluates the same validation split
with the same ``--vis-count``, so the panels of different runs show the same images;
:func:`compose` tiles them with ``cam.vis.grid``, one block per depth under a header
naming each column.
"""
import os
import re

import cv2
import numpy as np

import fileio
from cam import vis
from tables import paper

PANEL = re.compile(r"^\d{5}_.+\.png$")
LABEL_HEIGHT = 28   # pixels of the column headers


def panels_of(folder):
    """{file name: BGR image} of the per-image panels in an ``evaluate.py --vis`` folder."""
    try:
        names = sorted(n for n in os.listdir(folder) if PANEL.match(n))
    except OSError:
        return {}
    out = {}
    for n in names:
        img = cv2.imread(os.path.join(folder, n), cv2.IMREAD_COLOR)
        if img is not None:
            out[n] = img
    return out


def label(text, width, height=LABEL_HEIGHT):
    """A white ``(height, width, 3)`` uint8 tile with ``text`` in black."""
    tile = np.full((height, width, 3), vis.BACKGROUND, dtype=np.uint8)
    cv2.putText(tile, text, (4, height - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def compose(columns):
    """``columns``: [(depth, header, {name: panel})] in table order -> one BGR image, or None.

    Rows are the image names of each depth's columns (a column without an image gets a
    blank panel, so that rows stay aligned).
    """
    columns = [c for c in columns if c[2]]
    if not columns:
        return None
    shape = next(iter(columns[0][2].values())).shape
    blank = np.full(shape, vis.BACKGROUND, dtype=np.uint8)
    blocks = []
    for depth in sorted({d for d, _, _ in columns}, reverse=True):
        cols = [c for c in columns if c[0] == depth]
        names = sorted(set().union(*(c[2] for c in cols)))
        heads = vis.grid([label(h, shape[1]) for _, h, _ in cols], columns=len(cols))
        body = vis.grid([c[2].get(n, blank) for n in names for c in cols], columns=len(cols))
        blocks += [heads, body]
    width = max(b.shape[1] for b in blocks)
    blocks = [np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in blocks]
    return np.concatenate(blocks, axis=0)


def write(result, runs, path):
    """Write Figure 2 of ``result``'s first seed to ``path``; the path, or None if no run has panels."""
    seed = result["seeds"][0]
    columns = []
    for r in runs:
        c = r.config
        if c.seed != seed or result["runs"][r.name]["status"] != "ok":
            continue
        head = f"ResNet{c.depth} {paper.METHOD_NAMES[c.aug]} b{c.batch}"
        columns.append((c.depth, head, panels_of(r.figure_dir)))
    image = compose(columns)
    if image is None:
        return None
    fileio.write_png(path, image)
    return path
