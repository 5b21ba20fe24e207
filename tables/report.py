"""A table's numbers from the runs' eval.json files (per seed, mean ± std per cell), printed
beside the paper's and saved as ``table{N}.json``, ``.csv`` and ``.md``.

Values come only from ``<logroot>/<run>/eval.json`` (percent, written by evaluate.py);
the paper's come from :mod:`tables.paper`.  A run counts only in the state ``evaluated``
(:func:`tables.runs.run_state`); any other run is missing, with the reason.
What is read from an eval.json (:func:`read_values`), ``p`` = its ``protocol``:

* the paper's metrics: ``summary`` (= ``protocols[p].summary``, at the fixed CAM threshold);
* ``baseline_whole_image``, ``baseline_best_fixed_box``: ``protocols[p].baselines``;
* ``maxboxacc_v2``: ``wsol2020.maxboxacc_v2`` (thresholds tuned on val), ``maxboxacc_v2_holdout``:
  ``wsol2020.holdout.maxboxacc_v2`` (thresholds chosen on the held-out images); ``holdout_top1_loc``,
  ``holdout_threshold``: ``protocols[p].holdout`` (``summary.top1_loc`` and ``threshold``);
* ``authors_vs_paper.<m>``, ``paper_vs_wsol.<m>``: differences in points of the localisation
  metrics between ``protocols["authors"]``, ``["paper"]`` and ``["wsol"]``.

What is printed (:func:`render`) depends on ``--metrics``: ``paper``, the paper's table
with the no-network baselines as their own rows; ``wsol2020``, MaxBoxAccV2 and Top-1 Loc
at the threshold chosen on the held-out training images (Choe et al., CVPR 2020), one
row per cell; ``all``, both.  Under them: the protocol used, how much each protocol
quirk moves each cell, and why any cell is missing.
"""
import csv
import io
import json
import math
import os
import statistics
import time

from tabulate import tabulate

import fileio
from cam import METRICS
from tables import claims, paper
from tables import runs as rs
from tables.executor import show
from tables.paper import LAYOUTS, MISSING, fmt_stat
from tables.runs import Config

LOC_METRICS = ("gt_known_loc", "top1_loc")   # what the protocols change (classification is the same)
EFFECTS = (("authors_vs_paper", "authors", "paper"), ("paper_vs_wsol", "paper", "wsol"))
METRIC_CHOICES = ("paper", "wsol2020", "all")
CSV_FIELDS = ("table", "run", "seed", "folder", "depth", "method", "batch", "trained_batch", "metric",
              "value", "mean", "std", "n", "paper", "diff", "status")
WSOL2020 = (("maxboxacc_v2", "MaxBoxAccV2"), ("maxboxacc_v2_holdout", "MaxBoxAccV2 (held-out thr.)"),
            ("holdout_top1_loc", "Top-1 Loc (held-out thr.)"), ("holdout_threshold", "threshold"))
EFFECT_COLUMNS = (("authors_vs_paper.gt_known_loc", "GT-known: authors-paper"),
                  ("authors_vs_paper.top1_loc", "Top-1 Loc: authors-paper"),
                  ("paper_vs_wsol.gt_known_loc", "GT-known: paper-wsol"),
                  ("paper_vs_wsol.top1_loc", "Top-1 Loc: paper-wsol"))
DEMO_BANNER = ("DEMO on synthetic data with a narrow net and a short schedule: "
               "these numbers do not compare with the paper's.")


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
    if not isinstance(summary, dict) or any(m not in summary for m in paper.METRICS):
        raise ValueError(f"{path} unusable: no summary with {', '.join(paper.METRICS)}")
    protocol = d.get("protocol")
    protos = d.get("protocols") if isinstance(d.get("protocols"), dict) else {}
    mine = protos.get(protocol)
    values = {m: summary.get(m) for m in METRICS}
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

    ``holdout``: train.py --holdout of the runs; ``outcomes``: {run name: executor.Outcome} of this
    invocation (failures carry their message and log); ``info``: JSON-able facts to save. Returns ``{"table", "demo", "created", "info", "seeds", "depths", "protocols", "cells", "extra",
    "runs"}``: ``cells`` in the paper's order, each with run (the cell's name), depth, method, batch
    (the paper's), trained_batch, metric, mean, std, n, seeds ({seed: value}), paper, diff
    (mean - paper); ``extra[cell][key]``: a :func:`stat` of every other value read; ``runs[name]``:
    :func:`run_entry`.
    """
    layout, outcomes = LAYOUTS[table], outcomes or {}
    entries = {r.name: run_entry(r, *rs.run_state(r), outcomes.get(r.name)) for r in runs}
    cells, extra = [], {}
    for c in layout.cells(batch_map or {}, depths):
        name = Config(c.depth, c.method, c.trained_batch, holdout=holdout).cell
        oks = [e for e in entries.values() if e["status"] == "ok" and e["cell"] == name]
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


def _layout(result):
    return LAYOUTS[result["table"]]


def _extra(result):
    return lambda cell, key: result["extra"].get(cell, {}).get(key)


def grid(result):
    """(headers, rows) of the paper's table: ours (mean ± std over seeds), paper, diff per cell.

    The demo drops the paper's and diff rows and columns (6 synthetic classes against 200 real
    ones); its claims block shows the paper's differences instead, and table1.json keeps them.
    """
    by = {(c["depth"], c["method"], c["batch"], c["metric"]): c for c in result["cells"]}
    headers, rows = _layout(result).rows(lambda d, m, b, metric: by[(d, m, b, metric)], _extra(result),
                                         result["depths"])
    if not result["demo"]:
        return headers, rows
    n, cut = _layout(result).label_columns, ("paper", "diff")
    keep = [i for i, h in enumerate(headers) if h not in cut]
    return [headers[i] for i in keep], [[r[i] for i in keep] for r in rows if not set(r[:n]) & set(cut)]


def _cell_rows(result):
    """One (depth, method, batch) per cell of the table, in the paper's order."""
    seen = {}
    for c in result["cells"]:
        seen.setdefault(c["run"], c)
    return list(seen.values())


def side_table(result, columns):
    """(headers, rows): a row per cell that has any of the values, a column per (key, header) of
    ``columns``; None if no cell has any."""
    extra = _extra(result)
    rows = [[f"ResNet{c['depth']}", paper.METHOD_NAMES[c["method"]], str(c["trained_batch"])]
            + [fmt_stat(extra(c["run"], k)) for k, _ in columns] for c in _cell_rows(result)]
    rows = [r for r in rows if any(v != MISSING for v in r[3:])]
    if not rows:
        return None
    return ["Depth", "Method", "Batch"] + [h for _, h in columns], rows


def title(result):
    t = _layout(result).title({c["trained_batch"] for c in result["cells"]})
    return ("[DEMO] " + t.split(";")[0] + "; ours only (the paper's differences: the claims below)"
            if result["demo"] else t)


def header_lines(result):
    """How the numbers were made: protocol, recipe, holdout, seeds."""
    info = result["info"]
    protocols = ", ".join(result["protocols"]) or "not recorded (no eval.json names one)"
    seeds = result["seeds"]
    lines = [f"evaluation protocol: {protocols}; training recipe: {info.get('recipe') or 'train.py default'}"
             f"; held-out training images per class: {info.get('holdout') or 0}",
             f"seeds: {', '.join(map(str, seeds))}"
             + ("; cells show mean±std (sample std) over the seeds" if len(seeds) > 1 else "")]
    if len(result["protocols"]) > 1:
        lines.append("WARNING: the runs were evaluated under different protocols; cells mix them")
    return lines


def notes(result):
    """Lines under the table: the demo warning, absent depths, then each missing run and why."""
    lines = [DEMO_BANNER] if result["demo"] else []
    absent = [d for d in paper.DEPTHS if d not in result["depths"]]
    if absent:
        lines.append("not run here: " + ", ".join(f"ResNet{d}" for d in absent)
                     + f" (this invocation runs depth {', '.join(map(str, result['depths']))} only)")
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


def sections(result, tablefmt):
    """[(title, table text)] of what ``result["info"]["metrics"]`` asks for, then the protocol effects."""
    metrics = result["info"].get("metrics") or "paper"
    out = []
    if metrics in ("paper", "all"):
        out.append((title(result), _fmt(grid(result), tablefmt, _layout(result).label_columns)))
    if metrics in ("wsol2020", "all"):
        t = side_table(result, WSOL2020)
        out.append(("The 2020 metrics (Choe et al., CVPR 2020) on val: MaxBoxAccV2 with thresholds tuned on val "
                    "or on the held-out training images (--holdout N), and Top-1 Loc at the held-out threshold",
                    _fmt(t, tablefmt) if t else "no run has them (eval.json without 'wsol2020' / holdout)"))
    t = side_table(result, EFFECT_COLUMNS)
    if t:
        out.append(("How much each protocol quirk moves each cell, in points (eval.json 'protocols')",
                    _fmt(t, tablefmt)))
    return out


def _fmt(table, tablefmt, labels=3):
    headers, rows = table
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True,
                    colalign=("left",) * labels + ("right",) * (len(headers) - labels))


def claim_records(result):
    """The claims' verdicts (:func:`tables.claims.check`), computed once and kept in ``result["claims"]``."""
    if "claims" not in result:
        result["claims"] = claims.check(result)
    return result["claims"]


def render(result, tablefmt="simple"):
    """The printable text: every section, the claims' verdicts, the provenance lines, and the notes."""
    parts = []
    for head, body in sections(result, tablefmt):
        parts += [head, "", body, ""]
    parts += [claims.render(claim_records(result), tablefmt), ""]
    parts += header_lines(result)
    if notes(result):
        parts += [""] + notes(result)
    return "\n".join(parts)


def csv_rows(result):
    """One row per (cell, metric, seed): the paper's cells, then every other value read per cell."""
    folder = {(r["cell"], r["seed"]): (name, r["status"]) for name, r in result["runs"].items()}
    rows = []

    def emit(c, metric, st, ref=None, diff=None):
        for seed in result["seeds"]:
            name, status = folder.get((c["run"], seed), ("", "missing"))
            value = (st or {}).get("seeds", {}).get(str(seed))
            rows.append({"table": result["table"], "run": c["run"], "seed": seed, "folder": name,
                         "depth": c["depth"], "method": c["method"], "batch": c["batch"],
                         "trained_batch": c["trained_batch"], "metric": metric, "value": value,
                         "mean": (st or {}).get("mean"), "std": (st or {}).get("std"),
                         "n": (st or {}).get("n", 0), "paper": ref, "diff": diff, "status": status})
    for c in result["cells"]:
        emit(c, c["metric"], c, c["paper"], c["diff"])
    for c in _cell_rows(result):
        for key, st in result["extra"].get(c["run"], {}).items():
            emit(c, key, st)
    return rows


def write(result, out_dir):
    """Save ``table{N}.json`` (everything), ``.csv`` (:func:`csv_rows`), ``.md`` and the claims'
    forest plot ``table{N}-claims.png``; their paths."""
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"table{result['table']}")
    claim_records(result)
    fileio.write_json(stem + ".json", result)
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    for row in csv_rows(result):
        w.writerow({k: ("" if v is None else v) for k, v in row.items()})
    fileio.write_text(stem + ".csv", buf.getvalue())
    md = []
    for head, body in sections(result, "github"):
        md += [f"## {head}", "", body, ""]
    head, table, lines = claims.block(result["claims"], "github")
    md += [f"## {head}", "", table, ""] + [f"- {x}" for x in lines]
    md += ["", f"![claims](table{result['table']}-claims.png)", ""]
    md += [f"- {line}" for line in header_lines(result) + notes(result)]
    md.append(f"\nGenerated {result['created']} from the eval.json of each run.")
    fileio.write_text(stem + ".md", "\n".join(md) + "\n")
    fileio.write_png(stem + "-claims.png", claims.plot(result["claims"], f"{'[DEMO] ' if result['demo'] else ''}Table {result['table']}: "
                                                             "the paper's claims, ours and the paper's A - B"))
    return [stem + ".json", stem + ".csv", stem + ".md", stem + "-claims.png"]
