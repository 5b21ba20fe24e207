"""Assemble a table from the runs' evaluation JSONs and print / save it beside the paper's.

Values come only from ``<logroot>/<run>/eval.json`` (``summary``, percent, written
by evaluate.py); the paper's come from :mod:`tables.paper`.  A cell without a
usable eval.json is missing (printed as ``—``, ``null`` in JSON, empty in CSV)
and the reason is listed under the table.

:func:`collect` -> a result dict; :func:`render` -> text; :func:`write` ->
``table{N}.json``, ``table{N}.csv`` and ``table{N}.md`` in the results folder.
"""
import csv
import io
import json
import math
import os
import time

from tabulate import tabulate

import fileio

from tables import paper
from tables.configs import Config
from tables.runner import show

MISSING = "—"
CSV_FIELDS = ("table", "run", "depth", "method", "batch", "trained_batch", "metric",
              "ours", "paper", "diff", "status")


def load_summary(logdir):
    """(summary dict, None) from ``<logdir>/eval.json``, or (None, reason) if it is not usable."""
    path = os.path.join(logdir, "eval.json")
    done = os.path.join(logdir, "done.json")
    if not os.path.exists(path):
        if not os.path.isdir(logdir):
            return None, "not run"
        if not os.path.exists(done):
            return None, "training not finished"
        return None, "trained, not evaluated"
    if os.path.exists(done) and os.path.getmtime(path) < os.path.getmtime(done):
        return None, f"{path} is older than done.json (re-run to evaluate)"
    try:
        with open(path) as f:
            summary = json.load(f)["summary"]
        values = {m: float(summary[m]) for m in paper.METRICS}
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"{path} unusable ({type(e).__name__}: {e})"
    if not all(math.isfinite(v) for v in values.values()):
        return None, f"{path} has a non-finite metric"
    return {k: v for k, v in summary.items() if isinstance(v, (int, float))}, None


def _table_cells(table, batch_map):
    """[(Config actually trained, paper batch, metric, paper value)] in the paper's order."""
    out = []
    if table == 1:
        b = paper.TABLE1_BATCH
        for depth in paper.DEPTHS:
            for metric in paper.METRICS:
                for method in paper.METHOD_NAMES:
                    out.append((Config(depth, method, batch_map.get(b, b)), b, metric,
                                paper.TABLE1[(depth, method)][metric]))
    elif table == 2:
        for (method, b), by_depth in paper.TABLE2.items():
            for depth in paper.DEPTHS:
                out.append((Config(depth, method, batch_map.get(b, b)), b, paper.TABLE2_METRIC,
                            by_depth[depth]))
    else:
        raise ValueError(f"table must be 1 or 2, got {table!r}")
    return out


def collect(table, logroot, *, batch_map=None, outcomes=None, demo=False, info=None):
    """The result of paper Table ``table`` (1 or 2) from the eval JSONs under ``logroot``.

    ``batch_map``: paper batch -> batch trained (demo); ``outcomes``: {run: runner.Outcome}
    of this invocation, so that failures carry their message and log path; ``info``: extra
    JSON-able facts to save (data folder, train.py arguments, ...).
    Returns ``{"table", "demo", "created", "info", "cells": [...], "runs": {...}}``; each cell has
    run, depth, method, batch (the paper's), trained_batch, metric, ours, paper, diff (ours - paper).
    """
    batch_map, outcomes = batch_map or {}, outcomes or {}
    cells, runs = [], {}
    for cfg, b, metric, ref in _table_cells(table, batch_map):
        if cfg.name not in runs:
            logdir = os.path.join(logroot, cfg.name)
            summary, reason = load_summary(logdir)
            run = {"logdir": logdir, "eval_json": os.path.join(logdir, "eval.json"),
                   "status": "ok" if summary else "missing", "summary": summary}
            out = outcomes.get(cfg.name)
            if out is not None and out.status == "failed":  # e.g. a conflict: its eval.json is not this run's
                run.update(status="failed", message=out.message, log=out.log, summary=None)
            elif summary is None:
                run["message"] = reason
            runs[cfg.name] = run
        summary = runs[cfg.name]["summary"]
        ours = round(summary[metric], 2) if summary else None
        cells.append({"run": cfg.name, "depth": cfg.depth, "method": cfg.aug, "batch": b,
                      "trained_batch": cfg.batch, "metric": metric, "ours": ours, "paper": ref,
                      "diff": None if ours is None else round(ours - ref, 2)})
    return {"table": table, "demo": demo, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "info": info or {}, "cells": cells, "runs": runs}


def _num(x):
    return MISSING if x is None else f"{x:.2f}"


def _diff(x):
    return MISSING if x is None else f"{x:+.2f}"


def grid(result):
    """(headers, rows) of the table in the paper's shape, with ours / paper / diff for every cell."""
    cells = result["cells"]
    if result["table"] == 1:
        # Rows: depth x metric x (ours, paper, diff); columns: the five methods (paper Table 1).
        headers = ["Depth", "Metric", ""] + list(paper.METHOD_NAMES.values())
        by = {(c["depth"], c["metric"], c["method"]): c for c in cells}
        rows = []
        for depth in paper.DEPTHS:
            for i, metric in enumerate(paper.METRICS):
                for j, (label, key, fmt) in enumerate((("ours", "ours", _num), ("paper", "paper", _num),
                                                       ("diff", "diff", _diff))):
                    first = [f"ResNet{depth}" if i == j == 0 else "",
                             paper.METRIC_NAMES[metric] if j == 0 else "", label]
                    rows.append(first + [fmt(by[(depth, metric, m)][key]) for m in paper.METHOD_NAMES])
        return headers, rows
    # Table 2. Rows: method x batch; columns: per depth ours, paper, diff (paper Table 2).
    headers = ["Method", "Batch size"]
    for depth in paper.DEPTHS:
        headers += [f"ResNet{depth}", "paper", "diff"]
    by = {(c["method"], c["batch"], c["depth"]): c for c in cells}
    rows, seen = [], set()
    for method, b in paper.TABLE2:
        some = by[(method, b, paper.DEPTHS[0])]
        batch = str(b) if some["trained_batch"] == b else f"{b} (ran {some['trained_batch']})"
        row = [paper.METHOD_NAMES[method] if method not in seen else "", batch]
        seen.add(method)
        for depth in paper.DEPTHS:
            c = by[(method, b, depth)]
            row += [_num(c["ours"]), _num(c["paper"]), _diff(c["diff"])]
        rows.append(row)
    return headers, rows


DEMO_BANNER = ("DEMO on synthetic data with a narrow net and a short schedule: "
               "these numbers do not compare with the paper's.")


def title(result):
    if result["table"] == 1:
        b = paper.TABLE1_BATCH
        ran = {c["trained_batch"] for c in result["cells"]}
        batch = f"batch {b}" if ran == {b} else f"batch {'/'.join(map(str, sorted(ran)))} in place of {b}"
        t = f"Table 1: accuracy (%) by augmentation, {batch}; ours vs paper Table 1, diff = ours - paper"
    else:
        t = "Table 2: Top-1 Loc (%) by batch size and depth; ours vs paper Table 2, diff = ours - paper"
    return ("[DEMO] " + t) if result["demo"] else t


def notes(result):
    """Lines under the table: the demo warning, then each missing cell's run and why."""
    lines = [DEMO_BANNER] if result["demo"] else []
    not_run = []
    for name, run in result["runs"].items():
        if run["status"] == "failed":
            lines.append(f"{MISSING} {name}: FAILED: {run['message']}; log {show(run['log'])}")
        elif run["status"] == "missing" and run["message"] == "not run":
            not_run.append(name)
        elif run["status"] == "missing":
            lines.append(f"{MISSING} {name}: {run['message']} ({show(run['logdir'])})")
    if not_run:
        root = os.path.dirname(result["runs"][not_run[0]]["logdir"])
        lines.append(f"{MISSING} not run (no folder in {show(root)}): {', '.join(not_run)}")
    return lines


def _tabulate(result, tablefmt):
    n = 3 if result["table"] == 1 else 2  # label columns, then numbers
    headers, rows = grid(result)
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True,
                    colalign=("left",) * n + ("right",) * (len(headers) - n))


def render(result, tablefmt="simple"):
    """The printable table: title, the grid (tabulate ``tablefmt``) and the notes."""
    body = _tabulate(result, tablefmt)
    parts = [title(result), "", body]
    if notes(result):
        parts += [""] + notes(result)
    return "\n".join(parts)


def write(result, out_dir):
    """Save ``table{N}.json`` (everything), ``.csv`` (one row per cell) and ``.md``; their paths."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"table{result['table']}")
    fileio.write_json(stem + ".json", result)
    rows = io.StringIO(newline="")
    w = csv.DictWriter(rows, fieldnames=CSV_FIELDS)
    w.writeheader()
    for c in result["cells"]:
        row = {k: ("" if c.get(k) is None else c.get(k)) for k in CSV_FIELDS}
        row.update(table=result["table"], status=result["runs"][c["run"]]["status"])
        w.writerow(row)
    fileio.write_text(stem + ".csv", rows.getvalue())
    md = [f"## {title(result)}", "", _tabulate(result, "github")]
    if notes(result):
        md += [""] + [f"- {line}" for line in notes(result)]
    md.append(f"\nGenerated {result['created']} from the eval.json of each run.")
    fileio.write_text(stem + ".md", "\n".join(md) + "\n")
    return [stem + ".json", stem + ".csv", stem + ".md"]
