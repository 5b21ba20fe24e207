"""The paper's two tables: its numbers (cited, printed beside ours, never used as results)
and their shape, the one place where Table 1 and Table 2 differ.

Values are percent, copied from the paper's Table 1 and Table 2 (Choe, Park,
Shim, "Improved Techniques for Weakly-Supervised Object Localization", 2018,
arXiv:1802.07888); docs/sources.md lists the paper's conventions.

``TABLE1[(depth, method)][metric]``: paper Table 1 (batch 256).
``TABLE2[(method, batch)][depth]``: paper Table 2 (Top-1 Loc).

Each layout lists its cells in the paper's order (``cells``) and lays a collected
result out as the paper prints it (``rows``).  A *cell* is one (depth, method,
paper batch, metric); its value is the mean over the seeds run for it (tables.report).
"""
from collections import namedtuple

from cam import METRIC_TITLES, METRICS as EVAL_METRICS

METRICS = EVAL_METRICS[:3]   # the paper's three: GT-known Loc, Top-1 Loc, Top-1 Clas

# Column headers as the paper prints them (augment.METHODS order).
METHOD_NAMES = {"cam": "CAM", "hns": "HnS", "gr": "GR",
                "hns_after_gr": "HnS after GR", "gr_after_hns": "GR after HnS"}

# paper Table 1: GT-known Loc, Top-1 Loc, Top-1 Clas; batch size 256.
_TABLE1_ROWS = {
    34: {"cam": (53.46, 27.50, 44.54), "hns": (54.30, 29.72, 46.67), "gr": (57.82, 36.00, 54.13),
         "hns_after_gr": (57.49, 33.93, 51.28), "gr_after_hns": (57.43, 33.45, 50.45)},
    18: {"cam": (53.42, 27.13, 43.90), "hns": (52.89, 27.56, 44.12), "gr": (57.00, 34.43, 52.23),
         "hns_after_gr": (56.99, 33.33, 50.14), "gr_after_hns": (56.76, 32.28, 48.87)},
}
TABLE1_BATCH = 256  # paper Table 1 caption: "The batch size is 256."
TABLE1 = {(depth, method): dict(zip(METRICS, values))
          for depth, row in _TABLE1_ROWS.items() for method, values in row.items()}

# paper Table 2: Top-1 Loc, (ResNet34, ResNet18) for each method and batch size.
_TABLE2_ROWS = {
    "cam": {32: (31.49, 28.47), 128: (29.62, 27.76), 256: (27.50, 27.13)},
    "hns": {32: (31.17, 29.45), 128: (30.32, 29.25), 256: (29.72, 27.56)},
    "gr": {32: (37.84, 35.94), 128: (36.13, 35.83), 256: (36.00, 34.43)},
}
TABLE2_METRIC = "top1_loc"  # paper Table 2 caption: "Top-1 localization accuracy"
TABLE2 = {(method, batch): {34: r34, 18: r18}
          for method, row in _TABLE2_ROWS.items() for batch, (r34, r18) in row.items()}

DEPTHS = (34, 18)  # row order of both tables in the paper

MISSING = "—"
# depth, method, batch (the paper's), trained_batch (may differ in the demo), metric, paper value
Cell = namedtuple("Cell", "depth method batch trained_batch metric paper")
# Rows under each depth of Table 1 and under Table 2: GT-known Loc of boxes drawn without a
# network (evaluate.py's eval.json, protocols[p].baselines).
BASELINES = (("baseline_whole_image", "whole image box"), ("baseline_best_fixed_box", "best fixed box"))


def fmt_num(x):
    return MISSING if x is None else f"{x:.2f}"


def fmt_diff(x):
    return MISSING if x is None else f"{x:+.2f}"


def fmt_stat(stat):
    """``{"mean", "std", "n"}`` -> "57.10" (one seed) or "57.10±0.52" (mean ± std over seeds); ``—``
    if there is no value."""
    if not stat or not stat.get("n"):
        return MISSING
    return fmt_num(stat["mean"]) if stat["n"] == 1 else f"{stat['mean']:.2f}±{stat['std']:.2f}"


def depth_rows(depths):
    """The paper's depths (row order 34, 18) that were run."""
    return [d for d in DEPTHS if depths is None or d in depths]


class Table1:
    metrics = METRICS
    label_columns = 3

    def cells(self, batch_map, depths=None):
        b = TABLE1_BATCH
        return [Cell(d, m, b, batch_map.get(b, b), metric, TABLE1[(d, m)][metric])
                for d in depth_rows(depths) for metric in self.metrics for m in METHOD_NAMES]

    def title(self, trained_batches):
        b = TABLE1_BATCH
        batch = (f"batch {b}" if set(trained_batches) <= {b}
                 else f"batch {'/'.join(map(str, sorted(trained_batches)))} in place of {b}")
        return f"Table 1: accuracy (%) by augmentation, {batch}; ours vs paper Table 1, diff = ours - paper"

    def rows(self, cell, extra, depths):
        """Rows depth x metric x (ours, paper, diff), then the baselines; columns the five methods.

        ``cell(depth, method, batch, metric)`` -> a collected cell; ``extra(cell name, key)`` -> a
        stat of that cell's runs.
        """
        rows = []
        for depth in depth_rows(depths):
            for i, metric in enumerate(self.metrics):
                cs = [cell(depth, m, TABLE1_BATCH, metric) for m in METHOD_NAMES]
                for j, (label, show) in enumerate((("ours", fmt_stat), ("paper", lambda c: fmt_num(c["paper"])),
                                                   ("diff", lambda c: fmt_diff(c["diff"])))):
                    first = [f"ResNet{depth}" if i == j == 0 else "", METRIC_TITLES[metric] if j == 0 else "", label]
                    rows.append(first + [show(c) for c in cs])
                if metric == "gt_known_loc":
                    rows += [["", "", label] + [fmt_stat(extra(c["run"], key)) for c in cs] for key, label in BASELINES]
        return ["Depth", "Metric", ""] + list(METHOD_NAMES.values()), rows


class Table2:
    metrics = (TABLE2_METRIC,)
    label_columns = 2

    def cells(self, batch_map, depths=None):
        return [Cell(d, m, b, batch_map.get(b, b), TABLE2_METRIC, by_depth[d])
                for (m, b), by_depth in TABLE2.items() for d in depth_rows(depths)]

    def title(self, trained_batches):
        return "Table 2: Top-1 Loc (%) by batch size and depth; ours vs paper Table 2, diff = ours - paper"

    def rows(self, cell, extra, depths):
        """Rows method x batch, columns per depth ours / paper / diff; then the baselines (GT-known Loc)."""
        ds = depth_rows(depths)
        headers = ["Method", "Batch size"] + [h for d in ds for h in (f"ResNet{d}", "paper", "diff")]
        rows, seen = [], set()
        for method, b in TABLE2:
            cs = [cell(d, method, b, TABLE2_METRIC) for d in ds]
            ran = cs[0]["trained_batch"]
            row = [METHOD_NAMES[method] if method not in seen else "", str(b) if ran == b else f"{b} (ran {ran})"]
            seen.add(method)
            rows.append(row + [x for c in cs for x in (fmt_stat(c), fmt_num(c["paper"]), fmt_diff(c["diff"]))])
        for key, label in BASELINES:
            row = [f"{label} (GT-known Loc)", ""]
            for d in ds:
                # the baselines use no network: every run of a depth has the same; show the first
                stats = [extra(cell(d, m, b, TABLE2_METRIC)["run"], key) for m, b in TABLE2]
                row += [fmt_stat(next((s for s in stats if s and s["n"]), None)), "", ""]
            rows.append(row)
        return headers, rows


LAYOUTS = {1: Table1(), 2: Table2()}
