"""The paper's claims, each a difference between two cells of a table, with a 95% interval and a verdict.

A claim says that cell A beats cell B (or, for ``direction = -1``, that A is below B)
on a metric: "GR beats CAM on GT-known Loc".  :data:`CLAIMS` holds each one once, with
the paper's sentence and section; an *instance* is the claim at one depth (Table 1), or
at one method and depth / batch (Table 2).  For each instance :func:`check` reads the
per-image records of every seed of both cells (eval.json ``records``, the protocol
the cells use, at the summary's CAM threshold; nothing is retrained or re-evaluated) and gives:

* ``difference``: ours, mean over A's seeds minus mean over B's seeds, in points;
* ``paper_difference``: the same from the paper's cells (:mod:`tables.paper`);
* ``interval``: a 95% percentile bootstrap interval of ours (:func:`interval`): each
  resample draws the validation images with replacement, the same draw for both cells
  (paired), and each cell's seeds with replacement; with one seed per cell only the
  images vary, and the output says so (docs/claims.md);
* ``verdict``: ``supported`` (the interval is entirely on the claim's side of 0),
  ``contradicted`` (entirely on the other side) or ``inconclusive`` (it covers 0).

:func:`render` prints them under a table, :func:`plot` draws the forest plot
(``tableN-claims.png``).
"""
import json
from collections import namedtuple

import cv2
import numpy as np
from tabulate import tabulate

from cam.metrics import METRIC_TITLES, is_localized
from cam.protocols import IOU_THRESHOLD, PROTOCOLS
from tables import paper

RESAMPLES = 2000     # bootstrap resamples per instance
LEVEL = 95           # percent coverage of the interval
BOOTSTRAP_SEED = 0   # fixed, so that the same eval.json files give the same intervals
ALL = paper.METRICS

# a, b: the keys of cell A / B that differ (the others are the same); metrics; direction +1: A > B.
Claim = namedtuple("Claim", "id table section sentence a b metrics direction")
_AUG = "sec. 3, Quantitative evaluation (Table 1)"
_TRAIN = "sec. 3, Quantitative evaluation (Table 2)"
_BASELINE = "both HnS and GR performances are better than the baseline (CAM without data augmentation)"
_BOTH = "the performance decreases when HnS and GR are simultaneously applied"
_SCHEMES = "smaller batch size and deeper network produce higher accuracy in Top-1 localization"
CLAIMS = (
    Claim("t1-hns>cam", 1, _AUG, _BASELINE, {"method": "hns"}, {"method": "cam"}, ALL, 1),
    Claim("t1-gr>cam", 1, _AUG, _BASELINE, {"method": "gr"}, {"method": "cam"}, ALL, 1),
    Claim("t1-gr>hns", 1, _AUG, "GR clearly outperforms HnS in all three metrics",
          {"method": "gr"}, {"method": "hns"}, ALL, 1),
    Claim("t1-hns_after_gr<gr", 1, _AUG, _BOTH, {"method": "hns_after_gr"}, {"method": "gr"}, ALL, -1),
    Claim("t1-gr_after_hns<gr", 1, _AUG, _BOTH, {"method": "gr_after_hns"}, {"method": "gr"}, ALL, -1),
    Claim("t2-b32>b256", 2, _TRAIN, _SCHEMES, {"batch": 32}, {"batch": 256}, (paper.TABLE2_METRIC,), 1),
    Claim("t2-r34>r18", 2, _TRAIN, _SCHEMES, {"depth": 34}, {"depth": 18}, (paper.TABLE2_METRIC,), 1),
)


def _part(c, key):
    return {"depth": f"R{c['depth']}", "method": paper.METHOD_NAMES[c["method"]], "batch": f"b{c['batch']}"}[key]


def pair_label(claim, a, b):
    """"R18: GR - CAM", "R18 GR: b32 - b256": what the two cells share, then what differs."""
    same = " ".join(_part(a, k) for k in ("depth", "method", "batch") if k not in claim.a)
    return f"{same}: {' '.join(_part(a, k) for k in claim.a)} - {' '.join(_part(b, k) for k in claim.a)}"


def instances(claim, cells):
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


def read_hits(path):
    """``(protocol, files, {metric: uint8 (N,)})``: per-image hits from an eval.json's records.

    GT-known Loc: the IoU passes the protocol's rule (``cam.protocols``); Top-1 Clas: the top-1
    class is the label; Top-1 Loc: both.
    """
    with open(path) as f:
        doc = json.load(f)
    protocol, recs = doc.get("protocol"), doc.get("records") or []
    if protocol not in PROTOCOLS or not recs:
        raise ValueError(f"{path}: no per-image records of a known protocol")
    gt = is_localized([r["iou"] for r in recs], IOU_THRESHOLD, PROTOCOLS[protocol].strict)
    clas = np.array([r["top5"][0] == r["label"] for r in recs])
    hits = {"gt_known_loc": gt, "top1_clas": clas, "top1_loc": gt & clas}
    return protocol, [r["file"] for r in recs], {k: v.astype(np.uint8) for k, v in hits.items()}


def interval(a, b, resamples=RESAMPLES, seed=BOOTSTRAP_SEED):
    """95% percentile bootstrap interval (points) of ``mean(a) - mean(b)``.

    ``a``: ``(Sa, N)``, ``b``: ``(Sb, N)`` 0/1 hits of each seed on the same N images.  A resample
    draws N images with replacement, the same for both cells, then Sa of A's seeds and Sb of B's
    with replacement.  Images with the same hits in every run are interchangeable, so the image
    draw is a multinomial over those hit patterns (at most 2 ** (Sa + Sb) of them): the same
    distribution as drawing images one by one, at a cost independent of N.
    """
    rng = np.random.default_rng(seed)
    n = a.shape[1]
    patterns, counts = np.unique(np.vstack([a, b]).T, axis=0, return_counts=True)
    w = rng.multinomial(n, counts / n, size=resamples) / n               # (R, patterns)
    acc = [w @ patterns[:, :len(a)], w @ patterns[:, len(a):]]           # (R, S) per seed
    pick = [np.take_along_axis(m, rng.integers(0, m.shape[1], size=m.shape), 1).mean(1) for m in acc]
    tail = (100 - LEVEL) / 2
    lo, hi = np.percentile(100 * (pick[0] - pick[1]), [tail, 100 - tail])
    return float(lo), float(hi)


def verdict(lo, hi, direction):
    """supported / contradicted / inconclusive: where the interval lies against the claim's side of 0."""
    lo, hi = direction * lo, direction * hi
    if min(lo, hi) > 0:
        return "supported"
    if max(lo, hi) < 0:
        return "contradicted"
    return "inconclusive"


def _seed_hits(result, cell, cache):
    """{seed: (protocol, files, hits)} of the cell's runs that finished."""
    out = {}
    for r in result["runs"].values():
        if r["cell"] == cell["run"] and r["status"] == "ok":
            if r["eval_json"] not in cache:
                cache[r["eval_json"]] = read_hits(r["eval_json"])
            out[r["seed"]] = cache[r["eval_json"]]
    return out


def check_instance(claim, a, b, result, cache):
    """The record of one instance: cells, difference, interval, verdict, seeds, images, protocol."""
    rec = {"claim": claim.id, "section": claim.section, "sentence": claim.sentence,
           "cells": [a["run"], b["run"]], "label": pair_label(claim, a, b), "metric": a["metric"],
           "direction": "A > B" if claim.direction > 0 else "A < B",
           "paper_difference": round(a["paper"] - b["paper"], 2), "difference": None, "interval": None,
           "verdict": "not computed", "seeds": [0, 0], "images": 0, "protocol": None, "resampled": None}
    try:
        ha, hb = _seed_hits(result, a, cache), _seed_hits(result, b, cache)
    except (OSError, ValueError, KeyError, TypeError) as e:
        return dict(rec, reason=f"records unusable: {e}")
    rec["seeds"] = [len(ha), len(hb)]
    if not ha or not hb:
        return dict(rec, reason="a cell has no finished run")
    protocols = {p for p, _, _ in list(ha.values()) + list(hb.values())}
    if len(protocols) > 1:
        return dict(rec, reason=f"the runs mix protocols {sorted(protocols)}")
    common = sorted(set.intersection(*(set(f) for _, f, _ in list(ha.values()) + list(hb.values()))))
    if not common:
        return dict(rec, reason="the cells share no validation image")
    m = a["metric"]

    def matrix(hits):
        rows = []
        for _, files, h in (hits[s] for s in sorted(hits)):
            pos = {f: i for i, f in enumerate(files)}
            rows.append(h[m][[pos[f] for f in common]])
        return np.array(rows, dtype=np.float64)
    xa, xb = matrix(ha), matrix(hb)
    lo, hi = interval(xa, xb)
    one = min(len(ha), len(hb)) == 1
    return dict(rec, difference=round(100 * (xa.mean() - xb.mean()), 2), interval=[round(lo, 2), round(hi, 2)],
                verdict=verdict(lo, hi, claim.direction), images=len(common), protocol=protocols.pop(),
                resampled="images only (one seed in a cell: the seed spread is not in the interval)" if one
                else "seeds and images")


def check(result):
    """Every instance of the table's claims in ``result`` (:func:`tables.report.collect`): a list of
    :func:`check_instance` records, and one ``not computed`` record per claim without any instance."""
    cache, out = {}, []
    for claim in CLAIMS:
        if claim.table != result["table"]:
            continue
        pairs = instances(claim, result["cells"])
        out += [check_instance(claim, a, b, result, cache) for a, b in pairs]
        if not pairs:
            out.append({"claim": claim.id, "section": claim.section, "sentence": claim.sentence, "cells": [],
                        "verdict": "not computed", "reason": "its cells are not in this table (depth not run)"})
    return out


def _fmt_verdict(r):
    if r.get("difference") is None:
        return f"not computed: {r['reason']}"
    seeds = min(r["seeds"])
    return f"{r['verdict']} ({seeds} seed{'s' if seeds > 1 else ''}{'' if seeds > 1 else ', images only'})"


def block(records, tablefmt="simple"):
    """(heading, table text, note lines) of the claims: a row per instance; what the interval covers
    and the claims' sentences."""
    rows = [[r["claim"], r.get("label", ""), METRIC_TITLES.get(r.get("metric"), ""),
             "" if r.get("difference") is None else f"{r['difference']:+.2f}",
             "" if r.get("interval") is None else f"[{r['interval'][0]:+.2f}, {r['interval'][1]:+.2f}]",
             "" if r.get("paper_difference") is None else f"{r['paper_difference']:+.2f}", _fmt_verdict(r)]
            for r in records]
    done = [r for r in records if r.get("difference") is not None]
    protocols = sorted({r["protocol"] for r in done})
    images = sorted({r["images"] for r in done})
    seeds = sorted({s for r in done for s in r["seeds"]})
    head = (f"Claims of the paper, tested (protocol {', '.join(protocols) or '-'}): ours = A - B in points, "
            f"its {LEVEL}% bootstrap interval, paper = the paper's A - B")
    lines = [f"interval: {RESAMPLES} resamples of each cell's seeds and of the same "
             f"{'/'.join(map(str, images)) or '-'} validation images in both cells (docs/claims.md)"]
    table = tabulate(rows, headers=["claim", "A - B", "metric", "ours", f"{LEVEL}% interval", "paper", "verdict"],
                     tablefmt=tablefmt, disable_numparse=True)
    if seeds and min(seeds) == 1:
        lines.append("ONE SEED in a cell: its intervals cover the sampling of the validation images only, "
                     "not the seed-to-seed spread; run more seeds (--seeds N) for that")
    seen = {}
    for r in records:
        seen.setdefault(r["claim"], r)
    lines += [f"{c}: \"{r['sentence']}\" ({r['section']})" for c, r in seen.items()]
    return head, table, lines


def render(records, tablefmt="simple"):
    """The claims block as printed under a table."""
    head, table, lines = block(records, tablefmt)
    return "\n".join([head, "", table, ""] + lines)


COLOURS = {"supported": "tab:green", "contradicted": "tab:red", "inconclusive": "tab:grey"}


def plot(records, title, width=1000):
    """Forest plot, uint8 BGR: a row per computed instance, ours with its interval, the paper's A - B."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    done = [r for r in records if r.get("difference") is not None]
    height = 120 + 26 * max(1, len(done))
    fig = Figure(figsize=(width / 100, height / 100), dpi=100)
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
    ax.set_xlabel(f"A - B, points ({LEVEL}% bootstrap interval over seeds and images)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    canvas.draw()
    return cv2.cvtColor(np.asarray(canvas.buffer_rgba()), cv2.COLOR_RGBA2BGR)
