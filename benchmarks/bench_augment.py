"""Per-image cost of each augmentation method, one thread, on random uint8 BGR images.

Examples::

    python -m benchmarks.bench_augment
    python -m benchmarks.bench_augment --height 64 --width 64 --count 20000

Prints microseconds per image and images per second for ``augmentors_for(m)``
(one tensorpack ``AugmentorList``) applied with ``.augment(img)``, as the
training DataFlow does (this excludes JPEG decoding, batching and the flow);
"+sn" rows add SN-ResNet's colour jitter and flip.  Hide-and-Seek fills with
the pool's mean.  The image pool is drawn once; timings are wall-clock and
vary with machine load.
"""

import argparse
import time

import numpy as np

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
from augment.methods import augmentors_for, seed_augmentors
from augment.registry import names
from errors import UserError, run_main


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--height", type=int, default=64, help="image height (Tiny ImageNet: 64)")
    p.add_argument("--width", type=int, default=64, help="image width (Tiny ImageNet: 64)")
    p.add_argument("--count", type=int, default=20000, help="images per method")
    p.add_argument("--methods", nargs="+", default=list(names()), choices=names())
    return p.parse_args(argv)


def per_image_seconds(augs, images, count):
    """Seconds per image of ``augs.augment`` on ``count`` images cycled from ``images``."""
    n = len(images)
    start = time.perf_counter()
    for i in range(count):
        augs.augment(images[i % n])
    return (time.perf_counter() - start) / count


def main(argv=None):
    args = parse_args(argv)
    if args.height < 1 or args.width < 1 or args.count < 1:
        raise UserError("--height, --width and --count must be positive")
    images = (
        np.random.RandomState(0).randint(0, 256, (256, args.height, args.width, 3)).astype(np.uint8)
    )
    print(f"{args.height}x{args.width} uint8 BGR, {args.count} images per method, one thread")
    fill = images.reshape(-1, 3).mean(0)
    for m in args.methods:
        for sn in (False, True):
            augs = seed_augmentors(augmentors_for(m, fill, flip=sn, jitter=sn), 0)
            per_image_seconds(augs, images, min(args.count, 500))  # warm-up
            t = per_image_seconds(augs, images, args.count)
            print(f"{m + (' +sn' if sn else ''):>16}: {t * 1e6:7.1f} us/img  {1 / t:9.0f} img/s")


if __name__ == "__main__":
    run_main(main)
