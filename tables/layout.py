"""The shape of paper Table 1 and Table 2: the one place where the two tables differ.

Each layout lists its cells in the paper's order (:meth:`cells`), and lays a
collected result out as the paper prints it (:meth:`rows`).  Everything else in
``tables/`` is the same for both tables.

A *cell* is one (depth, method, paper batch, metric) of the paper's table; its
value is the mean over the seeds that were run for it (see :mod:`tables.report`).
"""
from collections import namedtuple

from tables import paper

MISSING = "—"

# depth, method, batch (the paper's), trained_batch (may differ in the demo), metric, paper value
Cell = namedtuple("Cell", "depth method batch trained_batch metric paper")

# Rows printed under each depth of Table 1 and under Table 2: GT-known Loc of boxes
# drawn without a network (evaluate.py's eval.json, protocols[p].baselines).
BASELINES = (("baseline_whole_image", "whole image box"), ("baseline_best_fixed_box", "best fixed box"))


def fmt_num(x):
    return MISSING if x is None else f"{x:.2f}"


def fmt_diff(x):
    return MISSING if x is None else f"{x:+.2f}"


def fmt_stat(stat):
    """``{"mean", "std", "n"}`` (a stat or a cell) -> "57.10" (one seed) or "57.10±0.52" (mean ± std
    over several seeds); ``—`` if there is no value."""
    if not stat or not stat.get("n"):
        return MISSING
    if stat["n"] == 1:
        return fmt_num(stat["mean"])
    return f"{stat['mean']:.2f}±{stat['std']:.2f}"


def depth_rows(depths):
    """The paper's depths (row order 34, 18) that were run."""
    return [d for d in paper.DEPTHS if depths is None or d in depths]


class Table1:
    number = 1
    metrics = paper.METRICS
    label_columns = 3

    def cells(self, batch_map, depths=None):
        b = paper.TABLE1_BATCH
        return [Cell(d, m, b, batch_map.get(b, b), metric, paper.TABLE1[(d, m)][metric])
                for d in depth_rows(depths) for metric in self.metrics for m in paper.METHOD_NAMES]

    def title(self, trained_batches):
        b = paper.TABLE1_BATCH
        batch = (f"batch {b}" if set(trained_batches) <= {b}
                 else f"batch {'/'.join(map(str, sorted(trained_batches)))} in place of {b}")
        return f"Table 1: accuracy (%) by augmentation, {batch}; ours vs paper Table 1, diff = ours - paper"

    def rows(self, cell, extra, depths):
        """Rows depth x metric x (ours, paper, diff), then the baselines; columns the five methods.

        ``cell(depth, method, batch, metric)`` -> a collected cell or None; ``extra(cell name, key)``
        -> a stat of that cell's runs.
        """
        headers = ["Depth", "Metric", ""] + list(paper.METHOD_NAMES.values())
        b = paper.TABLE1_BATCH
        rows = []
        for depth in depth_rows(depths):
            for i, metric in enumerate(self.metrics):
                cs = [cell(depth, m, b, metric) for m in paper.METHOD_NAMES]
                for j, (label, show) in enumerate((("ours", fmt_stat),
                                                   ("paper", lambda c: fmt_num(c["paper"])),
                                                   ("diff", lambda c: fmt_diff(c["diff"])))):
                    first = [f"ResNet{depth}" if i == j == 0 else "",
                             paper.METRIC_NAMES[metric] if j == 0 else "", label]
                    rows.append(first + [show(c) for c in cs])
                if metric == "gt_known_loc":
                    for key, label in BASELINES:
                        rows.append(["", "", label] + [fmt_stat(extra(c["run"], key)) for c in cs])
        return headers, rows


class Table2:
    number = 2
    metrics = (paper.TABLE2_METRIC,)
    label_columns = 2

    def cells(self, batch_map, depths=None):
        return [Cell(d, m, b, batch_map.get(b, b), paper.TABLE2_METRIC, by_depth[d])
                for (m, b), by_depth in paper.TABLE2.items() for d in depth_rows(depths)]

    def title(self, trained_batches):
        return "Table 2: Top-1 Loc (%) by batch size and depth; ours vs paper Table 2, diff = ours - paper"

    def rows(self, cell, extra, depths):
        """Rows method x batch, columns per depth ours / paper / diff; then the baselines (GT-known Loc)."""
        ds = depth_rows(depths)
        headers = ["Method", "Batch size"]
        for depth in ds:
            headers += [f"ResNet{depth}", "paper", "diff"]
        rows, seen = [], set()
        for method, b in paper.TABLE2:
            cs = [cell(d, method, b, paper.TABLE2_METRIC) for d in ds]
            ran = cs[0]["trained_batch"]
            row = [paper.METHOD_NAMES[method] if method not in seen else "",
                   str(b) if ran == b else f"{b} (ran {ran})"]
            seen.add(method)
            for c in cs:
                row += [fmt_stat(c), fmt_num(c["paper"]), fmt_diff(c["diff"])]
            rows.append(row)
        for key, label in BASELINES:
            row = [f"{label} (GT-known Loc)", ""]
            for d in ds:
                # the baselines use no network: every run of a depth has the same; show the first
                stats = [extra(cell(d, m, b, paper.TABLE2_METRIC)["run"], key) for m, b in paper.TABLE2]
                row += [fmt_stat(next((s for s in stats if s and s["n"]), None)), "", ""]
            rows.append(row)
        return headers, rows


LAYOUTS = {1: Table1(), 2: Table2()}
