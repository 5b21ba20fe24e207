"""Print and save a collected table (:func:`tables.results.collect`) beside the paper's.

:func:`render` -> text; :func:`write` -> ``table{N}.json``, ``table{N}.csv`` and
``table{N}.md`` in the results folder.  What is printed depends on ``--metrics``:

* ``paper``: the paper's table (its metrics at the fixed CAM threshold), with the
  no-network baselines as their own rows;
* ``wsol2020``: a table of MaxBoxAccV2 and Top-1 Loc at the threshold chosen on the
  held-out training images (Choe et al., CVPR 2020), one row per cell;
* ``all``: both.

Under them: the protocol used, how much each protocol quirk moves each cell, and
why any cell is missing.
"""
import csv
import io
import os

from tabulate import tabulate

import fileio
from tables import claims, paper
from tables.executor import show
from tables.layout import LAYOUTS, MISSING, fmt_stat

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
        headers, rows = grid(result)
        n = _layout(result).label_columns
        out.append((title(result), tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True,
                                            colalign=("left",) * n + ("right",) * (len(headers) - n))))
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


def _fmt(table, tablefmt):
    headers, rows = table
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True,
                    colalign=("left",) * 3 + ("right",) * (len(headers) - 3))


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
