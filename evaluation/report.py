"""evaluate.py's output: the eval.json document (:func:`document`, a runrecord.evaldoc.EvalDoc), the
printed tables, the pictures.

The parts :func:`document` assembles (percent everywhere; docs/evaluation.md, "The JSON")::

    "protocols": {"authors"|"paper"|"wsol": {
         "summary": {5 metrics at --cam-threshold, 0.2 by default},
         "baselines": {"whole_image", "best_fixed_box", "whole_image_box", "fixed_box", "fixed_box_fit_on"},
         "holdout": null | {"threshold", "summary", "num_images", "holdout_gt_known_loc"},
         "sweep": null | {"thresholds", "gt_known_loc", "top1_loc", "top5_loc", "num_images", "best"}}},
    "wsol2020": {"maxboxacc_v2", "top1_loc_v2", "by_iou": {"30"|"50"|"70": {...}},
                 "holdout": null | {"maxboxacc_v2", "top1_loc_v2", "by_iou", "num_images"}}
"""

import os

import fileio
from cam import METRIC_TITLES, METRICS, NAMES, PROTOCOLS, BoxEvaluator
from cam import baselines, vis
from cam.maxboxacc import maxboxacc_v2
from cam.protocols import whole_image_box
from runrecord.evaldoc import EvalDoc


# The protocol each table script's cells use: run_table1.sh / run_table2.sh --data evaluate with evaluate.py's
# default, the demo with reproduce/__main__.py's DEMO_EVAL_ARGS (tests/test_evaluate_report.py checks both).
DEFAULT_PROTOCOL = "authors"
DEMO_PROTOCOL = "paper"
TABLE_USE = {
    DEFAULT_PROTOCOL: "the tables on Tiny ImageNet (default)",
    DEMO_PROTOCOL: "make demo's table",
}


def protocol_entry(evaluator, cam_threshold, baselines, held=None, sweep=False):
    """One protocol's block of eval.json from its val evaluator (and its held-out one)."""
    entry = {
        "summary": evaluator.summary(cam_threshold),
        "baselines": baselines,
        "holdout": None,
        "sweep": evaluator.sweep() if sweep else None,
    }
    if held is not None:
        threshold, value = held.best()
        entry["holdout"] = {
            "threshold": threshold,
            "summary": evaluator.summary(threshold),
            "num_images": held.count,
            "holdout_gt_known_loc": value,
        }
    return entry


def baseline_entries(split, indices, fit_boxes, fit_on):
    """Per protocol: GT-known Loc of the whole image and of the best fixed box (fit on ``fit_boxes``,
    which ``fit_on`` names for eval.json) over the evaluated images ``indices`` of ``split``."""
    shape, gts = split.image_shape, split.boxes[indices]
    out = {}
    for name in NAMES:
        protocol = PROTOCOLS[name]
        whole = whole_image_box(protocol, shape)
        fixed, _ = baselines.best_fixed_box(fit_boxes, shape, protocol)
        scores = {}
        for key, box in (("whole_image", whole), ("best_fixed_box", fixed)):
            ev = BoxEvaluator(protocol, [0.0])
            for gt in gts:
                ev.add_box(box, gt)
            scores[key] = ev.summary(0.0)["gt_known_loc"]
        out[name] = dict(
            scores,
            whole_image_box=whole.tolist(),
            fixed_box=fixed.tolist(),
            fixed_box_fit_on=fit_on,
        )
    return out


def wsol2020_entry(evaluator, held=None):
    entry = maxboxacc_v2(evaluator)
    entry["holdout"] = (
        None if held is None else dict(maxboxacc_v2(evaluator, held), num_images=held.count)
    )
    return entry


def document(val, held, baselines, settings, records, timing, protocol, cam_threshold, sweep=False):
    """The EvalDoc of one evaluation.  ``val``, ``held``: {protocol name, and "wsol2020": evaluator} of the
    evaluated images and of the held-out ones (None without); ``baselines``: :func:`baseline_entries`;
    ``settings``: the caller's settings part; ``records``: :func:`records`; ``timing``: seconds per stage;
    ``protocol``: the summary's; ``cam_threshold``: the summary threshold; ``sweep``: keep every threshold."""
    protocols = {
        name: protocol_entry(
            val[name], cam_threshold, baselines[name], held[name] if held else None, sweep
        )
        for name in NAMES
    }
    return EvalDoc(
        summary=protocols[protocol]["summary"],
        protocol=protocol,
        protocols=protocols,
        wsol2020=wsol2020_entry(val["wsol2020"], held["wsol2020"] if held else None),
        settings=settings,
        records=records,
        timing=timing,
    )


def records(split, indices, result):
    """Per-image records of the chosen protocol at the summary threshold."""
    top5 = result["top5"]  # None: no class predictions (--cams without predictions.npy)
    return [
        {
            "file": split.files[i],
            "label": int(split.labels[i]),
            "top5": None if top5 is None else top5[j].tolist(),
            "gt_box": split.boxes[i].tolist(),
            "pred_box": result["pred_boxes"][j].tolist(),
            "iou": float(result["ious"][j]),
        }
        for j, i in enumerate(indices)
    ]


def _table(rows, headers):
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", floatfmt=".2f")


def print_report(doc, timing, count):
    """Of an EvalDoc: the headline (the chosen protocol named first), the protocol table with the rows
    the tables use marked, the held-out thresholds, MaxBoxAccV2 and the speed."""
    chosen, protocols, settings = doc.protocol, doc.protocols, doc.settings
    print(
        f"protocol {chosen} (--protocol), CAM threshold {settings['cam_threshold']:g}, "
        f"{count} {settings['split']} images:"
    )
    print(_table([(METRIC_TITLES[m], doc.summary[m]) for m in METRICS], ("metric", "%")))
    if chosen != DEMO_PROTOCOL:
        demo = protocols[DEMO_PROTOCOL]["summary"]
        print(
            f"make demo's cells use protocol {DEMO_PROTOCOL} (the row marked below): "
            + ", ".join(f"{METRIC_TITLES[m]} {_percent(demo[m])}" for m in METRICS[:3])
        )
    rows = [
        [name]
        + [protocols[name]["summary"][m] for m in METRICS]
        + [
            protocols[name]["baselines"]["whole_image"],
            protocols[name]["baselines"]["best_fixed_box"],
            TABLE_USE.get(name, ""),
        ]
        for name in NAMES
    ]
    print(
        _table(
            rows,
            ["protocol"]
            + [METRIC_TITLES[m] for m in METRICS]
            + ["whole image", "fixed box", "used by"],
        )
    )
    for name in NAMES:
        held = protocols[name]["holdout"]
        if held:
            print(
                f"{name}: threshold {held['threshold']:g} chosen on {held['num_images']} held-out training "
                f"images -> GT-known Loc {held['summary']['gt_known_loc']:.2f}, Top-1 Loc "
                f"{held['summary']['top1_loc']:.2f} on {settings['split']}"
            )
    v2 = doc.wsol2020
    line = (
        f"MaxBoxAccV2 {v2['maxboxacc_v2']:.2f}, its Top-1 Loc twin {_percent(v2['top1_loc_v2'])} "
        f"(thresholds tuned on {settings['split']})"
    )
    if v2["holdout"]:
        line += f"; with held-out thresholds {v2['holdout']['maxboxacc_v2']:.2f} / {v2['holdout']['top1_loc_v2']:.2f}"
    print(line)
    if "forward" not in timing:  # --cams: the maps were read, not computed
        post = sum(v for k, v in timing.items() if k != "read")
        print(
            f"read {count} score maps in {timing['read']:.2f} s; all protocols + MaxBoxAccV2 {post:.2f} s"
        )
        return
    forward = timing["forward"]
    post = sum(v for k, v in timing.items() if k != "forward")
    print(
        f"forward {count / forward:.1f} img/s; CAM + all protocols + MaxBoxAccV2 {post:.2f} s "
        f"= {100 * post / forward:.1f}% of the forward pass"
    )


def _percent(value):
    """A percentage as printed; ``-`` for a metric not measured (None: no class predictions)."""
    return "-" if value is None else f"{value:.2f}"


def write_vis(folder, split, indices, positions, result, scale, names=None):
    """Figure 2 for the images at ``positions`` of the evaluated list (``indices[j]`` in the split);
    ``names``: a readable name per class (dataflow.words.class_names), the wnids without."""
    names = names or split.wnids
    panels = []
    for j in positions:
        i = int(indices[j])
        name = os.path.splitext(os.path.basename(split.files[i]))[0]
        top1 = "not given" if result["top5"] is None else names[result["top5"][j][0]]
        caption = f"{name}: {names[split.labels[i]]}\ntop-1 {top1}, IoU {result['ious'][j]:.2f}"
        panel = vis.figure_panels(
            split.images[i],
            result["maps"][j],
            split.boxes[i],
            result["pred_boxes"][j],
            scale=scale,
            caption=caption,
        )
        fileio.write_png(os.path.join(folder, vis.panel_file(i, split.files[i])), panel)
        panels.append(panel)
    fileio.write_png(os.path.join(folder, "grid.png"), vis.grid(panels))


def write_sweep(prefix, doc):
    """PREFIX.json (every protocol's sweep) and PREFIX.png (their curves) of an EvalDoc."""
    sweeps = {name: doc.protocols[name]["sweep"] for name in NAMES}
    fileio.write_json(prefix + ".json", {"protocols": sweeps, "settings": doc.settings})
    marks = [(doc.settings["cam_threshold"], "summary")]
    fileio.write_png(prefix + ".png", vis.plot_sweep(sweeps, marks))
