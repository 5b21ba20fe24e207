"""The paper's numbers (cited, printed beside ours), the shape of its two tables, and its claims,
each tested on our runs with a bootstrap interval (docs/tables.md, docs/claims.md).

Values are percent, from the paper's Table 1 and Table 2 (Choe, Park, Shim, "Improved Techniques
for Weakly-Supervised Object Localization", 2018, arXiv:1802.07888; docs/sources.md).
"""

from collections import namedtuple

import numpy as np

from augment.registry import methods as augment_methods, paper_methods
from cam import METRIC_TITLES
from runrecord.evaldoc import PAPER_METRICS as METRICS  # GT-known Loc, Top-1 Loc, Top-1 Clas


def method_title(method):
    """A method's column header: its declared title (augment/registry.py), as the paper prints its five."""
    return augment_methods()[method].title


# paper Table 1: GT-known Loc, Top-1 Loc, Top-1 Clas; batch size 256.
_TABLE1_ROWS = {
    34: {
        "cam": (53.46, 27.50, 44.54),
        "hns": (54.30, 29.72, 46.67),
        "gr": (57.82, 36.00, 54.13),
        "hns_after_gr": (57.49, 33.93, 51.28),
        "gr_after_hns": (57.43, 33.45, 50.45),
    },
    18: {
        "cam": (53.42, 27.13, 43.90),
        "hns": (52.89, 27.56, 44.12),
        "gr": (57.00, 34.43, 52.23),
        "hns_after_gr": (56.99, 33.33, 50.14),
        "gr_after_hns": (56.76, 32.28, 48.87),
    },
}
TABLE1_BATCH = 256  # paper Table 1 caption: "The batch size is 256."
TABLE1 = {
    (depth, method): dict(zip(METRICS, values))
    for depth, row in _TABLE1_ROWS.items()
    for method, values in row.items()
}

# paper Table 2: Top-1 Loc, (ResNet34, ResNet18) for each method and batch size.
_TABLE2_ROWS = {
    "cam": {32: (31.49, 28.47), 128: (29.62, 27.76), 256: (27.50, 27.13)},
    "hns": {32: (31.17, 29.45), 128: (30.32, 29.25), 256: (29.72, 27.56)},
    "gr": {32: (37.84, 35.94), 128: (36.13, 35.83), 256: (36.00, 34.43)},
}
TABLE2_METRIC = "top1_loc"  # paper Table 2 caption: "Top-1 localization accuracy"
TABLE2 = {
    (method, batch): {34: r34, 18: r18}
    for method, row in _TABLE2_ROWS.items()
    for batch, (r34, r18) in row.items()
}

DEPTHS = (34, 18)  # row order of both tables in the paper

MISSING = "—"
# depth, method, batch (the paper's), trained_batch (may differ in the demo), metric, paper value
Cell = namedtuple("Cell", "depth method batch trained_batch metric paper")
# Rows under each depth of Table 1 and under Table 2: GT-known Loc of boxes drawn without a
# network (evaluate.py's eval.json, protocols[p].baselines).
BASELINES = (
    ("baseline_whole_image", "whole image box"),
    ("baseline_best_fixed_box", "best fixed box"),
)


def fmt_num(x):
    return MISSING if x is None else f"{x:.2f}"


def fmt_diff(x):
    return MISSING if x is None else f"{x:+.2f}"


def fmt_stat(stat):
    """``{"mean", "std", "n"}`` -> "57.10" (one seed), "57.10±0.52" (mean ± std over seeds) or ``—``."""
    if not stat or not stat.get("n"):
        return MISSING
    return fmt_num(stat["mean"]) if stat["n"] == 1 else f"{stat['mean']:.2f}±{stat['std']:.2f}"


def paper_entry(c):
    """A collected cell's paper number; empty for a method the paper has not (it has no claim either)."""
    return "" if c["paper"] is None else fmt_num(c["paper"])


def diff_entry(c):
    """A collected cell's ours - paper; empty for a method the paper has not."""
    return "" if c["paper"] is None else fmt_diff(c["diff"])


def depth_rows(depths):
    """The paper's depths (row order 34, 18) that were run."""
    return [d for d in DEPTHS if depths is None or d in depths]


class Table1:
    """The paper's Table 1; ``methods``: its columns (default the paper's, ``augment.registry.paper_methods``),
    any of augment/'s methods, in that order: one the paper has not gets no paper number."""

    metrics = METRICS
    label_columns = 3

    def cells(self, batch_map, depths=None, methods=None):
        b = TABLE1_BATCH
        return [
            Cell(d, m, b, batch_map.get(b, b), metric, TABLE1.get((d, m), {}).get(metric))
            for d in depth_rows(depths)
            for metric in self.metrics
            for m in methods or paper_methods()
        ]

    def title(self, trained_batches):
        b = TABLE1_BATCH
        batch = (
            f"batch {b}"
            if set(trained_batches) <= {b}
            else f"batch {'/'.join(map(str, sorted(trained_batches)))} in place of {b}"
        )
        return f"Table 1: accuracy (%) by augmentation, {batch}; ours vs paper Table 1, diff = ours - paper"

    def rows(self, cell, extra, depths, methods=None):
        """Rows depth x metric x (ours, paper, diff), then the baselines; columns the methods.
        ``cell(depth, method, batch, metric)``: a collected cell; ``extra(cell name, key)``: a stat."""
        rows, methods = [], methods or paper_methods()
        for depth in depth_rows(depths):
            for i, metric in enumerate(self.metrics):
                cs = [cell(depth, m, TABLE1_BATCH, metric) for m in methods]
                for j, (label, show) in enumerate(
                    (("ours", fmt_stat), ("paper", paper_entry), ("diff", diff_entry))
                ):
                    first = [
                        f"ResNet{depth}" if i == j == 0 else "",
                        METRIC_TITLES[metric] if j == 0 else "",
                        label,
                    ]
                    rows.append(first + [show(c) for c in cs])
                if metric == "gt_known_loc":
                    rows += [
                        ["", "", label] + [fmt_stat(extra(c["run"], key)) for c in cs]
                        for key, label in BASELINES
                    ]
        return ["Depth", "Metric", ""] + [method_title(m) for m in methods], rows


class Table2:
    """The paper's Table 2, always its own methods (``methods`` is Table 1's: not taken here)."""

    metrics = (TABLE2_METRIC,)
    label_columns = 2

    def cells(self, batch_map, depths=None, methods=None):
        return [
            Cell(d, m, b, batch_map.get(b, b), TABLE2_METRIC, by_depth[d])
            for (m, b), by_depth in TABLE2.items()
            for d in depth_rows(depths)
        ]

    def title(self, trained_batches):
        return "Table 2: Top-1 Loc (%) by batch size and depth; ours vs paper Table 2, diff = ours - paper"

    def rows(self, cell, extra, depths, methods=None):
        """Rows method x batch, columns per depth ours / paper / diff; then the baselines (GT-known Loc)."""
        ds = depth_rows(depths)
        headers = ["Method", "Batch size"] + [
            h for d in ds for h in (f"ResNet{d}", "paper", "diff")
        ]
        rows, seen = [], set()
        for method, b in TABLE2:
            cs = [cell(d, method, b, TABLE2_METRIC) for d in ds]
            ran = cs[0]["trained_batch"]
            row = [
                method_title(method) if method not in seen else "",
                str(b) if ran == b else f"{b} (ran {ran})",
            ]
            seen.add(method)
            rows.append(
                row
                + [x for c in cs for x in (fmt_stat(c), fmt_num(c["paper"]), fmt_diff(c["diff"]))]
            )
        for key, label in BASELINES:
            row = [f"{label} (GT-known Loc)", ""]
            for d in ds:
                # the baselines use no network: every run of a depth has the same; show the first
                stats = [extra(cell(d, m, b, TABLE2_METRIC)["run"], key) for m, b in TABLE2]
                row += [fmt_stat(next((s for s in stats if s and s["n"]), None)), "", ""]
            rows.append(row)
        return headers, rows


LAYOUTS = {1: Table1(), 2: Table2()}

# ---- the claims: each a difference between two cells, its 95% interval and a verdict (docs/claims.md)

RESAMPLES = 2000  # bootstrap resamples per instance
LEVEL = 95  # percent coverage of the interval
BOOTSTRAP_SEED = 0  # fixed, so that the same eval.json files give the same intervals

# a, b: the keys of cell A / B that differ (the others are the same); metrics; direction +1: A > B.
Claim = namedtuple("Claim", "id table section sentence a b metrics direction")
_AUG = "sec. 3, Quantitative evaluation (Table 1)"
_TRAIN = "sec. 3, Quantitative evaluation (Table 2)"
_BASELINE = (
    "both HnS and GR performances are better than the baseline (CAM without data augmentation)"
)
_BOTH = "the performance decreases when HnS and GR are simultaneously applied"
_SCHEMES = "smaller batch size and deeper network produce higher accuracy in Top-1 localization"
CLAIMS = (
    Claim("t1-hns>cam", 1, _AUG, _BASELINE, {"method": "hns"}, {"method": "cam"}, METRICS, 1),
    Claim("t1-gr>cam", 1, _AUG, _BASELINE, {"method": "gr"}, {"method": "cam"}, METRICS, 1),
    Claim(
        "t1-gr>hns",
        1,
        _AUG,
        "GR clearly outperforms HnS in all three metrics",
        {"method": "gr"},
        {"method": "hns"},
        METRICS,
        1,
    ),
    Claim(
        "t1-hns_after_gr<gr",
        1,
        _AUG,
        _BOTH,
        {"method": "hns_after_gr"},
        {"method": "gr"},
        METRICS,
        -1,
    ),
    Claim(
        "t1-gr_after_hns<gr",
        1,
        _AUG,
        _BOTH,
        {"method": "gr_after_hns"},
        {"method": "gr"},
        METRICS,
        -1,
    ),
    Claim("t2-b32>b256", 2, _TRAIN, _SCHEMES, {"batch": 32}, {"batch": 256}, (TABLE2_METRIC,), 1),
    Claim("t2-r34>r18", 2, _TRAIN, _SCHEMES, {"depth": 34}, {"depth": 18}, (TABLE2_METRIC,), 1),
)


def pair_label(claim, a, b):
    """ "R18 b256: GR - CAM", "R18 GR: b32 - b256": what the two cells share, then what differs; the batch
    trained where it is not the paper's (the demo's): "R18 b32 (paper's b256): GR - CAM"."""

    def part(c, key):
        batch = f"b{c['trained_batch']}" + (
            "" if c["trained_batch"] == c["batch"] else f" (paper's b{c['batch']})"
        )
        return {"depth": f"R{c['depth']}", "method": method_title(c["method"]), "batch": batch}[key]

    same = " ".join(part(a, k) for k in ("depth", "method", "batch") if k not in claim.a)
    return (
        f"{same}: {' '.join(part(a, k) for k in claim.a)} - {' '.join(part(b, k) for k in claim.a)}"
    )


def claim_instances(claim, cells):
    """[(A cell, B cell)] of ``claim`` among a collected result's cells, in the table's order."""
    by = {(c["depth"], c["method"], c["batch"], c["metric"]): c for c in cells}
    out = []
    for c in cells:
        if c["metric"] in claim.metrics and all(c[k] == v for k, v in claim.a.items()):
            o = dict(c, **claim.b)
            other = by.get((o["depth"], o["method"], o["batch"], c["metric"]))
            if other is not None:
                out.append((c, other))
    return out


def interval(a, b, resamples=RESAMPLES, seed=BOOTSTRAP_SEED, paired_seeds=False):
    """95% percentile bootstrap interval (points) of ``mean(a) - mean(b)``, ``a``: ``(Sa, N)``, ``b``:
    ``(Sb, N)`` 0/1 hits per seed on the same N images; paired image draw, seeds per cell, or, with
    ``paired_seeds`` (row k of a and of b trained with the same seed), one seed draw for both (docs/claims.md).
    The image draw is a multinomial over the hit patterns: the same distribution, at a cost independent of N."""
    rng = np.random.default_rng(seed)
    n = a.shape[1]
    patterns, counts = np.unique(np.vstack([a, b]).T, axis=0, return_counts=True)
    w = rng.multinomial(n, counts / n, size=resamples) / n  # (R, patterns)
    acc = [w @ patterns[:, : len(a)], w @ patterns[:, len(a) :]]  # (R, S) per seed
    if paired_seeds:
        draw = rng.integers(0, len(a), size=acc[0].shape)
        pick = [np.take_along_axis(m, draw, 1).mean(1) for m in acc]
    else:
        pick = [
            np.take_along_axis(m, rng.integers(0, m.shape[1], size=m.shape), 1).mean(1) for m in acc
        ]
    tail = (100 - LEVEL) / 2
    lo, hi = np.percentile(100 * (pick[0] - pick[1]), [tail, 100 - tail])
    return float(lo), float(hi)


def verdict(lo, hi, direction):
    """supported / contradicted / inconclusive: where the interval lies against the claim's side of 0."""
    lo, hi = direction * lo, direction * hi
    if min(lo, hi) > 0:
        return "supported"
    return "contradicted" if max(lo, hi) < 0 else "inconclusive"


def check_instance(claim, a, b, result, images):
    """The record of one instance: cells, difference, interval, verdict, seeds, images, protocol;
    ``images``: {eval.json path: runrecord.evaldoc.PerImage, or why the run has none}."""
    rec = {
        "claim": claim.id,
        "section": claim.section,
        "sentence": claim.sentence,
        "cells": [a["run"], b["run"]],
        "label": pair_label(claim, a, b),
        "metric": a["metric"],
        "direction": "A > B" if claim.direction > 0 else "A < B",
        "paper_difference": round(a["paper"] - b["paper"], 2),
        "difference": None,
        "interval": None,
        "verdict": "not computed",
        "seeds": [0, 0],
        "images": 0,
        "protocol": None,
        "resampled": None,
    }

    def seed_hits(cell):  # {seed: PerImage} of the cell's runs that finished
        ok = {
            r["seed"]: images[r["eval_json"]]
            for r in result["runs"].values()
            if r["cell"] == cell["run"] and r["status"] == "ok"
        }
        bad = next((v for v in ok.values() if isinstance(v, str)), None)
        if bad:
            raise ValueError(bad)
        return ok

    try:
        ha, hb = seed_hits(a), seed_hits(b)
    except ValueError as e:
        return dict(rec, reason=f"records unusable: {e}")
    rec["seeds"] = [len(ha), len(hb)]
    if not ha or not hb:
        return dict(rec, reason="a cell has no finished run")
    both = list(ha.values()) + list(hb.values())
    protocols = {x.protocol for x in both}
    if len(protocols) > 1:
        return dict(rec, reason=f"the runs mix protocols {sorted(protocols)}")
    common = sorted(set.intersection(*(set(x.files) for x in both)))
    if not common:
        return dict(rec, reason="the cells share no validation image")

    def matrix(hits):
        rows = []
        for x in (hits[s] for s in sorted(hits)):
            pos = {f: i for i, f in enumerate(x.files)}
            rows.append(x.hits[a["metric"]][[pos[f] for f in common]])
        return np.array(rows, dtype=np.float64)

    xa, xb = matrix(ha), matrix(hb)
    one = min(len(ha), len(hb)) == 1
    paired = not one and sorted(ha) == sorted(
        hb
    )  # seed s of A and of B: the same initial weights and order
    lo, hi = interval(xa, xb, paired_seeds=paired)
    return dict(
        rec,
        difference=round(100 * (xa.mean() - xb.mean()), 2),
        interval=[round(lo, 2), round(hi, 2)],
        verdict=verdict(lo, hi, claim.direction),
        images=len(common),
        protocol=protocols.pop(),
        resampled="images only (one seed in a cell: the seed spread is not in the interval)"
        if one
        else "seeds (paired: the same seeds in both cells) and images"
        if paired
        else "seeds and images",
    )


def check_claims(result, images):
    """Every instance of the table's claims in a result's cells and runs (:func:`check_instance` records, on
    ``images``: {eval.json path: PerImage or why none}), and one ``not computed`` record per claim without any
    instance.  reproduce.runs.collect calls it, beside the cells."""
    out = []
    for claim in CLAIMS:
        if claim.table != result["table"]:
            continue
        pairs = claim_instances(claim, result["cells"])
        out += [check_instance(claim, a, b, result, images) for a, b in pairs]
        if not pairs:
            out.append(
                {
                    "claim": claim.id,
                    "section": claim.section,
                    "sentence": claim.sentence,
                    "cells": [],
                    "verdict": "not computed",
                    "reason": "its cells are not in this table (a depth or a method not run)",
                }
            )
    return out
