"""Evaluate a trained CAM classifier as a localiser: GT-known / Top-1 / Top-5 Loc and Clas.

Examples (DATA is the tiny-imagenet-200 folder, or one made by dataflow.synthetic):

    # the paper's evaluation on val; model settings come from the run's settings.json
    python evaluate.py --load train_log/r18-gr-b256/checkpoint --data DATA
    python evaluate.py --load train_log/r18-gr-b256 --data DATA --json train_log/r18-gr-b256/eval.json
    # raw CAMs and logits for other tools, and the paper's Figure 2 for 16 images
    python evaluate.py --load train_log/r18-gr-b256/model-390000 --data DATA \\
        --save-cams cams.npz --vis figs --vis-count 16
    # wsolevaluation's box rule instead of the authors'
    python evaluate.py --load train_log/r18-gr-b256 --data DATA --box-rule wsol
    # threshold study: accuracy at every threshold 0..1 on val (writes sweep.json and sweep.png)
    python evaluate.py --load train_log/r18-gr-b256 --data DATA --threshold-sweep sweep
    # choose the threshold on the last 10 training images of each class, then apply it to val
    python evaluate.py --load train_log/r18-gr-b256 --data DATA --threshold-from-train --holdout 10
    # the sweep on those training images only
    python evaluate.py --load train_log/r18-gr-b256 --data DATA --split train --holdout 10 --threshold-sweep
    # a checkpoint without settings.json beside it
    python evaluate.py --load old_run/model-5000 --data DATA --depth 18 --final-stride 4

Exit status 2 with one ``error:`` line for bad input (missing checkpoint, class
count mismatch, data without boxes, an empty split, an unwritable output).
"""
import argparse
import os
import sys

import numpy as np

import tf_env  # noqa: F401  (before anything imports tensorflow)
import fileio
from cam import BOX_RULES, IOU_THRESHOLD, METRICS, threshold_grid
from cam import vis
from errors import UserError, run_main
from runrecord import checkpoint_fc_classes, load_run_settings, resolve_checkpoint

CAM_THRESHOLD = 0.2     # facts.md: authors' evaluation, 0.2 x max of the normalised CAM
SWEEP_STEP = 0.01       # issue: threshold sweep from 0 to 1, step 0.01 or finer
METRIC_TITLES = {"gt_known_loc": "GT-known Loc", "top1_loc": "Top-1 Loc", "top1_clas": "Top-1 Clas",
                 "top5_loc": "Top-5 Loc", "top5_clas": "Top-5 Clas"}


def parse_args(argv=None):
    head, _, examples = __doc__.partition("\n\n")
    p = argparse.ArgumentParser(description=head, epilog=examples,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--load", required=True,
                   help="checkpoint prefix (model-STEP), the 'checkpoint' file, or the training logdir")
    p.add_argument("--data", required=True, help="Tiny ImageNet folder (with wnids.txt)")
    p.add_argument("--split", choices=("val", "train"), default="val",
                   help="images to evaluate (default val, the paper's test set)")
    p.add_argument("--holdout", type=int, metavar="N",
                   help="training images for threshold selection: the last N of each class (file "
                        "order; train.py does not exclude them from training); for --split train "
                        "and --threshold-from-train")
    p.add_argument("--threshold-from-train", action="store_true",
                   help="choose --cam-threshold by the best GT-known Loc over the --holdout training "
                        "images, then evaluate --split with it")
    p.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N images (quick checks)")
    p.add_argument("--batch", type=int, default=128, help="forward-pass batch size (default 128)")
    p.add_argument("--cam-threshold", type=float, default=CAM_THRESHOLD,
                   help="box threshold as a fraction of the CAM maximum (default 0.2, the authors')")
    p.add_argument("--box-rule", choices=BOX_RULES, default="authors",
                   help="authors: largest bounding rectangle, [x, y, x+w, y+h] (default); "
                        "wsol: largest contour, clipped to the image (wsolevaluation)")
    p.add_argument("--iou-threshold", type=float, default=IOU_THRESHOLD, help="default 0.5")
    p.add_argument("--iou-strict", action="store_true",
                   help="count IoU > threshold (the authors' code) instead of >= (facts.md, wsolevaluation)")
    p.add_argument("--json", metavar="FILE", help="write summary, settings and per-image records")
    p.add_argument("--save-cams", metavar="FILE.npz",
                   help="write raw ground-truth class CAMs, logits, labels, FC bias, file names")
    p.add_argument("--vis", metavar="DIR", help="write the paper's Figure 2 for --vis-count images")
    p.add_argument("--vis-count", type=int, default=8, help="images for --vis (default 8)")
    p.add_argument("--vis-scale", type=int, default=4, help="pixel upscale of the pictures (default 4)")
    p.add_argument("--threshold-sweep", nargs="?", const="threshold_sweep", metavar="PREFIX",
                   help="accuracy at every threshold; writes PREFIX.json and PREFIX.png "
                        "(default prefix threshold_sweep)")
    p.add_argument("--sweep-step", type=float, default=SWEEP_STEP, help="sweep step (default 0.01)")
    g = p.add_argument_group("model, only for a checkpoint without settings.json",
                             "classes and image size then come from --data, the input normalisation "
                             "from its training split (mean and std per channel, as train.py)")
    g.add_argument("--depth", type=int, help="18 or 34")
    g.add_argument("--width-mult", type=float, help="width multiplier (default 1.0)")
    g.add_argument("--final-stride", type=int, help="4 (the paper's, default) or 8")
    return p.parse_args(argv)


def validate(args):
    """All checks that need no data and no TensorFlow, so that bad flags fail before any work."""
    if not 0.0 <= args.cam_threshold <= 1.0:
        raise UserError(f"--cam-threshold must be in [0, 1], got {args.cam_threshold}")
    if not 0.0 < args.iou_threshold <= 1.0:
        raise UserError(f"--iou-threshold must be in (0, 1], got {args.iou_threshold}")
    for flag, value in (("--batch", args.batch), ("--vis-count", args.vis_count),
                        ("--vis-scale", args.vis_scale), ("--limit", args.limit), ("--holdout", args.holdout)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    try:
        threshold_grid(args.sweep_step)
    except ValueError as e:
        raise UserError(f"--sweep-step: {e}") from None
    if args.threshold_from_train and args.holdout is None:
        raise UserError("--threshold-from-train needs --holdout N (held-out training images per class)")
    if args.threshold_from_train and args.split == "train":
        raise UserError("--threshold-from-train chooses on training images; evaluate --split val")
    if args.holdout is not None and args.split != "train" and not args.threshold_from_train:
        raise UserError("--holdout applies to --split train or --threshold-from-train")
    if not os.path.isdir(args.data):
        raise UserError(f"--data {args.data}: no such directory")
    outputs = [("--json", args.json), ("--save-cams", args.save_cams)]
    if args.threshold_sweep:
        outputs += [("--threshold-sweep", args.threshold_sweep + ".json"),
                    ("--threshold-sweep", args.threshold_sweep + ".png")]
    for flag, path in outputs:
        problem = path and fileio.check_writable(path, flag)
        if problem:
            raise UserError(problem)
    if args.vis:
        try:
            os.makedirs(args.vis, exist_ok=True)
        except OSError as e:
            raise UserError(f"--vis {args.vis}: cannot create the folder ({e.strerror})") from None
        if not os.access(args.vis, os.W_OK):
            raise UserError(f"--vis {args.vis}: folder is not writable")


def model_settings(args, prefix, data_split, load_train):
    """Model kwargs for ``CAMModel``: settings.json beside the checkpoint, else the flags + the data."""
    settings, path = load_run_settings(prefix)
    flags = {"depth": args.depth, "width_mult": args.width_mult, "final_stride": args.final_stride}
    if settings is not None:
        model = dict(settings["model"])
        for name, value in flags.items():
            if value is not None and model.get(name) != value:
                raise UserError(f"--{name.replace('_', '-')} {value} contradicts {path} ({name} {model.get(name)})")
        return model, path
    if args.depth is None:
        raise UserError(f"{path} does not exist: pass --depth (and --width-mult, --final-stride if not "
                        f"1.0 and 4) to rebuild the network")
    train = load_train()   # normalisation as train.py: mean and std of the training split
    model = {"depth": args.depth, "num_classes": data_split.num_classes,
             "image_shape": list(data_split.image_shape), "width_mult": args.width_mult or 1.0,
             "final_stride": args.final_stride or 4,
             "mean_bgr": train.mean_bgr().tolist(), "std_bgr": train.std_bgr().tolist()}
    return model, "flags"


def check_compatible(model, prefix, split, data):
    stored = checkpoint_fc_classes(prefix)
    if stored is not None and stored != model["num_classes"]:
        raise UserError(f"{prefix}: its FC layer has {stored} classes, but its settings say "
                        f"{model['num_classes']}")
    if model["num_classes"] != split.num_classes:
        raise UserError(f"{prefix} was trained for {model['num_classes']} classes, but {data} has "
                        f"{split.num_classes} classes (wnids.txt)")
    if tuple(model["image_shape"]) != tuple(split.image_shape):
        raise UserError(f"{prefix} was trained on {model['image_shape'][0]}x{model['image_shape'][1]} (HxW) "
                        f"images, but {data} has {split.image_shape[0]}x{split.image_shape[1]}")


def holdout_indices(labels, per_class):
    """Indices of the last ``per_class`` images of each class (file order), sorted."""
    picked = [np.flatnonzero(labels == c)[-per_class:] for c in np.unique(labels)]
    return np.sort(np.concatenate(picked))


def progress_bar(desc, total):
    from tensorpack.utils.utils import get_tqdm
    bar = get_tqdm(total=total, desc=desc, file=sys.stderr)
    return bar, lambda done, _: bar.update(done - bar.n)


def run(predictor, images, labels, boxes, desc, args, **kwargs):
    from evaluation.runner import evaluate_images
    bar, update = progress_bar(desc, len(images))
    with bar:
        return evaluate_images(predictor, images, labels, boxes, batch_size=args.batch,
                               box_rule=args.box_rule, iou_threshold=args.iou_threshold,
                               iou_strict=args.iou_strict, progress=update, **kwargs)


def print_report(summary, settings, timing, count, sweep):
    from tabulate import tabulate
    print(tabulate([(METRIC_TITLES[m], summary[m]) for m in METRICS],
                   headers=("metric", "%"), tablefmt="github", floatfmt=".2f"))
    print(f"{count} {settings['split']} images, box rule {settings['box_rule']}, CAM threshold "
          f"{settings['cam_threshold']:g}, IoU {settings['iou_rule']['compare']} {settings['iou_rule']['threshold']:g}")
    forward = timing["forward"]
    print(f"forward {count / forward:.1f} img/s; CAM + box post-processing {timing['postprocess']:.2f} s "
          f"= {100 * timing['postprocess'] / forward:.1f}% of the forward pass")
    if sweep is not None:
        best = sweep["best"]
        print(f"threshold sweep: MaxBoxAcc {best['max_box_acc']:.2f} at threshold {best['threshold']:g} "
              f"(Top-1 Loc {best['top1_loc']:.2f}); sweep took {timing['sweep']:.1f} s")


def write_vis(folder, split, indices, positions, result, scale):
    """Figure 2 for the images at ``positions`` of the evaluated list (``indices[j]`` in the split)."""
    panels = []
    for j in positions:
        i = int(indices[j])
        name = os.path.splitext(os.path.basename(split.files[i]))[0]
        caption = (f"{name} gt {split.wnids[split.labels[i]]} top1 {split.wnids[result['top5'][j][0]]} "
                   f"IoU {result['ious'][j]:.2f}")
        panel = vis.figure_panels(split.images[i], result["maps"][j], split.boxes[i],
                                  result["pred_boxes"][j], scale=scale, caption=caption)
        fileio.write_png(os.path.join(folder, f"{i:05d}_{name}.png"), panel)
        panels.append(panel)
    fileio.write_png(os.path.join(folder, "grid.png"), vis.grid(panels))


def main(argv=None):
    args = parse_args(argv)
    validate(args)
    prefix = resolve_checkpoint(args.load)

    from dataflow import load_split
    cache = {}

    def load(name):
        if name not in cache:
            cache[name] = load_split(args.data, name)
        return cache[name]

    split = load(args.split)
    model, model_source = model_settings(args, prefix, split, lambda: load("train"))
    check_compatible(model, prefix, split, args.data)
    indices = np.arange(len(split))
    if args.split == "train" and args.holdout:
        indices = holdout_indices(split.labels, args.holdout)
    if args.limit:
        indices = indices[:args.limit]

    from evaluation.runner import build_predictor
    predictor = build_predictor(model, prefix)
    cam_threshold, selection = args.cam_threshold, None
    if args.threshold_from_train:
        train = load("train")
        held = holdout_indices(train.labels, args.holdout)
        chosen = run(predictor, train.images[held], train.labels[held], train.boxes[held],
                     "choosing the threshold", args, sweep_thresholds=threshold_grid(args.sweep_step))
        selection = {"holdout_per_class": args.holdout, "num_images": len(held), **chosen["sweep"]["best"]}
        cam_threshold = selection["threshold"]
        print(f"threshold {cam_threshold:g} chosen on {len(held)} held-out training images "
              f"(GT-known Loc {selection['max_box_acc']:.2f} there)")

    vis_at = []
    if args.vis:
        vis_at = np.unique(np.linspace(0, len(indices) - 1, min(args.vis_count, len(indices))).round().astype(int))
    sweep_grid = threshold_grid(args.sweep_step) if args.threshold_sweep else None
    result = run(predictor, split.images[indices], split.labels[indices], split.boxes[indices],
                 f"evaluating {args.split}", args, cam_threshold=cam_threshold,
                 sweep_thresholds=sweep_grid, keep_maps_for=vis_at)

    settings = {
        "checkpoint": prefix, "model_settings": model_source, "data": os.path.abspath(args.data),
        "split": args.split, "holdout_per_class": args.holdout if args.split == "train" else None,
        "num_images": len(indices), "depth": model["depth"], "width_mult": model["width_mult"],
        "final_stride": model["final_stride"], "num_classes": model["num_classes"],
        "image_shape": list(model["image_shape"]), "cam_threshold": cam_threshold,
        "threshold_selection": selection, "box_rule": args.box_rule,
        "iou_rule": {"convention": "inclusive pixels", "compare": ">" if args.iou_strict else ">=",
                     "threshold": args.iou_threshold},
    }
    files = [split.files[i] for i in indices]
    print_report(result["summary"], settings, result["timing"], len(indices), result["sweep"])
    if args.json:
        records = [{"file": files[j], "label": int(split.labels[i]), "top5": result["top5"][j].tolist(),
                    "gt_box": split.boxes[i].tolist(), "pred_box": result["pred_boxes"][j].tolist(),
                    "iou": float(result["ious"][j])} for j, i in enumerate(indices)]
        fileio.write_json(args.json, {"summary": result["summary"], "settings": settings,
                                      "sweep": result["sweep"], "records": records})
    if args.save_cams:
        fileio.write_npz(args.save_cams, cams=result["cams"], logits=result["logits"].astype(np.float32),
                         labels=split.labels[indices].astype(np.int32), fc_bias=result["fc_bias"],
                         files=np.array(files), gt_boxes=split.boxes[indices].astype(np.int32))
    if args.threshold_sweep:
        sweep = dict(result["sweep"], settings=settings)
        fileio.write_json(args.threshold_sweep + ".json", sweep)
        marks = [(cam_threshold, f"used {cam_threshold:g}"), (sweep["best"]["threshold"], "best")]
        fileio.write_png(args.threshold_sweep + ".png", vis.plot_sweep(sweep, marks))
    if args.vis:
        write_vis(args.vis, split, indices, vis_at, result, args.vis_scale)
    return 0


if __name__ == "__main__":
    run_main(main)
