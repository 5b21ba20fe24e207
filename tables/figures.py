"""The figures of a collected table (tables.runs.collect): the claims' forest plot and the paper's
Figure 2 across methods (docs/claims.md, docs/tables.md).  Images are uint8 BGR."""
import os
import re

import cv2
import numpy as np

import fileio
from cam import vis
from cam.metrics import METRIC_TITLES
from tables import paper
from tables.runs import FIGURE_DIR

PANEL = re.compile(r"^\d{5}_.+\.png$")   # evaluate.py --vis: one panel per image, {index:05d}_{name}.png
LABEL_HEIGHT = 28   # pixels of Figure 2's column headers
COLOURS = {"supported": "tab:green", "contradicted": "tab:red", "inconclusive": "tab:grey"}


def one_per(items, key):
    """The first item of each value of ``key``, in order: one (depth, method, batch) per cell (``"run"``)."""
    seen = {}
    for x in items:
        seen.setdefault(x[key], x)
    return list(seen.values())


def claims_plot(records, title, width=1000):
    """Forest plot, uint8 BGR: a row per computed instance, ours with its interval, the paper's A - B."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    done = [r for r in records if r.get("difference") is not None]
    fig = Figure(figsize=(width / 100, (120 + 26 * max(1, len(done))) / 100), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ys = np.arange(len(done))[::-1]
    for y, r in zip(ys, done):
        lo, hi = r["interval"]
        ax.errorbar(r["difference"], y, xerr=[[r["difference"] - lo], [hi - r["difference"]]], fmt="o",
                    color=COLOURS[r["verdict"]], capsize=3)
        ax.plot(r["paper_difference"], y, "D", mfc="none", mec="black")
    for verdict_name, colour in COLOURS.items():
        ax.errorbar([], [], xerr=[], fmt="o", color=colour, label=f"ours, {verdict_name}")
    ax.plot([], [], "D", mfc="none", mec="black", label="paper")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(ys, [f"{r['claim']}  {r['label']}  {METRIC_TITLES[r['metric']]}" for r in done], fontsize=8)
    ax.set_ylim(-0.8, len(done) - 0.2)
    ax.set_xlabel(f"A - B, points ({paper.LEVEL}% bootstrap interval over seeds and images)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    canvas.draw()
    return cv2.cvtColor(np.asarray(canvas.buffer_rgba()), cv2.COLOR_RGBA2BGR)


def panels_of(folder):
    """{file name: BGR image} of the per-image panels in an ``evaluate.py --vis`` folder."""
    try:
        names = sorted(n for n in os.listdir(folder) if PANEL.match(n))
    except OSError:
        return {}
    images = {n: cv2.imread(os.path.join(folder, n), cv2.IMREAD_COLOR) for n in names}
    return {n: img for n, img in images.items() if img is not None}


def label(text, width, height=LABEL_HEIGHT):
    """A white ``(height, width, 3)`` uint8 tile with ``text`` in black."""
    tile = np.full((height, width, 3), vis.BACKGROUND, dtype=np.uint8)
    cv2.putText(tile, text, (4, height - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def figure2(result, path):
    """Write the paper's Figure 2 across methods to ``path``: rows the same validation images, columns the
    runs of the first seed, one block per depth; ``[path]``, or ``[]`` if no run has panels."""
    first = result["seeds"][0]
    runs = {(r["cell"], r["seed"]): r for r in result["runs"].values() if r["status"] == "ok"}
    columns = [(c["depth"], f"ResNet{c['depth']} {paper.METHOD_NAMES[c['method']]} b{c['trained_batch']}",
                panels_of(os.path.join(runs[(c["run"], first)]["logdir"], FIGURE_DIR)))
               for c in one_per(result["cells"], "run") if (c["run"], first) in runs]
    columns = [c for c in columns if c[2]]
    if not columns:
        return []
    shape = next(iter(columns[0][2].values())).shape
    blank = np.full(shape, vis.BACKGROUND, dtype=np.uint8)   # a column without an image: rows stay aligned
    blocks = []
    for depth in sorted({d for d, _, _ in columns}, reverse=True):
        cols = [c for c in columns if c[0] == depth]
        names = sorted(set().union(*(c[2] for c in cols)))
        blocks += [vis.grid([label(h, shape[1]) for _, h, _ in cols], columns=len(cols)),
                   vis.grid([c[2].get(n, blank) for n in names for c in cols], columns=len(cols))]
    width = max(b.shape[1] for b in blocks)
    blocks = [np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in blocks]
    fileio.write_png(path, np.concatenate(blocks, axis=0))
    return [path]
