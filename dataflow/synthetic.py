"""Generate a small dataset in the exact Tiny ImageNet layout (numpy + OpenCV, no TensorFlow).

Examples::

    python -m dataflow.synthetic demo_data --classes 6 --train-per-class 250 --val-per-class 50 --height 48 --width 48
    python -m dataflow.synthetic /tmp/tiny --classes 4 --train-per-class 12 --val-per-class 4 --height 32 --width 40

Every image shows one object on a cluttered, noisy background.  The object is
a striped ellipse (the "body") with a small "head" at one end.  The head's
saturated colour and its shape tell the class; the body's weaker, jittered tint
tells it too, less reliably.  The annotated box covers the whole object, head
and body, clipped to the image.  Since the head suffices, a CAM tends to light
up the head alone and its box misses the body: the "most discriminative part"
problem that Hide-and-Seek and GoogLeNet Resize address (paper sec. 1).

Objects are placed and scaled at random (version 4; version 5 names the classes in words.txt): the length is
log-uniform in ``OBJECT_LENGTH`` of the image's short side, any rotation, and
the centre anywhere that leaves at most ``OUTSIDE`` of the object's width
and height outside the image (the head may be cut off), so that no constant box fits many objects (the
best fixed box is a baseline of every table; docs/claims.md).  Version 3 kept
every object inside the image with lengths 0.45-0.9, where one central box fit
about a quarter of them.  What a network learns from these images is measured
in docs/measurements.md, not here.  A rerun of the same training command on the
same machine is bit-identical (docs/reproducibility.md).

Layout written under OUT (Tiny ImageNet's, README "Tiny ImageNet")::

    wnids.txt                              one wnid a line (n00000000, n00000001, ...)
    words.txt                              wnid<TAB>description, plus a few unrelated lines
    train/<wnid>/images/<wnid>_<i>.JPEG
    train/<wnid>/<wnid>_boxes.txt          file<TAB>x0<TAB>y0<TAB>x1<TAB>y1
    val/images/val_<i>.JPEG                classes interleaved at random
    val/val_annotations.txt                file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1
    test/images/test_<i>.JPEG              unlabelled, as in the real dataset
    synthetic.json                         the settings, written last

Boxes are int pixel indices ``[x0, y0, x1, y1]``, max inclusive, the tight
box of the object's pixels.  One image in ``GRAY_EVERY`` of each split is
written as a single-channel JPEG, as some real ones are.  The output is a
function of the arguments only (one seeded ``numpy.random.Generator``).
"""

import argparse
import json
import os
import signal
import sys

import cv2
import numpy as np

import argtypes
import fileio
from dataflow import DataError
from errors import raise_interrupt, run_main

# bump when the output changes, so an old output is not taken as current (5: class names)
GENERATOR_VERSION = 5
HEAD_SHAPES = ("disc", "ring", "square", "triangle", "plus", "diamond")
# Names of hues 0, 30, ... 330 degrees (OpenCV hue 0, 15, ... 165), for words.txt's class names.
HUE_NAMES = (
    "red",
    "orange",
    "yellow",
    "lime",
    "green",
    "teal",
    "cyan",
    "azure",
    "blue",
    "violet",
    "magenta",
    "pink",
)
# Some real Tiny ImageNet JPEGs are grayscale (about 2%); more here so that tiny sets have some.
GRAY_EVERY = 16
JPEG_QUALITY = 95  # high, so that JPEG blur does not move the object's edges
# object extent along its axis, fraction of min(H, W), drawn log-uniformly
OBJECT_LENGTH = (0.4, 0.9)
BODY_ASPECT = (0.45, 0.6)  # body semi-minor / semi-major axis
HEAD_RADIUS = (0.38, 0.48)  # head radius / body semi-major axis
# The body's class cue, tuned so that it is weaker than the head's (module docstring):
BODY_SATURATION = 150  # saturation of the body's tint; the head's colour has 255 (v2 had 90)
BODY_HUE_JITTER = 0.6  # body hue = class hue +- this many hue steps between classes
OUTSIDE = 0.3  # fraction of the object box that may lie outside the image, each side
HEAD_OFFSET = 0.25  # head centre sits at a + HEAD_OFFSET * r from the body centre
MIN_SIZE = 16  # smallest image side on which body and head stay visible
MAX_SIZE = 4096  # ours: 64 times Tiny ImageNet's 64; --height 100000 failed inside OpenCV
MARKER = "synthetic.json"  # the settings, written last: marks a complete dataset
UNRELATED_WORDS = (  # words.txt covers all of WordNet in the real dataset, not only the classes
    ("n90000001", "entity"),
    ("n90000002", "physical entity"),
    ("n90000003", "abstraction, abstract entity"),
)


def wnid_of(k):
    """The wnid of class ``k``: ``n`` and 8 digits, like the real ones."""
    return f"n{k:08d}"


def _hsv_to_bgr(hue, sat, val):
    """BGR float32 (3,) of an OpenCV HSV colour (hue in degrees / 2, wrapped to [0, 180))."""
    hsv = np.uint8([[[int(round(hue)) % 180, int(round(sat)), int(round(val))]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def class_name(k, num_classes):
    """``"red disc"``: the nearest hue name and the head shape of class ``k`` (words.txt, captions)."""
    hue = 180.0 * k / num_classes  # OpenCV hue, as head_look
    return (
        f"{HUE_NAMES[int(round(hue / 15.0)) % len(HUE_NAMES)]} {HEAD_SHAPES[k % len(HEAD_SHAPES)]}"
    )


def head_look(k, num_classes):
    """(BGR colour as 3 floats, shape name) of class ``k``'s head: hues evenly spread, shapes cycled."""
    hue = int(round(180.0 * k / num_classes)) % 180  # OpenCV hue range is [0, 180)
    bgr = cv2.cvtColor(np.uint8([[[hue, 255, 230]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return bgr.astype(np.float32), HEAD_SHAPES[k % len(HEAD_SHAPES)]


def _head_mask(shape, hu, hv, r):
    """Boolean mask of a head of radius ``r`` in its own frame (``hu`` points away from the body)."""
    au, av = np.abs(hu), np.abs(hv)
    if shape == "disc":
        return hu**2 + hv**2 <= r**2
    if shape == "ring":
        rho2 = hu**2 + hv**2
        return (rho2 <= r**2) & (rho2 >= (0.45 * r) ** 2)
    if shape == "square":
        return np.maximum(au, av) <= 0.7 * r
    if shape == "triangle":  # points outward
        return (hu >= -0.6 * r) & (hu <= r) & (av <= 0.6 * (r - hu))
    if shape == "plus":
        return ((au <= 0.35 * r) & (av <= r)) | ((av <= 0.35 * r) & (au <= r))
    if shape == "diamond":
        return au + av <= r
    raise ValueError(f"unknown head shape {shape!r}")


def _background(rng, height, width):
    """Float32 (H, W, 3) BGR: a smooth low-saturation colour field with grey lines and rectangles."""
    grey = rng.uniform(60, 200, size=(3, 3, 1))
    field = (grey + rng.uniform(-20, 20, size=(3, 3, 3))).astype(np.float32)
    img = cv2.resize(field, (width, height), interpolation=cv2.INTER_CUBIC)  # cv2 takes (W, H)
    for _ in range(rng.integers(3, 7)):
        colour = tuple(float(c) for c in rng.uniform(40, 220) + rng.uniform(-15, 15, size=3))
        p0 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.5:
            cv2.line(img, p0, p1, colour, int(rng.integers(1, 3)))
        else:
            cv2.rectangle(img, p0, p1, colour, int(rng.choice([-1, 1])))
    return img


def render(rng, label, num_classes, height, width):
    """One image of class ``label``: (uint8 (H, W, 3) BGR, int box [x0, y0, x1, y1] inclusive)."""
    img = _background(rng, height, width)
    a = np.exp(rng.uniform(*np.log(OBJECT_LENGTH))) * min(
        height, width
    )  # log-uniform length, then the semi-major axis:
    r_frac = rng.uniform(*HEAD_RADIUS)
    a /= 2 + (HEAD_OFFSET + 1) * r_frac  # length = 2a + (offset + 1) r
    b, r = a * rng.uniform(*BODY_ASPECT), max(1.5, a * r_frac)
    d = a + HEAD_OFFSET * r
    theta = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(theta), np.sin(theta)
    # Half-extents of the body ellipse and of the head (within 1.1 r whatever its shape), around the centre.
    ex, ey = np.hypot(a * c, b * s), np.hypot(a * s, b * c)
    lo_x, hi_x = min(-ex, d * c - 1.1 * r), max(ex, d * c + 1.1 * r)
    lo_y, hi_y = min(-ey, d * s - 1.1 * r), max(ey, d * s + 1.1 * r)
    # The centre anywhere that keeps the object's box inside, widened by OUTSIDE of the box each side.
    mx, my = OUTSIDE * (hi_x - lo_x), OUTSIDE * (hi_y - lo_y)
    cx = rng.uniform(-lo_x - mx, max(-lo_x, width - 1 - hi_x) + mx)
    cy = rng.uniform(-lo_y - my, max(-lo_y, height - 1 - hi_y) + my)

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u = (xx - cx) * c + (yy - cy) * s  # along the body axis, towards the head
    v = -(xx - cx) * s + (yy - cy) * c
    body = (u / a) ** 2 + (v / b) ** 2 <= 1
    colour, shape = head_look(label, num_classes)
    head = _head_mask(shape, u - d, v, r)

    # Stripes across the axis, tinted faintly with a jittered class hue: a weak cue beside the head.
    stripes = (np.floor(u / max(1.5, a / 3)) % 2)[..., None]
    hue = 180.0 * (label + rng.uniform(-BODY_HUE_JITTER, BODY_HUE_JITTER)) / num_classes
    light, dark = (_hsv_to_bgr(hue, BODY_SATURATION, v) for v in (200, 110))
    texture = rng.uniform(-25, 25) + np.where(stripes > 0, light, dark)
    img = np.where(body[..., None], texture, img)
    img = np.where(head[..., None], colour, img)
    img += rng.normal(0, 8, size=img.shape)
    ys, xs = np.nonzero(body | head)
    box = [int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())]
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), box


def _write_jpeg(path, img, gray):
    if gray:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    ok, buf = cv2.imencode(".JPEG", img, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise DataError(f"{path}: could not encode JPEG")
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def _write_lines(path, lines):
    with open(path, "w") as f:
        f.writelines(line + "\n" for line in lines)


def _check_settings(out, settings):
    """Return True if ``out`` already holds this exact dataset; raise if it holds anything else."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise DataError(f"{out}: exists and is not a directory")
    if not os.path.exists(out) or not set(os.listdir(out)) - {".cache"}:
        return False
    marker = os.path.join(out, MARKER)
    if os.path.isfile(marker):
        with open(marker) as f:
            try:
                if json.load(f) == settings:
                    return True
            except json.JSONDecodeError:
                pass
    raise DataError(
        f"{out}: not empty and not a synthetic dataset with these settings (no {MARKER} with them: "
        "if an interrupted generation of an older version left it, remove it); give a new or empty directory"
    )


def generate(out, classes=4, train_per_class=20, val_per_class=5, seed=0, height=64, width=64):
    """Write a synthetic Tiny ImageNet under ``out`` and return ``out``.

    ``classes`` classes, ``train_per_class`` training and ``val_per_class``
    validation images per class (and as many unlabelled test images as
    validation ones), each ``height`` x ``width``.  If ``out`` already holds
    the output of the same settings, nothing is written.  Written into a hidden folder beside
    ``out`` and renamed when complete (``fileio.write_folder``): an interrupted generation
    leaves no half dataset, and two at once both succeed.
    """
    for name, value, least, most in (
        ("classes", classes, 1, np.inf),
        ("train_per_class", train_per_class, 1, np.inf),
        ("val_per_class", val_per_class, 1, np.inf),
        ("height", height, MIN_SIZE, MAX_SIZE),
        ("width", width, MIN_SIZE, MAX_SIZE),
    ):
        if int(value) != value or not least <= value <= most:
            raise DataError(
                f"synthetic dataset: {name} must be an integer >= {least}"
                + ("" if most == np.inf else f" and <= {most}")
                + f", got {value}"
            )
    settings = dict(
        generator_version=GENERATOR_VERSION,
        classes=classes,
        train_per_class=train_per_class,
        val_per_class=val_per_class,
        seed=seed,
        height=height,
        width=width,
    )
    out = os.fspath(out)
    if _check_settings(out, settings):
        return out
    fileio.write_folder(
        out,
        lambda tmp: _write_all(tmp, settings),
        lambda: _check_settings(out, settings),
        last=MARKER,
    )
    return out


def _write_all(out, settings):
    """Write the dataset of ``settings`` (generate's arguments) into the new folder ``out``."""
    classes, train_per_class, val_per_class, seed, height, width = (
        settings[k]
        for k in ("classes", "train_per_class", "val_per_class", "seed", "height", "width")
    )
    rng = np.random.default_rng(seed)
    wnids = [wnid_of(k) for k in range(classes)]
    _write_lines(os.path.join(out, "wnids.txt"), wnids)
    words = [
        f"{w}\t{class_name(k, classes)}, synthetic, hue {k}/{classes}" for k, w in enumerate(wnids)
    ]
    _write_lines(os.path.join(out, "words.txt"), words + [f"{w}\t{d}" for w, d in UNRELATED_WORDS])

    count = 0
    for k, wnid in enumerate(wnids):
        folder = os.path.join(out, "train", wnid)
        os.makedirs(os.path.join(folder, "images"))
        lines = []
        for i in range(train_per_class):
            img, box = render(rng, k, classes, height, width)
            name = f"{wnid}_{i}.JPEG"
            _write_jpeg(
                os.path.join(folder, "images", name), img, count % GRAY_EVERY == GRAY_EVERY - 1
            )
            lines.append("\t".join([name] + [str(x) for x in box]))
            count += 1
        _write_lines(os.path.join(folder, f"{wnid}_boxes.txt"), lines)

    os.makedirs(os.path.join(out, "val", "images"))
    os.makedirs(os.path.join(out, "test", "images"))
    val_labels = rng.permutation(np.repeat(np.arange(classes), val_per_class))
    lines = []
    for i, k in enumerate(val_labels):
        img, box = render(rng, int(k), classes, height, width)
        name = f"val_{i}.JPEG"
        _write_jpeg(os.path.join(out, "val", "images", name), img, i % GRAY_EVERY == GRAY_EVERY - 1)
        lines.append("\t".join([name, wnids[k]] + [str(x) for x in box]))
        img, _ = render(rng, int(rng.integers(classes)), classes, height, width)
        _write_jpeg(
            os.path.join(out, "test", "images", f"test_{i}.JPEG"),
            img,
            i % GRAY_EVERY == GRAY_EVERY - 1,
        )
    _write_lines(os.path.join(out, "val", "val_annotations.txt"), lines)

    with open(os.path.join(out, MARKER), "w") as f:  # last: marks a complete dataset
        json.dump(settings, f, indent=1)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("out", type=argtypes.writable_dir(), help="output directory (new or empty)")
    p.add_argument(
        "--classes", type=argtypes.positive_int, default=4, help="number of classes (default 4)"
    )
    p.add_argument(
        "--train-per-class",
        type=argtypes.positive_int,
        default=20,
        help="training images per class (default 20)",
    )
    p.add_argument(
        "--val-per-class",
        type=argtypes.positive_int,
        default=5,
        help="validation images per class (default 5)",
    )
    p.add_argument(
        "--seed", type=argtypes.nonnegative_int, default=0, help="random seed (default 0)"
    )
    p.add_argument(
        "--height",
        type=argtypes.int_in(MIN_SIZE, MAX_SIZE),
        default=64,
        help="image height (default 64, as Tiny ImageNet)",
    )
    p.add_argument(
        "--width",
        type=argtypes.int_in(MIN_SIZE, MAX_SIZE),
        default=64,
        help="image width (default 64, as Tiny ImageNet)",
    )
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    signal.signal(
        signal.SIGTERM, raise_interrupt
    )  # a kill ends as Ctrl-C does: the partial folder is removed
    try:
        generate(
            args.out,
            classes=args.classes,
            train_per_class=args.train_per_class,
            val_per_class=args.val_per_class,
            seed=args.seed,
            height=args.height,
            width=args.width,
        )
    except KeyboardInterrupt:
        print(
            f"interrupted: nothing was written to {args.out}; run the same command again",
            file=sys.stderr,
        )
        return 130
    print(
        f"{args.out}: {args.classes} classes, {args.classes * args.train_per_class} train and "
        f"{args.classes * args.val_per_class} val images of {args.height}x{args.width}"
    )


if __name__ == "__main__":
    sys.exit(run_main(main))
