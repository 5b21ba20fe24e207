"""A collected table (reproduce.runs.collect) as printed, and saved as ``table{N}.json``, ``.csv``, ``.md``,
the claims' forest plot and the paper's Figure 2 across methods (docs/tables.md, docs/claims.md)."""

import csv
import io
import json
import os

from tabulate import tabulate

import fileio
from cam.metrics import METRIC_TITLES
from reproduce import figures, paper
from reproduce.figures import one_per
from reproduce.executor import show
from reproduce.runs import PER_IMAGE
from reproduce.paper import LAYOUTS, MISSING, fmt_stat

METRIC_CHOICES = ("paper", "wsol2020", "all")
CSV_FIELDS = (
    "table",
    "run",
    "seed",
    "folder",
    "depth",
    "method",
    "batch",
    "trained_batch",
    "metric",
    "value",
    "mean",
    "std",
    "n",
    "paper",
    "diff",
    "status",
)
WSOL2020 = (
    ("maxboxacc_v2", "MaxBoxAccV2"),
    ("maxboxacc_v2_holdout", "MaxBoxAccV2 (held-out thr.)"),
    ("holdout_top1_loc", "Top-1 Loc (held-out thr.)"),
    ("holdout_threshold", "threshold"),
)
EFFECT_COLUMNS = (
    ("authors_vs_paper.gt_known_loc", "GT-known: authors-paper"),
    ("authors_vs_paper.top1_loc", "Top-1 Loc: authors-paper"),
    ("paper_vs_wsol.gt_known_loc", "GT-known: paper-wsol"),
    ("paper_vs_wsol.top1_loc", "Top-1 Loc: paper-wsol"),
)
DEMO_BANNER = (
    "DEMO on synthetic data with a narrow net and a short schedule: "
    "these numbers do not compare with the paper's."
)


def _extra(result):
    return lambda cell, key: result["extra"].get(cell, {}).get(key)


def grid(result):
    """(headers, rows) of the paper's table: ours (mean ± std over seeds), paper, diff per cell; the demo
    drops the paper's and diff rows and columns (its claims block shows the paper's differences)."""
    by = {(c["depth"], c["method"], c["batch"], c["metric"]): c for c in result["cells"]}
    layout = LAYOUTS[result["table"]]
    methods = list(
        dict.fromkeys(c["method"] for c in result["cells"])
    )  # Table 1's columns, in order
    headers, rows = layout.rows(
        lambda d, m, b, metric: by[(d, m, b, metric)], _extra(result), result["depths"], methods
    )
    if not result["demo"]:
        return headers, rows
    n, cut = layout.label_columns, ("paper", "diff")
    keep = [i for i, h in enumerate(headers) if h not in cut]
    return [headers[i] for i in keep], [
        [r[i] for i in keep] for r in rows if not set(r[:n]) & set(cut)
    ]


def side_table(result, columns):
    """(headers, rows): a row per cell with any of ``columns`` ((key, header)), a column each; None if none."""
    extra = _extra(result)
    rows = [
        [f"ResNet{c['depth']}", paper.method_title(c["method"]), str(c["trained_batch"])]
        + [fmt_stat(extra(c["run"], k)) for k, _ in columns]
        for c in one_per(result["cells"], "run")
    ]
    rows = [r for r in rows if any(v != MISSING for v in r[3:])]
    return (["Depth", "Method", "Batch"] + [h for _, h in columns], rows) if rows else None


def machines_of(result):
    """``{machine description: [run names]}`` of the runs with a result (settings.json ``machine``)."""
    out = {}
    for name, r in result["runs"].items():
        if r["status"] == "ok":
            for m in r.get("machines") or [
                "a machine not recorded (settings.json before issue 24)"
            ]:
                out.setdefault(m, []).append(name)
    return out


def header_lines(result):
    """How the numbers were made: protocol, recipe, holdout, seeds."""
    info, seeds = result["info"], result["seeds"]
    protocols = ", ".join(result["protocols"]) or "not recorded (no eval.json names one)"
    lines = [
        f"evaluation protocol: {protocols}; training recipe: {info.get('recipe') or 'train.py default'}"
        f"; held-out training images per class: {info.get('holdout') or 0}",
        f"seeds: {', '.join(map(str, seeds))}"
        + ("; cells show mean±std (sample std) over the seeds" if len(seeds) > 1 else ""),
    ]
    machines = machines_of(result)
    for (
        m,
        names,
    ) in (
        machines.items()
    ):  # training is bit-identical on one machine only (docs/reproducibility.md)
        lines.append(
            f"trained on {m}: "
            + (f"{len(names)} run(s)" if len(machines) == 1 else ", ".join(names))
        )
    if len(result["protocols"]) > 1:
        lines.append("WARNING: the runs were evaluated under different protocols; cells mix them")
    return lines


def notes(result):
    """Lines under the table: the demo warning, absent depths, then each missing run and why."""
    lines = [DEMO_BANNER] if result["demo"] else []
    absent = [d for d in paper.DEPTHS if d not in result["depths"]]
    if absent:
        lines.append(
            "not run here: "
            + ", ".join(f"ResNet{d}" for d in absent)
            + f" (this invocation runs depth {', '.join(map(str, result['depths']))} only)"
        )
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


def _fmt(table, tablefmt, labels=3):
    headers, rows = table
    return tabulate(
        rows,
        headers=headers,
        tablefmt=tablefmt,
        disable_numparse=True,
        colalign=("left",) * labels + ("right",) * (len(headers) - labels),
    )


def sections(result, tablefmt):
    """[(title, table text)] of what ``result["info"]["metrics"]`` asks for, the protocol effects, the claims."""
    metrics, layout, out = result["info"].get("metrics") or "paper", LAYOUTS[result["table"]], []
    if metrics in ("paper", "all"):
        title = layout.title({c["trained_batch"] for c in result["cells"]})
        if result["demo"]:
            title = (
                "[DEMO] "
                + title.split(";")[0]
                + "; ours only (the paper's differences: the claims below)"
            )
        title = not_the_papers(result) + title
        out.append((title, _fmt(grid(result), tablefmt, layout.label_columns)))
    if metrics in ("wsol2020", "all"):
        t = side_table(result, WSOL2020)
        out.append(
            (
                "The 2020 metrics (Choe et al., CVPR 2020) on val: MaxBoxAccV2 with thresholds tuned on val "
                "or on the held-out training images (--holdout N), and Top-1 Loc at the held-out threshold",
                _fmt(t, tablefmt)
                if t
                else "no run has them (eval.json without 'wsol2020' / holdout)",
            )
        )
    t = side_table(result, EFFECT_COLUMNS)
    if t:
        out.append(
            (
                "How much each protocol quirk moves each cell, in points (eval.json 'protocols')",
                _fmt(t, tablefmt),
            )
        )
    return out


def not_the_papers(result):
    """The title's warning when the runs differ from the paper's schedule (reproduce/schedule.py), else ""."""
    changed = result.get("schedule") if not result["demo"] else None
    return f"[NOT THE PAPER'S SCHEDULE: {'; '.join(changed)}] " if changed else ""


def render(result, markdown=False):
    """The printed text, or the Markdown of ``table{N}.md``: sections, the claims collect tested, provenance
    and notes."""
    head, mark, fmt = ("## ", "- ", "github") if markdown else ("", "", "simple")
    parts = []
    for title, body in sections(result, fmt):
        parts += [head + title, "", body, ""]
    title, table, lines = claims_block(result["claims"], fmt)
    parts += [head + title, "", table, ""] + [mark + x for x in lines]
    if markdown:
        return (
            "\n".join(
                parts
                + ["", f"![claims](table{result['table']}-claims.png)", ""]
                + [mark + x for x in header_lines(result) + notes(result)]
                + [f"\nGenerated {result['created']} from the eval.json of each run."]
            )
            + "\n"
        )
    return "\n".join(
        parts + [""] + header_lines(result) + ([""] + notes(result) if notes(result) else [])
    )


def claims_block(records, tablefmt="simple"):
    """(heading, table text, note lines) of the claims: a row per instance, then what the interval
    covers and the claims' sentences."""

    def fmt_verdict(r):
        if r.get("difference") is None:
            return f"not computed: {r['reason']}"
        seeds = min(r["seeds"])
        return f"{r['verdict']} ({seeds} seed{'s' if seeds > 1 else ''}{'' if seeds > 1 else ', images only'})"

    rows = [
        [
            r["claim"],
            r.get("label", ""),
            METRIC_TITLES.get(r.get("metric"), ""),
            "" if r.get("difference") is None else f"{r['difference']:+.2f}",
            ""
            if r.get("interval") is None
            else f"[{r['interval'][0]:+.2f}, {r['interval'][1]:+.2f}]",
            "" if r.get("paper_difference") is None else f"{r['paper_difference']:+.2f}",
            fmt_verdict(r),
        ]
        for r in records
    ]
    done = [r for r in records if r.get("difference") is not None]
    protocols = sorted({r["protocol"] for r in done})
    images = sorted({r["images"] for r in done})
    seeds = sorted({s for r in done for s in r["seeds"]})
    head = (
        f"Claims of the paper, tested (protocol {', '.join(protocols) or '-'}): ours = A - B in points, "
        f"its {paper.LEVEL}% bootstrap interval, paper = the paper's A - B"
    )
    paired = any(str(r.get("resampled", "")).startswith("seeds (paired") for r in done)
    lines = [
        f"interval: {paper.RESAMPLES} resamples of the seeds ("
        + ("the same seed drawn for both cells" if paired else "each cell's own")
        + ") and of the same "
        f"{'/'.join(map(str, images)) or '-'} validation images in both cells (docs/claims.md)"
    ]
    table = tabulate(
        rows,
        headers=[
            "claim",
            "A - B",
            "metric",
            "ours",
            f"{paper.LEVEL}% interval",
            "paper",
            "verdict",
        ],
        tablefmt=tablefmt,
        disable_numparse=True,
    )
    if seeds and min(seeds) == 1:
        lines.append(
            "ONE SEED in a cell: its intervals cover the sampling of the validation images only, "
            "not the seed-to-seed spread; run more seeds (--seeds N) for that"
        )
    lines += [
        f'{r["claim"]}: "{r["sentence"]}" ({r["section"]})' for r in one_per(records, "claim")
    ]
    return head, table, lines


def csv_rows(result):
    """One row per (cell, metric, seed): the paper's cells, then every other value read per cell."""
    folder = {(r["cell"], r["seed"]): (name, r["status"]) for name, r in result["runs"].items()}
    rows = []

    def emit(c, metric, st, ref=None, diff=None):
        for seed in result["seeds"]:
            name, status = folder.get((c["run"], seed), ("", "missing"))
            rows.append(
                {
                    "table": result["table"],
                    "run": c["run"],
                    "seed": seed,
                    "folder": name,
                    "depth": c["depth"],
                    "method": c["method"],
                    "batch": c["batch"],
                    "trained_batch": c["trained_batch"],
                    "metric": metric,
                    "value": (st or {}).get("seeds", {}).get(str(seed)),
                    "mean": (st or {}).get("mean"),
                    "std": (st or {}).get("std"),
                    "n": (st or {}).get("n", 0),
                    "paper": ref,
                    "diff": diff,
                    "status": status,
                }
            )

    for c in result["cells"]:
        emit(c, c["metric"], c, c["paper"], c["diff"])
    for c in one_per(result["cells"], "run"):
        for key, st in result["extra"].get(c["run"], {}).items():
            emit(c, key, st)
    return rows


def ok_runs(result):
    """The names of the runs with a usable result."""
    return {name for name, r in result["runs"].items() if r["status"] == "ok"}


def missing_runs(result, names):
    """``[(name, why)]`` of the runs ``names`` without a usable result (the reason collect recorded)."""
    runs = result["runs"]
    return [
        (
            n,
            "FAILED: " + runs[n].get("message", "")
            if runs[n]["status"] == "failed"
            else runs[n].get("message") or "no result",
        )
        for n in names
        if runs[n]["status"] != "ok"
    ]


def stem_for(result, out_dir):
    """``(stem, kept)``: where to write, and the earlier ``table{N}.json`` kept (or None).  A result that
    lacks a run the earlier one had is written as ``table{N}-incomplete.*``: a fuller result is never
    replaced by a poorer one (an unreadable earlier file is replaced)."""
    stem = os.path.join(out_dir, f"table{result['table']}")
    try:
        with open(stem + ".json", encoding="utf-8") as f:
            earlier = {name for name, r in json.load(f)["runs"].items() if r["status"] == "ok"}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return stem, None
    return (stem + "-incomplete", stem + ".json") if earlier - ok_runs(result) else (stem, None)


def write(result, out_dir):
    """Save ``table{N}.json`` (everything but the per-image views), ``.csv``, ``.md``, the claims'
    figures and, if a run has panels, ``table{N}-figure2.png`` (:func:`stem_for` picks ``table{N}``
    or ``table{N}-incomplete``); ``(their paths, the earlier table{N}.json kept or None)``."""
    os.makedirs(out_dir, exist_ok=True)
    stem, kept = stem_for(result, out_dir)
    md = render(result, markdown=True)
    fileio.write_json(stem + ".json", {k: v for k, v in result.items() if k != PER_IMAGE})
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
    w.writeheader()
    w.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in csv_rows(result))
    fileio.write_text(stem + ".csv", buf.getvalue())
    fileio.write_text(stem + ".md", md)
    title = f"Table {result['table']}: the paper's claims, ours and the paper's A - B"
    title = "[DEMO] " + title if result["demo"] else not_the_papers(result) + title
    return (
        [stem + ".json", stem + ".csv", stem + ".md"]
        + figures.claims_plot(result["claims"], title, stem + "-claims")
        + figures.iou_scatter(result, stem + "-iou")
        + figures.figure2(result, stem + "-figure2.png"),
        kept,
    )
