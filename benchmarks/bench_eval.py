"""Evaluation speed: forward pass, CAM + box post-processing, threshold sweep (img/s and shares).

    python -m benchmarks.bench_eval                      # ResNet-18, the paper's 64x64, 200 classes
    python -m benchmarks.bench_eval --depth 34 --images 512 --batch 128
    python -m benchmarks.bench_eval --box-rule wsol --sweep-step 0.01

The network has random weights (no checkpoint needed) and the images are
random, so the accuracy is meaningless; the timing is the one evaluate.py
prints for a real run: ``forward`` is the predictor call (features, FC
weights, logits), ``post-processing`` is CAM + bilinear resize + min-max
normalisation + box + IoU + top-5 for every image, and the sweep is the box
at every threshold of the grid.  One warm-up batch is excluded.
"""
import argparse
import time

import numpy as np

import tf_env  # noqa: F401
from cam import BOX_RULES, threshold_grid
from evaluation.runner import build_predictor, evaluate_images

# Tiny ImageNet (facts.md): 64x64 images, 200 classes; the paper's network has total stride 4
DEFAULTS = dict(image_size=64, classes=200, final_stride=4)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=18)
    p.add_argument("--width-mult", type=float, default=1.0)
    p.add_argument("--images", type=int, default=256, help="timed images (after one warm-up batch)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--image-size", type=int, default=DEFAULTS["image_size"])
    p.add_argument("--classes", type=int, default=DEFAULTS["classes"])
    p.add_argument("--final-stride", type=int, default=DEFAULTS["final_stride"])
    p.add_argument("--box-rule", choices=BOX_RULES, default="authors")
    p.add_argument("--sweep-step", type=float, default=0.01)
    args = p.parse_args(argv)

    size = args.image_size
    model = {"depth": args.depth, "num_classes": args.classes, "image_shape": [size, size],
             "width_mult": args.width_mult, "final_stride": args.final_stride,
             "mean_bgr": [104.0, 114.0, 122.0], "std_bgr": [58.0, 57.0, 58.0]}   # ~ImageNet pixel stats
    predictor = build_predictor(model, None)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(args.images, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, args.classes, size=args.images)
    corner = rng.integers(0, size // 2, size=(args.images, 2))
    boxes = np.concatenate([corner, corner + size // 2 - 1], axis=1)
    evaluate_images(predictor, images[:args.batch], labels[:args.batch], boxes[:args.batch],
                    batch_size=args.batch)                                        # warm-up

    tick = time.perf_counter()
    plain = evaluate_images(predictor, images, labels, boxes, batch_size=args.batch, box_rule=args.box_rule)
    wall = time.perf_counter() - tick
    swept = evaluate_images(predictor, images, labels, boxes, batch_size=args.batch, box_rule=args.box_rule,
                            sweep_thresholds=threshold_grid(args.sweep_step))
    t = plain["timing"]
    n = args.images
    steps = len(threshold_grid(args.sweep_step))
    h, w = plain["cams"].shape[1:]
    print(f"ResNet-{args.depth} x{args.width_mult:g}, {size}x{size} images, {args.classes} classes, "
          f"{h}x{w} CAMs, batch {args.batch}, {n} images, box rule {args.box_rule}")
    print(f"forward            {n / t['forward']:8.1f} img/s  ({1e3 * t['forward'] / n:.2f} ms/img)")
    print(f"post-processing    {n / t['postprocess']:8.1f} img/s  ({1e6 * t['postprocess'] / n:.0f} us/img) "
          f"= {100 * t['postprocess'] / t['forward']:.1f}% of the forward pass")
    print(f"evaluation overall {n / wall:8.1f} img/s  (forward + post-processing, one thread)")
    print(f"threshold sweep    {1e3 * swept['timing']['sweep'] / n:.2f} ms/img for {steps} thresholds "
          f"= {100 * swept['timing']['sweep'] / swept['timing']['forward']:.0f}% of the forward pass")


if __name__ == "__main__":
    main()
