"""Collect a table's numbers from the runs' eval.json files, per seed, and their mean ± std per cell.

Values come only from ``<logroot>/<run>/eval.json`` (percent, written by evaluate.py;
fields below); the paper's come from :mod:`tables.paper`.  A run counts only in
the state ``evaluated`` (:func:`tables.runs.run_state`); any other run is missing,
with the reason.

What is read from an eval.json (:func:`read_values`), ``p`` = its ``protocol``:

* the paper's metrics: ``summary`` (= ``protocols[p].summary``, at the fixed CAM threshold);
* ``baseline_whole_image``, ``baseline_best_fixed_box``: ``protocols[p].baselines``;
* ``maxboxacc_v2``: ``wsol2020.maxboxacc_v2`` (thresholds tuned on val), ``maxboxacc_v2_holdout``:
  ``wsol2020.holdout.maxboxacc_v2`` (thresholds chosen on the held-out images); ``holdout_top1_loc``, ``holdout_threshold``:
  ``protocols[p].holdout`` (``summary.top1_loc`` and ``threshold``; absent without a holdout);
* ``authors_vs_paper.<m>``, ``paper_vs_wsol.<m>``: differences in points of the localisation
  metrics between ``protocols["authors"]``, ``["paper"]`` and ``["wsol"]``.
"""
import json
import math
import os
import statistics
import time

from tables import runs as rs
from tables.configs import Config
from tables.layout import LAYOUTS

SUMMARY_METRICS = ("gt_known_loc", "top1_loc", "top1_clas", "top5_loc", "top5_clas")
REQUIRED = ("gt_known_loc", "top1_loc", "top1_clas")
LOC_METRICS = ("gt_known_loc", "top1_loc")   # what the protocols change (classification is the same)
EFFECTS = (("authors_vs_paper", "authors", "paper"), ("paper_vs_wsol", "paper", "wsol"))


def _get(d, *keys):
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def read_values(path):
    """``(values, protocol)`` from an eval.json: a flat dict of finite numbers (see the module
    docstring); ValueError naming what is wrong if the paper's metrics are not there."""
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} unusable ({type(e).__name__}: {e})") from None
    summary = _get(d, "summary")
    if not isinstance(summary, dict) or any(m not in summary for m in REQUIRED):
        raise ValueError(f"{path} unusable: no summary with {', '.join(REQUIRED)}")
    protocol = d.get("protocol")
    protos = d.get("protocols") if isinstance(d.get("protocols"), dict) else {}
    mine = protos.get(protocol)
    values = {m: summary.get(m) for m in SUMMARY_METRICS}
    values.update(baseline_whole_image=_get(mine, "baselines", "whole_image"),
                  baseline_best_fixed_box=_get(mine, "baselines", "best_fixed_box"),
                  maxboxacc_v2=_get(d, "wsol2020", "maxboxacc_v2"),
                  maxboxacc_v2_holdout=_get(d, "wsol2020", "holdout", "maxboxacc_v2"),
                  holdout_top1_loc=_get(mine, "holdout", "summary", "top1_loc"),
                  holdout_threshold=_get(mine, "holdout", "threshold"))
    for name, a, b in EFFECTS:
        for m in LOC_METRICS:
            x, y = _get(protos, a, "summary", m), _get(protos, b, "summary", m)
            if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                values[f"{name}.{m}"] = x - y
    out = {}
    for k, v in values.items():
        if v is None:
            continue
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
            raise ValueError(f"{path} unusable: {k} is {v!r}, not a finite number")
        out[k] = float(v)
    return out, protocol


def stat(by_seed):
    """``{seed: value}`` -> ``{"mean", "std", "n", "seeds"}``; std is the sample std (n - 1) over
    seeds, 0 for one seed; mean and std None without values."""
    vals = list(by_seed.values())
    n = len(vals)
    return {"mean": round(statistics.fmean(vals), 2) if n else None,
            "std": round(statistics.stdev(vals), 2) if n > 1 else (0.0 if n else None),
            "n": n, "seeds": {str(s): round(v, 2) for s, v in sorted(by_seed.items())}}


def run_entry(run, state, reason, outcome):
    """What the result keeps of one run: status ok / missing / failed, its values and protocol."""
    entry = {"cell": run.config.cell, "seed": run.config.seed, "logdir": run.logdir,
             "eval_json": run.eval_json, "status": "missing", "values": None, "protocol": None}
    if outcome is not None and outcome.status == "failed":
        entry.update(status="failed", message=outcome.message, log=outcome.log)
    elif state == rs.EVALUATED:
        try:
            entry["values"], entry["protocol"] = read_values(run.eval_json)
            entry["status"] = "ok"
        except ValueError as e:
            entry["message"] = str(e)
    elif state == rs.NEW and not os.path.isdir(run.logdir):
        entry["message"] = "not run"
    else:
        entry["message"] = reason
    return entry


def collect(table, runs, *, batch_map=None, outcomes=None, depths=None, holdout=0, demo=False, info=None):
    """The result of paper Table ``table`` from ``runs`` (every run of the table: all cells x seeds).

    ``holdout``: train.py --holdout of the runs; ``outcomes``: {run name: executor.Outcome} of this invocation, so that failures carry their
    message and log; ``info``: JSON-able facts to save (data folder, train.py arguments, ...).
    Returns ``{"table", "demo", "created", "info", "seeds", "depths", "protocols", "cells", "extra",
    "runs"}``: ``cells`` in the paper's order, each with run (the cell's name), depth, method, batch
    (the paper's), trained_batch, metric, mean, std, n, seeds ({seed: value}), paper, diff
    (mean - paper); ``extra[cell][key]``: a :func:`stat` of every other value read; ``runs[name]``:
    :func:`run_entry`.
    """
    outcomes = outcomes or {}
    layout = LAYOUTS[table]
    entries = {}
    for r in runs:
        state, reason = rs.run_state(r)
        entries[r.name] = run_entry(r, state, reason, outcomes.get(r.name))
    by_cell = {}
    for e in entries.values():
        if e["status"] == "ok":
            by_cell.setdefault(e["cell"], []).append(e)
    cells, extra = [], {}
    for c in layout.cells(batch_map or {}, depths):
        name = Config(c.depth, c.method, c.trained_batch, holdout=holdout).cell
        oks = by_cell.get(name, [])
        s = stat({e["seed"]: e["values"][c.metric] for e in oks})
        cells.append({"run": name, "depth": c.depth, "method": c.method, "batch": c.batch,
                      "trained_batch": c.trained_batch, "metric": c.metric, **s, "paper": c.paper,
                      "diff": None if s["mean"] is None else round(s["mean"] - c.paper, 2)})
        keys = sorted({k for e in oks for k in e["values"]} - set(layout.metrics))
        extra[name] = {k: stat({e["seed"]: e["values"][k] for e in oks if k in e["values"]}) for k in keys}
    return {"table": table, "demo": demo, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "info": info or {}, "seeds": sorted({r.config.seed for r in runs}),
            "depths": sorted({r.config.depth for r in runs}, reverse=True),
            "protocols": sorted({e["protocol"] for e in entries.values() if e["protocol"]}),
            "cells": cells, "extra": extra, "runs": entries}
