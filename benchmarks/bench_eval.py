"""Evaluation speed: forward pass, CAM, each protocol, MaxBoxAccV2, the sweep, the baselines.

    python -m benchmarks.bench_eval                      # ResNet-18, the paper's 64x64, 200 classes
    python -m benchmarks.bench_eval --depth 34 --images 512 --batch 128
    python -m benchmarks.bench_eval --sweep-step 0.01 --train-boxes 100000

The network has random weights (no checkpoint needed) and the images are
random, so the accuracy is meaningless; the timing is the one evaluate.py
prints for a real run: ``forward`` is the predictor call, then per image the
ground-truth class CAM + top-5, each protocol at the summary threshold (its
resize, level map, contours, IoU), MaxBoxAccV2 (100 thresholds, every
contour), and with ``--threshold-sweep`` every protocol at every threshold.
One warm-up batch is excluded.  The fixed-box baseline search is timed on
random boxes the size of Tiny ImageNet's training split.
"""

import argparse
import time

import numpy as np

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
from cam import NAMES, PROTOCOLS, threshold_grid
from cam.baselines import best_fixed_box
from evaluation.runner import build_predictor, evaluate_images, evaluators
from runrecord import ModelSettings

# Tiny ImageNet (its wnids.txt and train/ folders): 64x64 images, 200 classes, 500 training images per
# class; total stride 4 as SN-ResNet codes/train_resnet_tiny.py (docs/sources.md)
DEFAULTS = dict(image_size=64, classes=200, final_stride=4, train_boxes=100_000)


def timed(predictor, images, labels, boxes, thresholds, batch):
    evals = evaluators({name: thresholds for name in NAMES})
    return evaluate_images(predictor, images, labels, boxes, evals, batch_size=batch)["timing"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--depth", type=int, default=18)
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--images", type=int, default=256, help="timed images (after one warm-up batch)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--image-size", type=int, default=DEFAULTS["image_size"])
    p.add_argument("--classes", type=int, default=DEFAULTS["classes"])
    p.add_argument("--final-stride", type=int, default=DEFAULTS["final_stride"])
    p.add_argument("--sweep-step", type=float, default=0.01)
    p.add_argument("--train-boxes", type=int, default=DEFAULTS["train_boxes"])
    args = p.parse_args(argv)

    size = args.image_size
    model = ModelSettings(
        args.depth,
        args.classes,
        [size, size],
        width_mult=args.width_mult,
        final_stride=args.final_stride,
        mean_bgr=[104.0, 114.0, 122.0],
        std_bgr=[58.0, 57.0, 58.0],
    )  # ~ImageNet pixel stats
    predictor = build_predictor(model, None)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, args.classes, size=args.images)
    corner = rng.integers(0, size // 2, size=(args.images, 2))
    boxes = np.concatenate([corner, corner + size // 2 - 1], axis=1)
    timed(
        predictor,
        images[: args.batch],
        labels[: args.batch],
        boxes[: args.batch],
        [0.2],
        args.batch,
    )  # warm-up

    n = args.images
    fixed = timed(predictor, images, labels, boxes, [0.2], args.batch)
    swept = timed(predictor, images, labels, boxes, threshold_grid(args.sweep_step), args.batch)
    forward = fixed["forward"]
    print(
        f"ResNet-{args.depth} x{args.width_mult:g}, {size}x{size} images, {args.classes} classes, "
        f"batch {args.batch}, {n} images"
    )
    print(f"forward              {n / forward:8.1f} img/s  ({1e3 * forward / n:.2f} ms/img)")
    for name in ("cam", *NAMES, "wsol2020"):
        what = "MaxBoxAccV2 (100 thr)" if name == "wsol2020" else name
        print(
            f"{what:21s}{1e6 * fixed[name] / n:8.0f} us/img = {100 * fixed[name] / forward:5.2f}% of the forward pass"
        )
    post = sum(v for k, v in fixed.items() if k != "forward")
    print(
        f"all post-processing  {1e6 * post / n:8.0f} us/img = {100 * post / forward:5.2f}% of the forward pass "
        f"(evaluate.py default: 3 protocols at 0.2 + MaxBoxAccV2)"
    )
    sweep = sum(swept[name] for name in NAMES)
    steps = len(threshold_grid(args.sweep_step))
    print(
        f"--threshold-sweep    {1e6 * sweep / n:8.0f} us/img for 3 protocols x {steps} thresholds "
        f"= {100 * sweep / swept['forward']:5.2f}% of the forward pass"
    )

    corner = rng.integers(0, size // 2, size=(args.train_boxes, 2))
    extent = rng.integers(size // 4, size // 2, size=(args.train_boxes, 2))
    train = np.concatenate([corner, np.minimum(corner + extent, size - 1)], axis=1)
    for name in NAMES:
        tick = time.perf_counter()
        box, hits = best_fixed_box(train, (size, size), PROTOCOLS[name])
        print(
            f"fixed-box search ({name:7s}) {time.perf_counter() - tick:6.1f} s on {args.train_boxes} boxes: "
            f"{box.tolist()} hits {100 * hits / args.train_boxes:.1f}%"
        )


if __name__ == "__main__":
    main()
