"""Tests of augment/: GoogLeNet Resize (2018 rule), Hide-and-Seek, the colour jitter, the five methods, seeding.

Images are non-square (30x50, 37x61) on purpose: width/height swaps are the
classic bug of the public code (facts.md, "Known pitfalls").
"""
import cv2
import numpy as np
import pytest

from augment import (METHODS, GoogLeNetResize, HideAndSeek, augmentor_list, augmentors_for, cells_to_mask,
                     colour_jitter, fallback_box, sample_crop_box, sample_hidden_cells, seed_augmentors)
from augment.googlenet_resize import CropResizeTransform
from tensorpack.dataflow import AugmentImageComponent, DataFromList, imgaug
from tensorpack.dataflow.imgaug.transform import CropTransform


def _image(h, w, high=50, seed=0):
    """HxWx3 uint8 with values in [0, high): never equal to a fill of 200."""
    return np.random.RandomState(seed).randint(0, high, (h, w, 3)).astype(np.uint8)


FILL = (101.4, 114.3, 122.5)  # any BGR fill; the training flow passes the split's mean


def _apply(augs, img):
    return augs.augment(img)


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
    assert (x0 == 0).any() and (x0 + cw == w - 1).any() and (y0 == 0).any() and (y0 + ch == h - 1).any()
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
    boxes = np.array([b for b in (sample_crop_box(h, w, rng) for _ in range(20000)) if b is not None])
    x0, y0, cw, ch = boxes.T
    assert ((x0 + cw < w) | (cw == w)).all() and ((y0 + ch < h) | (ch == h)).all()
    spans = cw == w
    assert spans.sum() > 100 and (x0[spans] == 0).all()
    # the range 0 .. w - cw - 1 is used uniformly: for cw = w - 2, offsets 0 and 1 equally often
    sel = cw == w - 2
    assert sel.sum() > 500 and abs((x0[sel] == 0).mean() - 0.5) < 0.05 and set(x0[sel]) == {0, 1}
    rule_2019 = np.array([b for b in (sample_crop_box(h, w, rng, offset_rule="2019") for _ in range(2000))
                          if b is not None])
    assert (rule_2019[:, 0] + rule_2019[:, 2] == w).sum() > 100  # the 2019 rule does touch the edge


def test_gr_swap_makes_portrait_and_landscape_equally_likely():
    # small areas always fit, so no rejection biases the orientation
    rng = np.random.RandomState(2)
    boxes = np.array([sample_crop_box(400, 400, rng, crop_area_fraction=(0.08, 0.3)) for _ in range(2000)])
    cw, ch = boxes[:, 2], boxes[:, 3]
    landscape = (cw > ch)[cw != ch].mean()
    assert abs(landscape - 0.5) < 0.05  # sd ~0.011 over 2000 draws
    assert abs((cw * ch / 400 ** 2).mean() - 0.19) < 0.01  # mean of U(0.08, 0.3)


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
    assert sample_crop_box(30, 50, rng, crop_area_fraction=(0.9, 1.0), aspect_ratio_range=(3.0, 4.0)) is None
    aug = GoogLeNetResize(crop_area_fraction=(1.5, 2.0))
    aug.rng = np.random.RandomState(0)
    img = _image(30, 50)
    for _ in range(5):
        np.testing.assert_array_equal(aug.augment(img), img)
    assert aug.rng.randint(1 << 30) == _rng_after_draws(0, 5 * 10 * 3)  # 10 tries x (area, aspect, coin)


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
    expected = cv2.resize(img[y0:y0 + ch, x0:x0 + cw], (50, 30), interpolation=cv2.INTER_CUBIC)
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


# ---------------------------------------------------------------- HnS

def test_cells_to_mask_by_hand_cuts_the_last_row_and_column_short():
    cells = np.array([[1, 0, 1], [0, 1, 0]], bool)
    expected = np.array([[1, 1, 0, 0, 1],
                         [1, 1, 0, 0, 1],
                         [0, 0, 1, 1, 0]], bool)
    np.testing.assert_array_equal(cells_to_mask(cells, 2, 3, 5), expected)


def test_hns_hide_prob_zero_is_identity_and_one_hides_everything():
    img = _image(30, 50)
    keep = HideAndSeek(patch_sizes=(16, 8, 4), hide_prob=0.0, fill=(200, 200, 200))
    hide = HideAndSeek(patch_sizes=(16, 8, 4), hide_prob=1.0, fill=(10.4, 20.6, 200.0))
    seed_augmentors([keep, hide], 0)
    for _ in range(10):
        np.testing.assert_array_equal(keep.augment(img), img)
        out = hide.augment(img)
        assert out.shape == img.shape and (out == np.array([10, 21, 200], np.uint8)).all()


def test_hns_patch_zero_never_hides():
    aug = HideAndSeek(patch_sizes=(0,), hide_prob=1.0, fill=FILL)
    aug.rng = np.random.RandomState(0)
    img = _image(30, 50)
    np.testing.assert_array_equal(aug.augment(img), img)


def test_hns_hides_whole_grid_cells_from_the_top_left_on_non_square_images():
    h, w, p = 30, 50, 8  # 4 x 7 cells; the last row is 6 px tall, the last column 2 px wide
    img = _image(h, w)
    aug = HideAndSeek(patch_sizes=(p,), hide_prob=0.5, fill=(200, 201, 202))
    aug.rng = np.random.RandomState(5)
    patch, cells = sample_hidden_cells(h, w, np.random.RandomState(5), (p,), 0.5)
    assert patch == p and cells.shape == (4, 7) and 0 < cells.sum() < cells.size
    out = aug.augment(img)
    for i in range(4):
        for j in range(7):
            got = out[i * p:(i + 1) * p, j * p:(j + 1) * p]
            if cells[i, j]:
                assert (got == np.array([200, 201, 202], np.uint8)).all()
            else:
                np.testing.assert_array_equal(got, img[i * p:(i + 1) * p, j * p:(j + 1) * p])


def test_hns_draws_each_patch_size_uniformly_and_cells_with_hide_prob():
    rng = np.random.RandomState(6)
    draws = [sample_hidden_cells(64, 64, rng, (0, 16, 8, 4), 0.5) for _ in range(4000)]
    patches = np.array([p for p, _ in draws])
    for p in (0, 16, 8, 4):
        assert abs((patches == p).mean() - 0.25) < 0.03
    assert {c.shape for p, c in draws if p == 16} == {(4, 4)}  # paper sec. 3: 4x4 grid = 16 px cells
    hidden = np.concatenate([c.ravel() for p, c in draws if p == 4])
    assert abs(hidden.mean() - 0.5) < 0.01


def test_hns_leaves_the_input_array_untouched():
    img = _image(30, 50)
    before = img.copy()
    aug = HideAndSeek(patch_sizes=(8,), hide_prob=1.0, fill=FILL)
    aug.rng = np.random.RandomState(0)
    aug.augment(img)
    np.testing.assert_array_equal(img, before)


def test_hns_has_no_default_fill():
    # the fill is decided in one place, the training flow (dataflow.builders.train_augmentors)
    with pytest.raises(TypeError, match="fill"):
        HideAndSeek(patch_sizes=(4,))
    with pytest.raises(ValueError, match="fill"):
        augmentors_for("gr_after_hns", fill=None)
    assert [type(a) for a in augmentor_list("gr", fill=None)] == [GoogLeNetResize]


@pytest.mark.parametrize("kwargs", [dict(hide_prob=1.5), dict(patch_sizes=(-1,)), dict(patch_sizes=()),
                                    dict(patch_sizes=(2.5,)), dict(fill=(1, 2)), dict(fill=(0, 0, 300))])
def test_hns_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        HideAndSeek(**{"fill": FILL, **kwargs})


# ---------------------------------------------------------------- methods and seeding

def test_methods_build_augmentors_in_the_named_order():
    kinds = {m: [type(a) for a in augmentors_for(m, FILL).augmentors] for m in METHODS}
    assert kinds == {
        "cam": [],
        "hns": [HideAndSeek],
        "gr": [GoogLeNetResize],
        "hns_after_gr": [GoogLeNetResize, HideAndSeek],
        "gr_after_hns": [HideAndSeek, GoogLeNetResize],
    }
    assert augmentor_list("hns", fill=(1, 2, 3))[0].fill == (1.0, 2.0, 3.0)


def test_jitter_and_flip_come_after_the_method_as_in_sn_resnet():
    # SN-ResNet codes/utils.py fbresnet_augmentor: [GoogleNetResize, RandomOrderAug(jitter), Flip]
    kinds = [type(a) for a in augmentor_list("gr", FILL, flip=True, jitter=True)]
    assert kinds == [GoogLeNetResize, imgaug.RandomOrderAug, imgaug.Flip]
    kinds = [type(a) for a in augmentor_list("gr_after_hns", FILL, flip=True)]
    assert kinds == [HideAndSeek, GoogLeNetResize, imgaug.Flip]
    assert [type(a) for a in augmentor_list("cam", FILL, jitter=True)] == [imgaug.RandomOrderAug]


def test_flip_after_hns_mirrors_the_grid():
    # HnS lays its grid from the top-left, so its cut-short last column is on the right; the flip
    # comes after it (SN-ResNet's order), so in the output that short column is on the LEFT.
    h, w, p = 8, 10, 4  # 3 columns of cells: 4, 4 and 2 pixels wide
    augs = augmentors_for("hns", fill=(200, 200, 200), flip=True)
    hns, flip = augs.augmentors
    hns.patch_sizes, flip.prob = (p,), 1.0
    img = _image(h, w)
    for seed in range(20):
        seed_augmentors(augs, seed)
        hidden = ~(augs.augment(img) == 200).all(axis=2)[:, ::-1]  # un-flipped: True = kept
        cells = hidden[::p, ::p]
        np.testing.assert_array_equal(hidden, ~cells_to_mask(~cells, p, h, w))


def test_hns_after_gr_hides_grid_cells_of_the_resized_image():
    # HnS runs last: its hidden cells are exact, grid-aligned fill on the GR output
    augs = seed_augmentors(augmentors_for("hns_after_gr", fill=(200, 200, 200)), 3)
    augs.augmentors[1].patch_sizes = (8,)
    img = _image(30, 50)
    out = _apply(augs, img)
    hidden = (out == 200).all(axis=2)
    cells = hidden[::8, ::8]
    assert cells.any()
    np.testing.assert_array_equal(hidden, cells_to_mask(cells, 8, 30, 50))


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError) as e:
        augmentors_for("mixup", FILL)
    for m in METHODS:
        assert m in str(e.value)
    assert "mixup" in str(e.value)


def test_seeded_augmentors_are_reproducible_and_seed_dependent():
    imgs = [_image(30, 50, high=256, seed=s) for s in range(8)]

    def run(seed):
        augs = seed_augmentors(augmentors_for("hns_after_gr", FILL, flip=True, jitter=True), seed)
        return np.stack([_apply(augs, im) for im in imgs])

    np.testing.assert_array_equal(run(11), run(11))
    assert not np.array_equal(run(11), run(12))


def test_augmentors_work_inside_a_tensorpack_dataflow():
    imgs = [[_image(30, 50, seed=s)] for s in range(4)]
    for method in METHODS:
        flow = AugmentImageComponent(DataFromList(imgs, shuffle=False), augmentor_list(method, FILL, jitter=True))
        flow.reset_state()
        out = [dp[0] for dp in flow]
        assert len(out) == 4 and all(o.shape == (30, 50, 3) and o.dtype == np.uint8 for o in out)


# ---------------------------------------------------------------- preview

def test_preview_writes_a_grid_with_one_row_per_image(tiny_data, tmp_path):
    from augment import preview
    out = tmp_path / "grid.png"
    preview.main(["--data", tiny_data, "--method", "gr", "--out", str(out), "--count", "3", "--draws", "2",
                  "--scale", "1"])
    grid = cv2.imread(str(out))
    h, w = 32, 40  # conftest.TINY
    assert grid.shape == (preview.HEADER + 3 * (h + preview.GAP), preview.GAP + 3 * (w + preview.GAP), 3)


def test_preview_all_has_one_column_per_method():
    from augment import preview
    labels = [label for label, _ in preview.columns("all", draws=5)]
    assert labels == ["original (cam)", "hns", "gr", "hns_after_gr", "gr_after_hns"]


@pytest.mark.parametrize("bad, message", [
    (["--data", "/no/such/dir", "--out", "{tmp}/g.png"], "no such directory"),
    (["--data", "{data}", "--out", "{tmp}/missing/g.png"], "does not exist"),
    (["--data", "{data}", "--out", "{tmp}/g.jpg"], "must end in .png"),
    (["--data", "{data}", "--out", "{tmp}/g.png", "--count", "0"], "--count"),
])
def test_preview_bad_input_is_one_user_error(tiny_data, tmp_path, bad, message):
    from augment import preview
    from errors import UserError
    argv = [a.format(tmp=tmp_path, data=tiny_data) for a in bad]
    with pytest.raises(UserError, match=message):
        preview.main(argv)
