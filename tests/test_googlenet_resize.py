"""Tests of augment/googlenet_resize.py: GoogLeNet Resize as tensorpack's 2018 GoogleNetResize draws it.

Images are non-square (30x50, 37x61, 9x7) on purpose: width/height swaps are the
classic bug of the public code (docs/sources.md).
"""

import cv2
import numpy as np

from augment.googlenet_resize import (
    CropResizeTransform,
    GoogLeNetResize,
    fallback_box,
    sample_crop_box,
)
from tensorpack.dataflow import imgaug
from tensorpack.dataflow.imgaug.transform import CropTransform
from tests.test_augment import _image


# ---------------------------------------------------------------- GR: boxes


def test_gr_boxes_stay_inside_and_respect_area_and_aspect():
    h, w = 300, 500  # non-square, large enough that rounding moves area/aspect by < 2%
    rng = np.random.RandomState(1)
    draws = [sample_crop_box(h, w, rng) for _ in range(2000)]
    boxes = np.array([b for b in draws if b is not None])
    assert len(boxes) > 1990  # a fallback needs 10 misses in a row
    x0, y0, cw, ch = boxes.T
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x0 + cw <= w).all() and (y0 + ch <= h).all()
    frac = cw * ch / (h * w)
    ratio = np.maximum(cw, ch) / np.minimum(cw, ch)
    assert frac.min() >= 0.08 * 0.98 and frac.max() <= 1.0
    assert ratio.max() <= 1.333 * 1.02
    # the whole range is used, not one corner of it (the largest box that fits, 400x300, is 0.8)
    assert frac.min() < 0.1 and frac.max() > 0.75 and ratio.max() > 1.25
    # 2018 rule: the first row/column is used, the last one only by a crop that spans the side
    assert (
        (x0 == 0).any()
        and (x0 + cw == w - 1).any()
        and (y0 == 0).any()
        and (y0 + ch == h - 1).any()
    )
    assert ((x0 + cw < w) | (cw == w)).all() and ((y0 + ch < h) | (ch == h)).all()


class RecordingRNG(np.random.RandomState):
    """A RandomState that logs every draw as (method, args)."""

    def __init__(self, seed):
        super().__init__(seed)
        self.log = []

    def uniform(self, *args, **kwargs):
        self.log.append(("uniform", args))
        return super().uniform(*args, **kwargs)

    def randint(self, *args, **kwargs):
        self.log.append(("randint", args))
        return super().randint(*args, **kwargs)


def _gr_2018_reference(h, w, rng):
    """The 2018 GoogleNetResize box rule, transcribed from its description (docs/sources.md)."""
    for _ in range(10):
        area = rng.uniform(0.08, 1.0) * h * w
        aspect = rng.uniform(0.75, 1.333)
        ww, hh = int(np.sqrt(area * aspect) + 0.5), int(np.sqrt(area / aspect) + 0.5)
        if rng.uniform() < 0.5:
            ww, hh = hh, ww
        if hh <= h and ww <= w:
            x1 = 0 if w == ww else rng.randint(0, w - ww)
            y1 = 0 if h == hh else rng.randint(0, h - hh)
            return x1, y1, ww, hh
    return None


def test_gr_draws_exactly_as_the_2018_code():
    # same numbers, same calls, same order; 9x7 images make crops that span a side common
    for h, w in [(9, 7), (7, 9), (30, 50)]:
        ours, ref = RecordingRNG(5), RecordingRNG(5)
        for _ in range(3000):
            assert sample_crop_box(h, w, ours) == _gr_2018_reference(h, w, ref)
        assert ours.log == ref.log


def test_gr_offset_statistic_fails_on_the_2019_rule():
    # 2018: x0 uniform on 0 .. w - cw - 1 (never w - cw) when cw < w, and no draw when cw == w.
    # Under the 2019 rule (randint(0, w - cw + 1)) the crop touches the right edge in about
    # 1 / (w - cw + 1) of the draws: hundreds of times here.
    h, w = 9, 7
    rng = np.random.RandomState(0)
    boxes = np.array(
        [b for b in (sample_crop_box(h, w, rng) for _ in range(20000)) if b is not None]
    )
    x0, y0, cw, ch = boxes.T
    assert ((x0 + cw < w) | (cw == w)).all() and ((y0 + ch < h) | (ch == h)).all()
    spans = cw == w
    assert spans.sum() > 100 and (x0[spans] == 0).all()
    # the range 0 .. w - cw - 1 is used uniformly: for cw = w - 2, offsets 0 and 1 equally often
    sel = cw == w - 2
    assert sel.sum() > 500 and abs((x0[sel] == 0).mean() - 0.5) < 0.05 and set(x0[sel]) == {0, 1}
    rule_2019 = np.array(
        [
            b
            for b in (sample_crop_box(h, w, rng, offset_rule="2019") for _ in range(2000))
            if b is not None
        ]
    )
    assert (rule_2019[:, 0] + rule_2019[:, 2] == w).sum() > 100  # the 2019 rule does touch the edge


def test_gr_swap_makes_portrait_and_landscape_equally_likely():
    # small areas always fit, so no rejection biases the orientation
    rng = np.random.RandomState(2)
    boxes = np.array(
        [sample_crop_box(400, 400, rng, crop_area_fraction=(0.08, 0.3)) for _ in range(2000)]
    )
    cw, ch = boxes[:, 2], boxes[:, 3]
    landscape = (cw > ch)[cw != ch].mean()
    assert abs(landscape - 0.5) < 0.05  # sd ~0.011 over 2000 draws
    assert abs((cw * ch / 400**2).mean() - 0.19) < 0.01  # mean of U(0.08, 0.3)


def test_gr_2019_rule_matches_tensorpack_0_11_under_the_same_seed():
    h, w = 37, 61
    ours = np.random.RandomState(7)
    ref = imgaug.GoogleNetRandomCropAndResize(target_shape=16)
    ref.rng = np.random.RandomState(7)
    img = np.zeros((h, w, 3), np.uint8)
    compared = 0
    for _ in range(500):
        box = sample_crop_box(h, w, ours, offset_rule="2019")
        t = ref.get_transform(img).tfms[0]
        if isinstance(t, CropTransform):
            assert box == (t.x0, t.y0, t.w, t.h)
            compared += 1
        else:
            assert box is None
    assert compared > 400


def test_gr_fallback_when_nothing_fits_returns_the_image_unchanged():
    rng = np.random.RandomState(0)
    assert sample_crop_box(30, 50, rng, crop_area_fraction=(1.5, 2.0)) is None
    assert (
        sample_crop_box(30, 50, rng, crop_area_fraction=(0.9, 1.0), aspect_ratio_range=(3.0, 4.0))
        is None
    )
    aug = GoogLeNetResize(crop_area_fraction=(1.5, 2.0))
    aug.rng = np.random.RandomState(0)
    img = _image(30, 50)
    for _ in range(5):
        np.testing.assert_array_equal(aug.augment(img), img)
    assert aug.rng.randint(1 << 30) == _rng_after_draws(
        0, 5 * 10 * 3
    )  # 10 tries x (area, aspect, coin)


def _rng_after_draws(seed, n):
    rng = np.random.RandomState(seed)
    rng.uniform(size=n)
    return rng.randint(1 << 30)


def test_fallback_box_is_resize_cover_then_centre_crop():
    assert fallback_box(30, 50, 30, 50) == (0, 0, 50, 30)  # target = input: the whole image
    # square target on a landscape image: resize shortest edge, centre crop -> centred 30x30
    assert fallback_box(30, 50, 20, 20) == (10, 0, 30, 30)
    # portrait image, landscape target 10x20 (s = 20/40): region 20 rows x 40 cols, centred
    assert fallback_box(60, 40, 10, 20) == (0, 20, 40, 20)


# ---------------------------------------------------------------- GR: images


def test_gr_output_is_the_crop_resized_back_to_the_input_shape():
    img = _image(30, 50, high=256)
    aug = GoogLeNetResize()
    aug.rng = np.random.RandomState(3)
    box = sample_crop_box(30, 50, np.random.RandomState(3))
    t = aug.get_transform(img)
    assert isinstance(t, CropResizeTransform) and (t.x0, t.y0, t.cw, t.ch) == box
    out = t.apply_image(img)
    x0, y0, cw, ch = box
    expected = cv2.resize(img[y0 : y0 + ch, x0 : x0 + cw], (50, 30), interpolation=cv2.INTER_CUBIC)
    assert out.shape == (30, 50, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_crop_resize_transform_by_hand():
    img = np.arange(4 * 6, dtype=np.uint8).reshape(4, 6, 1).repeat(3, axis=2)
    t = CropResizeTransform(x0=2, y0=1, cw=3, ch=2, out_h=4, out_w=6, interp=cv2.INTER_NEAREST)
    out = t.apply_image(img)
    # rows 1-2, cols 2-4 of the 4x6 ramp, each pixel doubled in both directions
    expected = np.array([[8, 9, 10], [14, 15, 16]], np.uint8).repeat(2, 0).repeat(2, 1)
    np.testing.assert_array_equal(out[:, :, 0], expected)
    np.testing.assert_allclose(t.apply_coords(np.array([[2.0, 1.0], [5.0, 3.0]])), [[0, 0], [6, 4]])


def test_gr_keeps_shape_on_non_square_images():
    aug = GoogLeNetResize()
    aug.rng = np.random.RandomState(4)
    for h, w in [(30, 50), (50, 30), (7, 3)]:
        for _ in range(20):
            assert aug.augment(_image(h, w)).shape == (h, w, 3)
