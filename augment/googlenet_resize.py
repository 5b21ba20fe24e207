"""GoogLeNet Resize (GR): random-area, random-aspect crop resized back to the input size.

Paper sec. 2: "GR augmentation randomly crops 8-100% of an input image with the
aspect ratio between 0.75 and 1.33, and then resizes the cropped image to the
original input image size."  The procedure here is the **2018 rule** of
tensorpack's ``GoogleNetResize`` (examples/ImageNetModels/imagenet_utils.py,
2018), copied unchanged into SN-ResNet ``codes/utils.py`` (docs/sources.md):

1. up to 10 tries: target area A = U(0.08, 1) * h * w, aspect r = U(0.75, 1.333),
   crop width int(sqrt(A * r) + .5), height int(sqrt(A / r) + .5), swap the two
   when a third uniform draw is < 0.5;
2. the first try that fits gets the offset
   ``x0 = 0 if w == cw else rng.randint(0, w - cw)`` (and the same for y0):
   numpy's ``high`` is exclusive, so the last offset ``w - cw`` is never drawn,
   and no number is drawn when the crop spans the side.  The crop is resized
   back to (h, w) with cubic interpolation;
3. if no try fits: resize the shortest edge to the target and centre-crop it
   (with target = input, this is the identity).

tensorpack changed step 2 in Aug 2019 (commit fd6d34a, "fix random range in
GoogleNetRandomCropAndResize") to ``x0 = rng.randint(0, w - cw + 1)``: every
offset, always one draw.  That is tensorpack 0.11's
``imgaug.GoogleNetRandomCropAndResize``; pass ``offset_rule="2019"`` to get it.

Images are HxWxC uint8 (BGR in this project; GR treats channels alike).
Boxes here are ``(x0, y0, width, height)`` in pixels of the input image.

Seeding: the augmentor draws only from ``self.rng`` (a ``np.random.RandomState``,
tensorpack's convention).  ``reset_state()`` (called by tensorpack dataflows and
after a fork) reseeds it from tensorpack's global seed or the clock; for a
deterministic stream set ``aug.rng = np.random.RandomState(seed)`` after it, or
use :func:`augment.methods.seed_augmentors`.
"""

import math

import cv2
import numpy as np

import tf_env  # noqa: F401  (before tensorpack: see tf_env.py)
from tensorpack.dataflow import imgaug
from tensorpack.dataflow.imgaug.transform import Transform

from .registry import Method

# docs/sources.md / tensorpack GoogleNetResize (2018) / paper sec. 2: 8-100% of the area
CROP_AREA_FRACTION = (0.08, 1.0)
# docs/sources.md / tensorpack GoogleNetResize (2018): 3/4 .. 4/3 (paper sec. 2 writes "0.75 and 1.33")
ASPECT_RATIO_RANGE = (0.75, 1.333)
# docs/sources.md / tensorpack GoogleNetResize (2018) and fb.resnet.torch: 10 tries before the fallback
MAX_TRIES = 10
# the offset rule: "2018" = tensorpack examples/ImageNetModels/imagenet_utils.py GoogleNetResize and
# SN-ResNet codes/utils.py (exclusive high, no draw when the crop spans the side); "2019" =
# tensorpack commit fd6d34a (randint(0, w - cw + 1)), tensorpack 0.11 GoogleNetRandomCropAndResize
OFFSET_RULES = ("2018", "2019")


def _offset(rng, side, crop, rule):
    """The crop's offset along one side of ``side`` pixels (see the module docstring)."""
    if rule == "2019":
        return rng.randint(0, side - crop + 1)
    return 0 if side == crop else rng.randint(0, side - crop)


def sample_crop_box(
    h,
    w,
    rng,
    crop_area_fraction=CROP_AREA_FRACTION,
    aspect_ratio_range=ASPECT_RATIO_RANGE,
    max_tries=MAX_TRIES,
    offset_rule="2018",
):
    """Draw one GR crop box for an image of ``h`` rows and ``w`` columns.

    Draws from ``rng`` in exactly the order of the 2018 ``GoogleNetResize``
    (per try: area, aspect, swap coin; then the x offset unless ``cw == w``,
    the y offset unless ``ch == h``), so the same seed gives the same boxes.
    With ``offset_rule="2019"`` the offsets are drawn as tensorpack 0.11's
    ``GoogleNetRandomCropAndResize`` draws them (always, high ``w - cw + 1``).

    Args:
        h, w (int): image height and width in pixels.
        rng (np.random.RandomState): the only source of randomness.
        crop_area_fraction ((float, float)): target area as a fraction of h * w.
        aspect_ratio_range ((float, float)): width / height before the swap coin.
        max_tries (int): tries before giving up.
        offset_rule (str): "2018" (default, the paper's time) or "2019".

    Returns:
        ``(x0, y0, cw, ch)`` ints with ``0 <= x0``, ``x0 + cw <= w``,
        ``0 <= y0``, ``y0 + ch <= h``, ``cw, ch >= 1`` (under the 2018 rule
        ``x0 + cw < w`` unless ``cw == w``, alike for y); or ``None`` when no try
        fits (the caller then uses :func:`fallback_box`).
        One deviation from tensorpack: a rounded size of 0 (only possible on
        images of a few pixels) counts as not fitting instead of an empty crop.
    """
    area = h * w
    for _ in range(max_tries):
        target_area = rng.uniform(*crop_area_fraction) * area
        aspect = rng.uniform(*aspect_ratio_range)
        cw = int(math.sqrt(target_area * aspect) + 0.5)
        ch = int(math.sqrt(target_area / aspect) + 0.5)
        if rng.uniform() < 0.5:
            cw, ch = ch, cw
        if 1 <= ch <= h and 1 <= cw <= w:
            x0 = _offset(rng, w, cw, offset_rule)
            y0 = _offset(rng, h, ch, offset_rule)
            return x0, y0, cw, ch
    return None


def fallback_box(h, w, out_h, out_w):
    """The region of an ``h x w`` image that GR's fallback keeps, as ``(x0, y0, cw, ch)``.

    tensorpack's fallback resizes the shortest edge to the (square) target and
    centre-crops the target.  For a target of ``out_h x out_w`` the same idea,
    "scale until the image covers the target, keep the aspect ratio,
    centre-crop", scales by ``s = max(out_h / h, out_w / w)`` (for a square
    target this is exactly "resize the shortest edge").  The kept region in
    input pixels is the centred ``round(out_h / s) x round(out_w / s)`` box;
    resizing it to ``out_h x out_w`` gives the fallback output.

    GR in this project resizes back to the input size (paper sec. 2), so
    ``out == (h, w)``, ``s == 1`` and the box is the whole image: the fallback
    returns the image unchanged.
    """
    s = max(out_h / h, out_w / w)
    ch = min(h, max(1, int(round(out_h / s))))
    cw = min(w, max(1, int(round(out_w / s))))
    return (w - cw) // 2, (h - ch) // 2, cw, ch


class CropResizeTransform(Transform):
    """Crop ``(x0, y0, cw, ch)`` and resize it to ``out_h x out_w`` (cv2 takes (width, height))."""

    def __init__(self, x0, y0, cw, ch, out_h, out_w, interp):
        super().__init__()
        # plain assignments, not tensorpack's self._init(locals()): one of these is made per image
        self.x0, self.y0, self.cw, self.ch, self.out_h, self.out_w, self.interp = (
            x0,
            y0,
            cw,
            ch,
            out_h,
            out_w,
            interp,
        )

    def apply_image(self, img):
        """HxWxC uint8 -> out_h x out_w x C uint8; returns ``img`` itself when the crop is the identity."""
        h, w = img.shape[:2]
        if (self.x0, self.y0, self.cw, self.ch) == (0, 0, w, h) and (self.out_h, self.out_w) == (
            h,
            w,
        ):
            return img
        crop = img[self.y0 : self.y0 + self.ch, self.x0 : self.x0 + self.cw]
        out = cv2.resize(crop, (self.out_w, self.out_h), interpolation=self.interp)
        if img.ndim == 3 and out.ndim == 2:  # cv2 drops a single channel axis
            out = out[:, :, np.newaxis]
        return out

    def apply_coords(self, coords):
        """Nx2 float (x, y) in input pixels -> output pixels (tensorpack convention)."""
        coords = np.asarray(coords, dtype=np.float64).copy()
        coords[:, 0] = (coords[:, 0] - self.x0) * (self.out_w / self.cw)
        coords[:, 1] = (coords[:, 1] - self.y0) * (self.out_h / self.ch)
        return coords


class GoogLeNetResize(imgaug.ImageAugmentor):
    """GR (paper sec. 2): random crop of 8-100% area, aspect 0.75-1.333, resized back; 2018 offsets.

    Input and output: HxWxC uint8 (BGR in this project), output shape == input
    shape, also for non-square images (the crop is resized to (H, W)).  When
    none of ``max_tries`` boxes fits, the image is returned unchanged (see
    :func:`fallback_box`: the 2018 fallback with target = input is the identity).

    Args:
        crop_area_fraction: target area range as a fraction of H * W (paper sec. 2: 8-100%).
        aspect_ratio_range: width / height range before the 0.5 swap (docs/sources.md: 0.75-1.333).
        max_tries: tries before the fallback (docs/sources.md: 10).
        interp: cv2 interpolation flag (docs/sources.md: the 2018 code used cubic).
        offset_rule: "2018" (default; tensorpack 2018 / SN-ResNet) or "2019" (tensorpack 0.11).
    """

    def __init__(
        self,
        crop_area_fraction=CROP_AREA_FRACTION,
        aspect_ratio_range=ASPECT_RATIO_RANGE,
        max_tries=MAX_TRIES,
        interp=cv2.INTER_CUBIC,
        offset_rule="2018",
    ):
        lo, hi = crop_area_fraction
        if not 0 < lo <= hi:
            raise ValueError(
                f"crop_area_fraction must satisfy 0 < low <= high, got {crop_area_fraction}"
            )
        lo, hi = aspect_ratio_range
        if not 0 < lo <= hi:
            raise ValueError(
                f"aspect_ratio_range must satisfy 0 < low <= high, got {aspect_ratio_range}"
            )
        if int(max_tries) < 1:
            raise ValueError(f"max_tries must be >= 1, got {max_tries}")
        if offset_rule not in OFFSET_RULES:
            raise ValueError(f"offset_rule must be one of {OFFSET_RULES}, got {offset_rule!r}")
        super().__init__()
        self.offset_rule = offset_rule
        self.crop_area_fraction = tuple(crop_area_fraction)
        self.aspect_ratio_range = tuple(aspect_ratio_range)
        self.max_tries = int(max_tries)
        self.interp = interp

    def get_transform(self, img):
        """Draw a box for ``img`` (HxWxC) and return the :class:`CropResizeTransform` to (H, W)."""
        h, w = img.shape[:2]
        box = sample_crop_box(
            h,
            w,
            self.rng,
            self.crop_area_fraction,
            self.aspect_ratio_range,
            self.max_tries,
            self.offset_rule,
        )
        if box is None:
            box = fallback_box(h, w, h, w)
        return CropResizeTransform(*box, out_h=h, out_w=w, interp=self.interp)


# train.py --aug gr: the paper's GR, one GoogLeNetResize() (augment/registry.py reads this line)
GR = Method("gr", source="paper sec. 2", title="GR", augmentor="GoogLeNetResize", paper=3)
