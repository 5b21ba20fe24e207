"""Evaluate a trained CAM classifier, or the score maps of any codebase (--cams), as a localiser under
three protocols, with baselines and MaxBoxAccV2.

Examples (DATA is the tiny-imagenet-200 folder, or one made by dataflow.synthetic):

    # every protocol on val; the summary is the authors' (SN-ResNet's) protocol; settings from settings.json
    python evaluate.py --load train_log/r18-gr-b256 --data DATA --json train_log/r18-gr-b256/eval.json
    # the same numbers, summary under the paper's words or wsolevaluation's pipeline
    python evaluate.py --load train_log/r18-gr-b256/checkpoint --data DATA --protocol paper
    python evaluate.py --load train_log/r18-gr-b256 --data DATA --protocol wsol
    # CAM threshold chosen on the held-out training images of a run trained with --holdout N
    python evaluate.py --load train_log/r18-gr-b256-h10 --data DATA --threshold-from-holdout
    # raw CAMs and logits for other tools, and the paper's Figure 2 for 16 images
    python evaluate.py --load train_log/r18-gr-b256/model-390000 --data DATA \\
        --save-cams cams.npz --vis figs --vis-count 16
    # accuracy at every threshold 0..1 of every protocol (writes sweep.json and sweep.png)
    python evaluate.py --load train_log/r18-gr-b256 --data DATA --threshold-sweep sweep
    # a checkpoint without settings.json beside it
    python evaluate.py --load old_run/model-5000 --data DATA --depth 18 --final-stride 4
    # score maps of another codebase, one .npy per image (wsolevaluation's layout), and this project's own
    python evaluate.py --cams their_maps --data DATA --json their_eval.json
    python evaluate.py --load train_log/r18-gr-b256 --data DATA --save-cams-dir our_maps

The protocols, the baselines and MaxBoxAccV2 are all computed in one pass over
the CAMs of --load's network or the score maps of --cams (one .npy per image:
evaluation/scoremaps.py, docs/evaluation.md), and
written to --json (layout in evaluation/report.py and the README); the
conventions and their sources are in docs/sources.md.  Exit status 2 with one
``error:`` line for bad input (missing or damaged checkpoint, settings that do
not match it, class count mismatch, data without boxes, an empty split, an
unwritable output, a bad flag value, a missing or malformed score map).
"""

import argparse
import os
from dataclasses import asdict
from types import SimpleNamespace

import numpy as np

import argtypes
import fileio
from cam import CAM_THRESHOLD, NAMES, PROTOCOLS, threshold_grid, vis
from dataflow.words import class_names
from errors import UserError, quiet_closed_stdout, run_main
from evaluation import network, report, scoremaps
from evaluation.runner import build_predictor, evaluate_folder, evaluate_split, evaluators
from runrecord import (
    CHECKPOINT_NAME,
    DONE,
    SETTINGS,
    STATE_FILE,
    STATS,
    RunSettings,
    checkpoint_reference,
    dataset_problem,
    read_settings,
    resolve_checkpoint,
    settings_path,
)

MAX_VIS_SCALE = 32  # a 64x64 image becomes 2048x2048 per panel; larger ran out of memory
SWEEP_STEP = 0.01  # threshold grid of the sweep and of --threshold-from-holdout (wsolevaluation's default step)
# a run folder's record beside its checkpoints (runrecord/)
RUN_RECORD = (STATE_FILE, SETTINGS, DONE, STATS)


def parse_args(argv=None):
    head, _, examples = __doc__.partition("\n\n")
    p = argparse.ArgumentParser(
        description=head,
        epilog=examples,
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--load",
        type=argtypes.utf8_path,
        help="checkpoint prefix (model-STEP), the 'checkpoint' file, or the training logdir",
    )
    source.add_argument(
        "--cams",
        metavar="DIR",
        type=argtypes.folder_path,
        help="instead of a checkpoint: score maps of the ground-truth class written by any "
        "codebase, DIR/<image path as annotated>.npy, and optionally DIR/predictions.npy "
        '(wsolevaluation\'s layout; docs/evaluation.md, "Score maps from another codebase")',
    )
    p.add_argument(
        "--data",
        required=True,
        type=argtypes.data_root,
        help="Tiny ImageNet folder (with wnids.txt)",
    )
    p.add_argument(
        "--protocol",
        choices=NAMES,
        default=report.DEFAULT_PROTOCOL,
        help="protocol of the summary, the records and the pictures (all are computed): authors "
        "(SN-ResNet's evaluation, default), paper (the paper's words), wsol (wsolevaluation)",
    )
    p.add_argument(
        "--split",
        choices=("val", "train"),
        default="val",
        help="images to evaluate (default val, the paper's test set)",
    )
    p.add_argument(
        "--threshold-from-holdout",
        action="store_true",
        help="also choose each protocol's CAM threshold (and MaxBoxAccV2's) on the images the run "
        "held out from training (settings.json train.holdout) and report val at it",
    )
    p.add_argument(
        "--limit",
        type=argtypes.positive_int,
        metavar="N",
        help="evaluate only the first N images (quick checks)",
    )
    p.add_argument(
        "--batch",
        type=argtypes.positive_int,
        default=128,
        help="forward-pass batch size; with --cams, maps read per batch (default 128)",
    )
    p.add_argument(
        "--cam-threshold",
        type=argtypes.probability,
        default=CAM_THRESHOLD,
        help="summary threshold, a fraction of the CAM maximum (default 0.2, the paper's)",
    )
    p.add_argument(
        "--json",
        metavar="FILE",
        type=argtypes.writable_file,
        help="write every protocol, baselines, MaxBoxAccV2, records",
    )
    p.add_argument(
        "--save-cams",
        metavar="FILE.npz",
        type=argtypes.writable_file,
        help="write raw ground-truth class CAMs, logits, labels, FC bias, file names",
    )
    p.add_argument(
        "--save-cams-dir",
        metavar="DIR",
        type=argtypes.writable_dir(),
        help="write the raw ground-truth class CAMs as one .npy per image and the logits as "
        "predictions.npy, the layout --cams reads (DIR: new or empty)",
    )
    p.add_argument(
        "--vis",
        metavar="DIR",
        type=argtypes.writable_dir(),
        help="write the paper's Figure 2 for --vis-count images",
    )
    p.add_argument(
        "--vis-count", type=argtypes.positive_int, default=8, help="images for --vis (default 8)"
    )
    p.add_argument(
        "--vis-scale",
        type=argtypes.int_in(1, MAX_VIS_SCALE),
        default=4,
        help=f"pixel upscale of the pictures (default 4, at most {MAX_VIS_SCALE})",
    )
    p.add_argument(
        "--threshold-sweep",
        nargs="?",
        const="threshold_sweep",
        metavar="PREFIX",
        type=sweep_prefix,
        help="accuracy at every threshold, every protocol; writes PREFIX.json and PREFIX.png "
        "(default prefix threshold_sweep)",
    )
    p.add_argument(
        "--sweep-step",
        type=argtypes.positive_float,
        default=SWEEP_STEP,
        help="threshold step of the sweep and of --threshold-from-holdout (default 0.01)",
    )
    network.add_flags(p)
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also print TensorFlow's and tensorpack's start-up lines (tf_env.py)",
    )
    return p.parse_args(argv)


def sweep_prefix(text):
    """--threshold-sweep PREFIX: PREFIX.json and PREFIX.png must be writable."""
    for ext in (".json", ".png"):
        argtypes.writable_file(text + ext)
    return text


def validate(args):
    """All checks that need no data and no TensorFlow, so that bad flags fail before any work."""
    try:
        threshold_grid(args.sweep_step)
    except ValueError as e:
        raise UserError(f"--sweep-step: {e}") from None
    if args.threshold_from_holdout and args.split == "train":
        raise UserError(
            "--threshold-from-holdout chooses on held-out training images; evaluate --split val"
        )
    if args.cams:
        given = [
            ("--threshold-from-holdout", args.threshold_from_holdout),
            ("--save-cams", args.save_cams),
            ("--save-cams-dir", args.save_cams_dir),
        ]
        refused = [
            flag
            for flag, value in given
            + [(network.flag(name), getattr(args, name) is not None) for name in network.FLAGS]
            if value
        ]
        if refused:
            raise UserError(
                f"--cams scores maps made elsewhere: {refused[0]} needs a checkpoint (--load): its "
                "network, its CAMs or its held-out images"
            )
        if not os.path.isdir(args.cams):
            raise UserError(f"--cams {args.cams}: no such folder")
    if args.save_cams_dir and os.path.isdir(args.save_cams_dir) and os.listdir(args.save_cams_dir):
        raise UserError(
            f"--save-cams-dir {args.save_cams_dir}: not empty; give a new or empty folder (the maps "
            "of another evaluation would be read with these)"
        )
    same = {}
    for flag, path in output_files(args):
        other = same.setdefault(os.path.realpath(path), flag)
        if other != flag:
            raise UserError(
                f"{other} and {flag} would both write {path}: give them different paths"
            )
        if (
            args.vis
            and os.path.dirname(os.path.realpath(path)) == os.path.realpath(args.vis)
            and (
                os.path.basename(path) == "grid.png" or vis.PANEL_FILE.match(os.path.basename(path))
            )
        ):
            raise UserError(
                f"{flag} {path}: --vis {args.vis} writes its pictures there under that name"
            )


def output_files(args):
    """``[(flag, path)]`` of the files evaluate.py writes (not --vis's pictures), in writing order."""
    out = [("--json", args.json), ("--save-cams", args.save_cams)]
    if args.threshold_sweep:
        out += [("--threshold-sweep", args.threshold_sweep + ext) for ext in (".json", ".png")]
    return [(flag, path) for flag, path in out if path]


def run_inputs(args, prefix):
    """``{path: what}`` of the files a --load evaluation reads besides --data: the checkpoint files of
    the run folder, its record (``checkpoint``, settings.json, done.json, stats.json), the --load file."""
    folder = os.path.dirname(prefix)
    names = [n for n in os.listdir(folder) if n.startswith(f"{CHECKPOINT_NAME}-")] + list(
        RUN_RECORD
    )
    inputs = {os.path.join(folder, n): f"a file of the run {folder}" for n in names}
    inputs[args.load] = "the --load file"
    return inputs


def refuse_inputs_as_outputs(args, inputs):
    """UserError if an output (or the --vis or --save-cams-dir folder) resolves to one of ``inputs``
    (``{path: what}``) or to anything inside the --data folder.  Symbolic links and ``..`` are resolved first."""
    inputs = {os.path.realpath(path): what for path, what in inputs.items()}
    data = os.path.realpath(args.data)
    folders = [
        (flag, path)
        for flag, path in (("--vis", args.vis), ("--save-cams-dir", args.save_cams_dir))
        if path
    ]
    for flag, path in output_files(args) + folders:
        real = os.path.realpath(path)
        if real in inputs:
            raise UserError(
                f"{flag} {path}: would overwrite {inputs[real]} that this evaluation reads; "
                "give another path"
            )
        if real == data or real.startswith(data + os.sep):
            raise UserError(
                f"{flag} {path}: is inside the dataset --data {args.data}; write outputs elsewhere"
            )


def load(args):
    """The data, the image sets and the maps' source, all checked before any graph is built: a
    checkpoint and its model (--load, :func:`load_run`) or a folder of score maps (--cams, :func:`load_maps`).

    The fixed-box baseline reads the training boxes alone (those the run trained on, all for --cams).
    """
    from dataflow.annotations import read_annotations
    from dataflow.tinyimagenet import load_split

    cache = {}

    def split_of(name):
        if name not in cache:
            cache[name] = load_split(args.data, name)
        return cache[name]

    if args.cams:
        inp = load_maps(
            args, read_annotations(args.data, args.split), read_annotations(args.data, "train")
        )
    else:
        inp = load_run(args, split_of)
    split = split_of(args.split)
    return SimpleNamespace(split=split, indices=np.arange(len(split))[: args.limit], **inp)


def load_maps(args, ann, train):
    """--cams, before any image is decoded: the maps of the images to evaluate (the first --limit of the
    split's annotations ``ann``) exist, no output overwrites one of them or predictions.npy, and the
    predictions (if any) fit; the fixed box is fit on every ``train`` box."""
    files = ann.files[: args.limit]
    scoremaps.check_folder(args.cams, files)
    predictions = os.path.join(args.cams, scoremaps.PREDICTIONS)
    inputs = {scoremaps.map_path(args.cams, f): "a --cams score map" for f in files}
    refuse_inputs_as_outputs(args, dict(inputs, **{predictions: "the --cams predictions"}))
    return dict(
        top5=scoremaps.read_predictions(args.cams, len(files), len(ann.files), len(ann.wnids)),
        prefix=None,
        model=None,
        holdout=0,
        held=None,
        held_count=0,
        fit_boxes=train.boxes,
        fit_on=f"{len(train.boxes)} training images (all: --cams names no run)",
        score_maps={
            "folder": os.path.abspath(args.cams),
            "predictions": os.path.abspath(predictions) if os.path.isfile(predictions) else None,
        },
    )


def load_run(args, split_of):
    """--load: checkpoint, model settings and the held-out images, checked against the data.

    The held-out images (settings.json ``train.holdout``, the last N of each class, as train.py) are
    decoded only for --threshold-from-holdout.
    """
    prefix = resolve_checkpoint(args.load)
    refuse_inputs_as_outputs(args, run_inputs(args, prefix))
    from dataflow.annotations import read_annotations
    from dataflow.tinyimagenet import holdout_indices, split_holdout

    split = split_of(args.split)
    train = read_annotations(args.data, "train")
    path = settings_path(prefix)
    doc, problem = (
        read_settings(path) if os.path.isfile(path) else (None, None)
    )  # None without settings.json
    if problem:
        raise UserError(problem)
    try:  # the run's settings through their one validated reader (train.holdout, below)
        recorded = RunSettings.from_json(doc) if doc else None
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    from models.resnet import normalization

    flags = {name: getattr(args, name) for name in network.FLAGS}
    model, model_source = network.model_settings(
        flags, doc, path, split, lambda normalize: normalization(normalize, split_of("train"))
    )
    network.check_compatible(model, prefix, split, args.data)
    # the images per class the run held out from training (0 without settings.json, the paper's setting)
    holdout = recorded.train.holdout if recorded else 0
    if args.threshold_from_holdout and holdout == 0:
        raise UserError(
            f"--threshold-from-holdout: {path} names no held-out images (train.holdout "
            f"is 0 or absent); train the run with train.py --holdout N"
        )
    problem = doc and dataset_problem(
        doc.get("dataset") or {}, train, read_annotations(args.data, "val"), (args.split, split)
    )
    if problem:
        raise UserError(
            f"--data {args.data}: {problem}; {path} records the data the run learned "
            "from: evaluate on that data"
        )
    held = holdout_indices(train.labels, holdout, names=train.wnids)
    fit = np.setdiff1d(np.arange(len(train.labels)), held)  # the images the run trained on
    held_split = (
        split_holdout(split_of("train"), holdout)[1] if args.threshold_from_holdout else None
    )
    return dict(
        prefix=prefix,
        model=model,
        model_source=model_source,
        holdout=holdout,
        held=held_split,
        held_count=len(held),
        fit_boxes=train.boxes[fit],
        fit_on=f"{len(fit)} training images the run trained on",
        score_maps=None,
    )


def evaluate(args, inp):
    """One pass over the held-out images (if asked) and one over the evaluated ones; the EvalDoc.

    The maps come from the network's forward pass (--load) or from the --cams folder; from there on
    both take the one path (:func:`evaluation.runner.score_maps`, :func:`document`).
    """
    if args.cams:

        def run(split, indices, evs, desc, **kwargs):
            return evaluate_folder(
                args.cams, inp.top5, split, indices, evs, desc, batch_size=args.batch, **kwargs
            )
    else:
        predictor = build_predictor(inp.model, inp.prefix)

        def run(split, indices, evs, desc, **kwargs):
            return evaluate_split(
                predictor, split, indices, evs, desc, batch_size=args.batch, **kwargs
            )

    grid = threshold_grid(args.sweep_step)
    held = None
    if args.threshold_from_holdout:
        held = evaluators({name: grid for name in NAMES})
        run(inp.held, np.arange(len(inp.held)), held, "choosing thresholds on held-out images")
    thresholds = {
        name: np.union1d(
            grid if args.threshold_sweep else [],
            [args.cam_threshold] + ([held[name].best()[0]] if held else []),
        )
        for name in NAMES
    }
    val = evaluators(thresholds)
    vis_at = []
    if args.vis:
        count = min(args.vis_count, len(inp.indices))
        vis_at = np.unique(np.linspace(0, len(inp.indices) - 1, count).round().astype(int))
    result = run(
        inp.split,
        inp.indices,
        val,
        f"evaluating {args.split}",
        record=(args.protocol, args.cam_threshold),
        keep_maps_for=vis_at,
    )
    return document(args, inp, val, held, result), result, vis_at


def document(args, inp, val, held, result):
    """The EvalDoc (runrecord.evaldoc) of one evaluation, --load's and --cams' alike: without a network (--cams) the
    checkpoint and model fields are null and ``settings.score_maps`` names the folder."""
    base = report.baseline_entries(inp.split, inp.indices, inp.fit_boxes, inp.fit_on)
    model = inp.model
    source = (
        {**checkpoint_reference(inp.prefix, args.json), "model_settings": inp.model_source}
        if model
        else {"checkpoint": None, "checkpoint_sha256": None, "model_settings": None}
    )
    settings = {
        **source,
        "score_maps": inp.score_maps,
        "data": os.path.abspath(args.data),
        "split": args.split,
        "num_images": len(inp.indices),
        "limit": args.limit,
        "holdout_per_class": inp.holdout,
        "holdout_images": inp.held_count,
        **{
            name: model and getattr(model, name) for name in ("depth", "width_mult", "final_stride")
        },
        "num_classes": inp.split.num_classes,
        "image_shape": list(inp.split.image_shape),
        "cam_threshold": args.cam_threshold,
        "sweep_step": args.sweep_step,
        "box_convention": "[x0, y0, x1, y1], max inclusive",
        "protocol_rules": {name: asdict(PROTOCOLS[name]) for name in NAMES},
    }
    return report.document(
        val,
        held,
        base,
        settings,
        report.records(inp.split, inp.indices, result),
        result["timing"],
        args.protocol,
        args.cam_threshold,
        bool(args.threshold_sweep),
    )


def write(args, inp, doc, result, vis_at):
    """Print the report, then write every output, JSON first; a failed write does not stop the
    others, and the failures are one UserError at the end."""
    report.print_report(doc, result["timing"], len(inp.indices))
    if result["top5"] is None:
        print(
            f"Top-1 Loc, Top-1 Clas, Top-5 Loc, Top-5 Clas: not measured, {args.cams} has no "
            f"{scoremaps.PREDICTIONS} (class predictions): blank above, null in --json"
        )
    split, idx = inp.split, inp.indices
    files = [split.files[i] for i in idx]
    jobs = [
        ("--json", args.json and (lambda: fileio.write_json(args.json, doc.to_json()))),
        (
            "--save-cams",
            args.save_cams
            and (
                lambda: fileio.write_npz(
                    args.save_cams,
                    cams=result["cams"],
                    logits=result["logits"].astype(np.float32),
                    labels=split.labels[idx].astype(np.int32),
                    fc_bias=result["fc_bias"],
                    files=np.array(files),
                    gt_boxes=split.boxes[idx].astype(np.int32),
                )
            ),
        ),
        (
            "--save-cams-dir",
            args.save_cams_dir
            and (
                lambda: scoremaps.write_maps(
                    args.save_cams_dir, files, result["cams"], result["logits"].astype(np.float32)
                )
            ),
        ),
        (
            "--threshold-sweep",
            args.threshold_sweep and (lambda: report.write_sweep(args.threshold_sweep, doc)),
        ),
        (
            "--vis",
            args.vis
            and (
                lambda: report.write_vis(
                    made(args.vis),
                    split,
                    idx,
                    vis_at,
                    result,
                    args.vis_scale,
                    class_names(args.data, split.wnids),
                )
            ),
        ),
    ]
    failed, written = [], []
    for flag, job in jobs:
        if job:
            try:
                job()
                written.append(flag)
            except fileio.WriteError as e:
                failed.append(f"{flag}: {e}")
    if failed:
        raise UserError(
            "; ".join(failed)
            + ". The evaluation finished (the numbers above); "
            + (f"written: {', '.join(written)}" if written else "nothing was written")
        )


def made(folder):
    """``folder``, created now (not by the parser: a refused command creates nothing, in a dataset neither)."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise fileio.WriteError(folder, e) from None
    return folder


def main(argv=None):
    args = parse_args(argv)  # the parser and validate() load no TensorFlow: --help answers at once
    validate(args)
    import tf_env  # noqa: F401  (before anything imports tensorflow)

    inp = load(args)
    doc, result, vis_at = evaluate(args, inp)
    write(args, inp, doc, result, vis_at)
    return 0


if __name__ == "__main__":
    quiet_closed_stdout()  # | head: the outputs are still written
    run_main(main)
