"""The figures of a collected table (reproduce.runs.collect): the claims' forest plot and the paper's
Figure 2 across methods (docs/claims.md, docs/tables.md).  Images are uint8 BGR."""

import os

import cv2
import numpy as np

import fileio
from cam import vis
from cam.metrics import METRIC_TITLES
from reproduce import paper
from reproduce.runs import FIGURE_DIR, PER_IMAGE
from runrecord.evaldoc import PerImage

LABEL_HEIGHT = 28  # pixels of Figure 2's column headers
COLOURS = {"supported": "tab:green", "contradicted": "tab:red", "inconclusive": "tab:grey"}


def one_per(items, key):
    """The first item of each value of ``key``, in order: one (depth, method, batch) per cell (``"run"``)."""
    seen = {}
    for x in items:
        seen.setdefault(x[key], x)
    return list(seen.values())


def _render(fig, stem):
    """Write matplotlib ``fig`` as ``stem.png`` and ``stem.pdf`` (vector, for papers); their paths."""
    import io as _io
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    fileio.write_png(
        stem + ".png", cv2.cvtColor(np.asarray(canvas.buffer_rgba()), cv2.COLOR_RGBA2BGR)
    )
    buf = _io.BytesIO()
    fig.savefig(buf, format="pdf")
    fileio.write_bytes(stem + ".pdf", buf.getvalue())
    return [stem + ".png", stem + ".pdf"]


def claims_plot(records, title, stem, width=1000):
    """Write the forest plot (``stem``.png/.pdf): a row per computed instance, ours with its interval
    (coloured by verdict), the paper's A - B, and the side of 0 where the claim is supported shaded."""
    from matplotlib.figure import Figure

    done = [r for r in records if r.get("difference") is not None]
    fig = Figure(figsize=(width / 100, (140 + 26 * max(1, len(done))) / 100), dpi=100)
    ax = fig.add_subplot()
    ys = np.arange(len(done))[::-1]
    span = (
        max([5.0] + [abs(v) for r in done for v in r["interval"] + [r["paper_difference"]]]) * 1.1
    )
    for y, r in zip(ys, done):
        lo, hi = r["interval"]
        side = (0, span) if r["direction"] == "A > B" else (-span, 0)  # where the claim would hold
        ax.fill_betweenx([y - 0.45, y + 0.45], *side, color="tab:green", alpha=0.08, lw=0)
        ax.errorbar(
            r["difference"],
            y,
            xerr=[[r["difference"] - lo], [hi - r["difference"]]],
            fmt="o",
            color=COLOURS[r["verdict"]],
            capsize=3,
        )
        ax.plot(r["paper_difference"], y, "D", mfc="none", mec="black")
    for verdict_name, colour in COLOURS.items():
        ax.errorbar([], [], xerr=[], fmt="o", color=colour, label=f"ours, {verdict_name}")
    ax.plot([], [], "D", mfc="none", mec="black", label="paper")
    ax.fill_between([], [], color="tab:green", alpha=0.15, label="side where the\nclaim holds")
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(
        ys,
        [
            f"{r['claim']}  {r['label']}  {METRIC_TITLES[r['metric']]}  (claim: {r['direction']})"
            for r in done
        ],
        fontsize=8,
    )
    ax.set_ylim(-0.8, len(done) - 0.2)
    ax.set_xlim(-span, span)
    ax.set_xlabel(f"A - B, points ({paper.LEVEL}% bootstrap interval over seeds and images)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    return _render(fig, stem)


def _mean_ious(result, cell):
    """``{file: mean IoU over the cell's seeds}`` from the per-image views of its finished runs (collect's)."""
    per = {}
    views = [
        result[PER_IMAGE][r["eval_json"]]
        for r in result["runs"].values()
        if r["cell"] == cell and r["status"] == "ok"
    ]
    for view in views:
        if isinstance(view, PerImage):  # else the reason it has none (the claims show it)
            for f, iou in zip(view.files, view.ious):
                per.setdefault(f, []).append(iou)
    return {f: float(np.mean(v)) for f, v in per.items()}


def iou_scatter(result, stem, size=3.2):
    """Write ``stem``.png/.pdf: per validation image, its IoU under A (y) against B (x), averaged over
    each cell's seeds, one panel per pair of cells the claims compare (localisation claims, first
    metric).  The quadrants count the images that one method localises (IoU > 0.5) and the other not,
    in both directions, so a difference of a few points shows as the balance of two counts."""
    from matplotlib.figure import Figure

    pairs = one_per(
        [
            r
            for r in result.get("claims") or []
            if r.get("difference") is not None and r["metric"] in ("gt_known_loc", "top1_loc")
        ],
        "label",
    )
    if not pairs:
        return []
    cols = min(3, len(pairs))
    rows = -(-len(pairs) // cols)
    fig = Figure(figsize=(size * cols, size * rows + 0.5), dpi=100)
    for k, r in enumerate(pairs):
        ax = fig.add_subplot(rows, cols, k + 1)
        a, b = (_mean_ious(result, c) for c in r["cells"])
        files = sorted(set(a) & set(b))
        x, y = np.array([b[f] for f in files]), np.array([a[f] for f in files])
        ax.scatter(x, y, s=4, alpha=0.4, color="tab:blue", lw=0)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.6)
        ax.axhline(0.5, color="black", lw=0.5, ls=":")
        ax.axvline(0.5, color="black", lw=0.5, ls=":")
        name_a, name_b = r["label"].split(": ", 1)[1].split(" - ")
        ax.text(
            0.02,
            0.98,
            f"{name_a} only: {int(np.sum((y > 0.5) & (x <= 0.5)))}",
            va="top",
            fontsize=7,
            transform=ax.transAxes,
        )
        ax.text(
            0.98,
            0.02,
            f"{name_b} only: {int(np.sum((x > 0.5) & (y <= 0.5)))}",
            ha="right",
            fontsize=7,
            transform=ax.transAxes,
        )
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"IoU, {name_b}", ylabel=f"IoU, {name_a}")
        ax.set_title(f"{r['label'].split(': ', 1)[1]} ({len(files)} images)", fontsize=8)
        ax.tick_params(labelsize=7)
    shared = sorted({r["label"].split(": ", 1)[0] for r in pairs})
    fig.suptitle(
        f"Per-image IoU, mean over seeds; {', '.join(shared)}\n(dotted: the hit threshold 0.5)",
        fontsize=8,
    )
    fig.tight_layout()
    return _render(fig, stem)


def panels_of(folder):
    """{file name: BGR image} of the per-image panels in an ``evaluate.py --vis`` folder."""
    try:
        names = sorted(n for n in os.listdir(folder) if vis.PANEL_FILE.match(n))
    except OSError:
        return {}
    images = {n: cv2.imread(os.path.join(folder, n), cv2.IMREAD_COLOR) for n in names}
    return {n: img for n, img in images.items() if img is not None}


def label(text, width, height=LABEL_HEIGHT):
    """A white ``(height, width, 3)`` uint8 tile with ``text`` in black."""
    tile = np.full((height, width, 3), vis.BACKGROUND, dtype=np.uint8)
    cv2.putText(
        tile, text, (4, height - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA
    )
    return tile


def figure2(result, path):
    """Write the paper's Figure 2 across methods to ``path`` (and a PDF beside it): rows the same validation
    images, columns the runs of the first seed, one block per depth; ``[png, pdf]``, or ``[]`` without panels."""
    first = result["seeds"][0]
    runs = {(r["cell"], r["seed"]): r for r in result["runs"].values() if r["status"] == "ok"}
    columns = [
        (
            c["depth"],
            f"ResNet{c['depth']} {paper.method_title(c['method'])} b{c['trained_batch']}",
            panels_of(os.path.join(runs[(c["run"], first)]["logdir"], FIGURE_DIR)),
        )
        for c in one_per(result["cells"], "run")
        if (c["run"], first) in runs
    ]
    columns = [c for c in columns if c[2]]
    if not columns:
        return []
    shape = next(iter(columns[0][2].values())).shape
    blank = np.full(
        shape, vis.BACKGROUND, dtype=np.uint8
    )  # a column without an image: rows stay aligned
    blocks = []
    for depth in sorted({d for d, _, _ in columns}, reverse=True):
        cols = [c for c in columns if c[0] == depth]
        names = sorted(set().union(*(c[2] for c in cols)))
        blocks += [
            vis.grid([label(h, shape[1]) for _, h, _ in cols], columns=len(cols)),
            vis.grid([c[2].get(n, blank) for n in names for c in cols], columns=len(cols)),
        ]
    width = max(b.shape[1] for b in blocks)
    blocks = [
        np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)), constant_values=255) for b in blocks
    ]
    image = np.concatenate(blocks, axis=0)
    fileio.write_png(path, image)
    return [path, _raster_pdf(image, os.path.splitext(path)[0] + ".pdf")]


def _raster_pdf(image, path, dpi=150):
    """``path``: a PDF page holding BGR ``image`` at ``dpi`` (Figure 2 is pixels: no vector form)."""
    import io as _io
    from matplotlib.figure import Figure

    fig = Figure(figsize=(image.shape[1] / dpi, image.shape[0] / dpi), dpi=dpi)
    fig.figimage(image[..., ::-1], resize=False)
    buf = _io.BytesIO()
    fig.savefig(buf, format="pdf", dpi=dpi)
    fileio.write_bytes(path, buf.getvalue())
    return path
