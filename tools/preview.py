"""Write a PNG grid of augmented training images, like the paper's Figure 1.

Examples::

    python -m dataflow.synthetic /tmp/tiny --classes 4 --train-per-class 12 --val-per-class 4 --seed 0
    python -m tools.preview --data /tmp/tiny --method gr --out grid.png
    python -m tools.preview --data /tmp/tiny --method all --out all.png --count 4 --seed 1
    python -m tools.preview --data tiny-imagenet-200 --method hns --out hns.png --draws 6 --scale 3
    python -m tools.preview --data tiny-imagenet-200 --method gr --jitter --flip --out gr-sn.png

Rows are randomly chosen images of the split (``--count`` of them, ``--seed``).
With one method the columns are the original and ``--draws`` independent
augmentations of it; with ``--method all`` they are the original (what ``cam``
trains on) and one draw of each other method.  The augmentors are the
training flow's (``dataflow.builders.train_augmentors``: Hide-and-Seek fills
with the split's BGR mean; ``--jitter`` and ``--flip`` add SN-ResNet's colour
jitter and horizontal flip after the method).  Images are
enlarged ``--scale`` times with nearest-neighbour so that single pixels and
grid cells stay visible.
"""

import argparse

import cv2
import numpy as np

import tf_env  # noqa: F401  (before tensorpack: see tf_env.py)
import argtypes
import fileio
from augment.methods import seed_augmentors
from augment.registry import names
from dataflow.builders import train_augmentors
from errors import UserError, run_main

GAP = 4  # pixels between cells
HEADER = 22  # pixels of the label row
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="python -m tools.preview", description=__doc__.split("\n")[0], allow_abbrev=False
    )
    p.add_argument(
        "--data",
        required=True,
        type=argtypes.data_root,
        help="dataset root in the Tiny ImageNet layout",
    )
    p.add_argument(
        "--method",
        default="all",
        choices=(*names(), "all"),
        help="augmentation to show, or 'all' for one column per method (default: all)",
    )
    p.add_argument("--out", required=True, type=argtypes.writable_file, help="PNG file to write")
    p.add_argument(
        "--count", type=argtypes.positive_int, default=6, help="rows: number of images (default 6)"
    )
    p.add_argument(
        "--draws",
        type=argtypes.positive_int,
        default=5,
        help="augmented columns for one method (default 5)",
    )
    p.add_argument("--seed", type=int, default=0, help="picks the images and seeds the augmentors")
    p.add_argument(
        "--split", default="train", choices=("train", "val"), help="split to sample (default train)"
    )
    p.add_argument(
        "--scale",
        type=argtypes.int_in(1, 32),
        default=2,
        help="nearest-neighbour enlargement (default 2)",
    )
    p.add_argument(
        "--flip", action="store_true", help="add the training flow's random horizontal flip"
    )
    p.add_argument(
        "--jitter", action="store_true", help="add the training flow's colour jitter (SN-ResNet)"
    )
    return p.parse_args(argv)


def validate(args):
    """Check what the parser's types do not, before loading anything; UserError with one clear message."""
    if not args.out.lower().endswith(".png"):
        raise UserError(f"--out {args.out}: must end in .png")


def columns(method, draws):
    """``[(label, method_or_None), ...]``: what each column of the grid shows (None = original)."""
    if method == "all":
        return [("original (cam)", None)] + [(m, m) for m in names() if m != "cam"]
    return [("original", None)] + [(f"{method} #{k + 1}", method) for k in range(draws)]


def augmented_rows(split, pick, cols, seed, flip=False, jitter=False):
    """For each image ``split.images[pick]`` (HxWx3 uint8 BGR), its cells (one per column), same shape and dtype."""
    augs = {
        m: seed_augmentors(train_augmentors(split, m, flip=flip, jitter=jitter), seed + i)
        for i, m in enumerate(names())
        if any(m == c for _, c in cols)
    }
    return [
        [img if m is None else augs[m].augment(img) for _, m in cols] for img in split.images[pick]
    ]


def _put_label(canvas, text, x, width):
    """Write ``text`` centred in ``[x, x + width)`` of the header row, shrinking the font to fit."""
    size = 0.45
    (tw, th), _ = cv2.getTextSize(text, FONT, size, 1)
    while tw > width and size > 0.2:
        size -= 0.05
        (tw, th), _ = cv2.getTextSize(text, FONT, size, 1)
    cv2.putText(
        canvas,
        text,
        (x + max(0, (width - tw) // 2), (HEADER + th) // 2),
        FONT,
        size,
        TEXT,
        1,
        cv2.LINE_AA,
    )


def make_grid(rows, labels, scale):
    """Tile ``rows`` (lists of HxWx3 uint8 BGR) under a row of column ``labels``; returns uint8 BGR."""
    h, w = rows[0][0].shape[:2]
    ch, cw = h * scale, w * scale
    ncol = len(labels)
    canvas = np.full(
        (HEADER + len(rows) * (ch + GAP), GAP + ncol * (cw + GAP), 3), BACKGROUND, np.uint8
    )
    for j, text in enumerate(labels):
        _put_label(canvas, text, GAP + j * (cw + GAP), cw)
    for i, row in enumerate(rows):
        y = HEADER + i * (ch + GAP)
        for j, cell in enumerate(row):
            x = GAP + j * (cw + GAP)
            canvas[y : y + ch, x : x + cw] = cv2.resize(
                cell, (cw, ch), interpolation=cv2.INTER_NEAREST
            )
    return canvas


def main(argv=None):
    args = parse_args(argv)
    validate(args)
    from dataflow.tinyimagenet import (
        load_split,
    )  # imported late: a bad flag fails before the loader's imports

    split = load_split(args.data, args.split, progress=False)
    n = len(split.images)
    if n == 0:
        raise UserError(f"--data {args.data}: the {args.split} split has no images")
    pick = np.sort(
        np.random.RandomState(args.seed).choice(n, size=min(args.count, n), replace=False)
    )
    cols = columns(args.method, args.draws)
    rows = augmented_rows(split, pick, cols, args.seed, flip=args.flip, jitter=args.jitter)
    grid = make_grid(rows, [label for label, _ in cols], args.scale)
    fileio.write_png(
        args.out, grid
    )  # a failed write: one message naming the path (fileio.WriteError)
    print(
        f"wrote {args.out}: {len(rows)} images x {len(cols)} columns ({', '.join(ln for ln, _ in cols)})"
    )


if __name__ == "__main__":
    run_main(main)
