"""cam/: hand-checked cases for CAMs, scoremap-to-box, IoU, the metrics and the threshold sweep.

Every expected number below is worked out by hand in the comment beside it.
Maps are non-square (H != W) so that a width/height swap fails a test.
"""
import json

import numpy as np
import pytest

from cam import (LocalizationAccumulator, ThresholdSweep, boxes_at_thresholds, class_activation_maps,
                 iou, normalize_map, resize_map, scoremap_to_box, scoremaps_from_cams, threshold_grid,
                 top_k_classes)
import fileio
from cam import vis


# ---------------------------------------------------------------- CAM


def test_cam_mean_plus_bias_is_the_logit():
    rng = np.random.default_rng(0)
    features = rng.random((3, 2, 5, 4)).astype(np.float32)        # N=3, h=2, w=5, C=4 (NHWC)
    fc_w = rng.normal(size=(4, 6)).astype(np.float32)             # C=4 -> K=6 classes
    fc_b = rng.normal(size=6).astype(np.float32)
    logits = features.mean(axis=(1, 2)) @ fc_w + fc_b            # GAP + FC
    classes = np.array([5, 0, 2])
    cams = class_activation_maps(features, fc_w, classes)
    assert cams.shape == (3, 2, 5) and cams.dtype == np.float32
    np.testing.assert_allclose(cams.mean(axis=(1, 2)) + fc_b[classes], logits[np.arange(3), classes],
                               rtol=1e-5, atol=1e-5)


def test_cam_is_the_weighted_channel_sum():
    features = np.zeros((1, 1, 2, 3), np.float32)
    features[0, 0, 0] = [1, 2, 3]
    features[0, 0, 1] = [0, 1, 0]
    fc_w = np.array([[1, 0], [10, 0], [100, 0]], np.float32)      # class 0 weights (1, 10, 100)
    # pixel (0,0): 1 + 20 + 300 = 321; pixel (0,1): 10
    np.testing.assert_array_equal(class_activation_maps(features, fc_w, [0])[0], [[321, 10]])
    with pytest.raises(ValueError):
        class_activation_maps(features, fc_w, [2])                   # class out of range


def test_resize_takes_height_then_width():
    cam = np.arange(6, dtype=np.float32).reshape(2, 3)            # h=2, w=3
    out = resize_map(cam, (4, 6))                                  # (H, W) = (4, 6)
    assert out.shape == (4, 6)
    # bilinear with aligned pixel centres: the corners keep the corner values
    assert out[0, 0] == 0 and out[-1, -1] == 5
    assert scoremaps_from_cams(cam[None], (5, 9)).shape == (1, 5, 9)


def test_normalize_min_max_and_degenerate_maps():
    np.testing.assert_allclose(normalize_map(np.array([[2.0, 4.0, 3.0]])), [[0.0, 1.0, 0.5]])
    assert not normalize_map(np.full((2, 3), 7.0)).any()           # constant -> zeros
    nan_map = np.array([[0.0, np.nan, 1.0]])
    assert not normalize_map(nan_map).any()                         # non-finite -> zeros
    assert not normalize_map(np.array([[0.0, np.inf]])).any()


# ---------------------------------------------------------------- IoU


@pytest.mark.parametrize("a, b, expected", [
    ([0, 0, 9, 9], [0, 0, 9, 9], 1.0),                # identical
    ([0, 0, 9, 9], [2, 2, 6, 6], 25 / 100),           # inside: 5x5 in 10x10
    ([0, 0, 3, 2], [2, 1, 5, 4], 4 / 24),             # 4x3=12, 4x4=16, overlap 2x2=4, union 24
    ([1, 2, 5, 6], [3, 1, 4, 5], 8 / 27),             # wsolevaluation's case: 25 + 10 - 8 = 27
    ([0, 0, 4, 4], [4, 0, 8, 4], 5 / 45),             # touching: share column x=4 (5 pixels)
    ([0, 0, 4, 4], [5, 0, 9, 4], 0.0),                # adjacent, no shared pixel
    ([0, 0, 4, 4], [10, 10, 14, 14], 0.0),            # disjoint in x and y (unclamped code: 25/25)
    ([3, 3, 3, 3], [3, 3, 3, 3], 1.0),                # one pixel is a real box
    ([3, 3, 3, 3], [0, 0, 9, 9], 1 / 100),
    ([5, 0, 3, 4], [0, 0, 9, 9], 0.0),                # degenerate x1 < x0: area 0
    ([5, 5, 3, 3], [5, 5, 3, 3], 0.0),                # both degenerate: empty union -> 0
])
def test_iou_inclusive(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


def test_iou_broadcasts():
    boxes = np.array([[0, 0, 9, 9], [2, 2, 6, 6], [20, 20, 21, 21]])
    np.testing.assert_allclose(iou(boxes, np.array([0, 0, 9, 9])), [1.0, 0.25, 0.0])


# ---------------------------------------------------------------- scoremap -> box


def blob_map(height, width, rows, cols, value=1.0):
    m = np.zeros((height, width), np.float32)
    m[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = value
    return m


def test_unimodal_box_both_rules():
    m = blob_map(6, 10, rows=(1, 3), cols=(2, 6))                  # pixels x 2..6, y 1..3
    # boundingRect (x=2, y=1, w=5, h=3) -> authors [x, y, x+w, y+h] = [2, 1, 7, 4]
    assert scoremap_to_box(m).tolist() == [2, 1, 7, 4]
    # wsol: min(7, W-1=9), min(4, H-1=5) -> same here
    assert scoremap_to_box(m, rule="wsol").tolist() == [2, 1, 7, 4]


def test_box_at_the_border_authors_goes_one_past_wsol_clips():
    m = blob_map(6, 10, rows=(3, 5), cols=(6, 9))                  # touches the bottom-right corner
    assert scoremap_to_box(m).tolist() == [6, 3, 10, 6]            # x1 = W, y1 = H: outside the image
    assert scoremap_to_box(m, rule="wsol").tolist() == [6, 3, 9, 5]


def test_threshold_is_strict_and_relative_to_the_max():
    m = np.zeros((4, 7), np.float32)
    m[1, 1] = 2.0                                                  # max 2 -> threshold 0.2 * 2 = 0.4
    m[1, 2] = 0.4                                                  # equal to the threshold: background
    m[1, 3] = 0.41                                                 # above: foreground, but not 8-connected
    # two components {(1,1)} and {(1,3)}, each 1x1: the first in OpenCV's contour list wins the
    # tie, as in the authors' loop; OpenCV lists the last-found (raster order) contour first
    assert scoremap_to_box(m).tolist() == [3, 1, 4, 2]
    m[1, 2] = 0.5                                                  # now one component x 1..3
    assert scoremap_to_box(m).tolist() == [1, 1, 4, 2]


def test_two_blobs_largest_wins():
    m = blob_map(8, 12, rows=(0, 1), cols=(0, 1), value=1.0)       # 2x2, bbox area 4
    m[4:7, 6:10] = 0.5                                             # 3 rows x 4 cols, bbox area 12
    assert scoremap_to_box(m).tolist() == [6, 4, 10, 7]
    assert scoremap_to_box(m, rule="wsol").tolist() == [6, 4, 10, 7]
    # at threshold 0.6 only the 2x2 blob survives
    assert scoremap_to_box(m, 0.6).tolist() == [0, 0, 2, 2]


def test_rules_differ_rectangle_area_vs_contour_area():
    m = np.zeros((7, 9), np.float32)
    for i in range(5):
        m[i, i] = 1.0                     # diagonal line (0,0)..(4,4): bbox 5x5 = 25, contour area 0
    m[4:7, 6:9] = 1.0                     # 3x3 square x 6..8, y 4..6: bbox 9, contour area 2x2 = 4
    assert scoremap_to_box(m, rule="authors").tolist() == [0, 0, 5, 5]
    assert scoremap_to_box(m, rule="wsol").tolist() == [6, 4, 8, 6]   # min(9, 8), min(7, 6)


def test_ring_hole_contour_does_not_shrink_the_box():
    m = blob_map(7, 9, rows=(1, 5), cols=(2, 7))
    m[3, 4] = 0.0                                                  # a hole inside (RETR_TREE lists it too)
    assert scoremap_to_box(m).tolist() == [2, 1, 8, 6]


def test_constant_and_nan_maps():
    zeros = normalize_map(np.full((5, 8), 3.0))
    for rule in ("authors", "wsol"):
        assert scoremap_to_box(zeros, rule=rule).tolist() == [0, 0, 0, 0]   # nothing above 0.2 * 0
        assert scoremap_to_box(normalize_map(np.full((5, 8), np.nan)), rule=rule).tolist() == [0, 0, 0, 0]
        with pytest.raises(ValueError):
            scoremap_to_box(np.full((5, 8), np.nan), rule=rule)
    ones = np.ones((5, 8), np.float32)                             # not normalised: every pixel > 0.2
    assert scoremap_to_box(ones).tolist() == [0, 0, 8, 5]          # whole image, one past
    assert scoremap_to_box(ones, rule="wsol").tolist() == [0, 0, 7, 4]
    with pytest.raises(ValueError):
        scoremap_to_box(ones, rule="nearest")


# wsolevaluation's published expectations (evaluation_test.py), thresholds np.arange(0, 1, 0.2):
# they check our reproduction of its 8-bit quantisation and clipping.
WSOL_UNIMODAL = np.array([[0.0, 0.0, 0.0, 0.0, 0.0],
                          [0.0, 0.4, 0.4, 0.4, 0.6],
                          [0.0, 0.4, 1.0, 0.8, 0.6],
                          [0.0, 0.4, 0.4, 0.4, 0.6]])
WSOL_MULTIMODAL = np.array([[0.4, 0.0, 0.2, 0.2, 0.2],
                            [0.4, 0.4, 0.0, 0.4, 0.0],
                            [0.0, 0.0, 0.0, 0.4, 0.0],
                            [1.0, 0.6, 0.8, 0.2, 0.2]])


def test_wsol_rule_matches_wsolevaluation_cases():
    thresholds = np.arange(0, 1, 0.2)
    assert boxes_at_thresholds(WSOL_UNIMODAL, thresholds, "wsol").tolist() == [
        [1, 1, 4, 3], [1, 1, 4, 3], [2, 1, 4, 3], [2, 2, 4, 3], [2, 2, 3, 3]]
    assert boxes_at_thresholds(WSOL_MULTIMODAL, thresholds, "wsol").tolist() == [
        [0, 0, 4, 3], [0, 0, 2, 2], [0, 3, 3, 3], [2, 3, 3, 3], [0, 3, 1, 3]]
    assert boxes_at_thresholds(np.zeros((3, 3)), thresholds, "wsol").tolist() == [[0, 0, 0, 0]] * 5


def test_authors_rule_on_the_unimodal_case():
    # t=0: all 12 nonzero pixels, x 1..4, y 1..3 -> rect (1,1,4,3) -> [1, 1, 5, 4]
    # t=0.5: > 0.5 -> the 0.6 column and 1.0, 0.8: x 2..4, y 1..3 -> [2, 1, 5, 4]
    # t=0.9: only the 1.0 at (x=2, y=2) -> [2, 2, 3, 3]
    assert boxes_at_thresholds(WSOL_UNIMODAL, [0.0, 0.5, 0.9], "authors").tolist() == [
        [1, 1, 5, 4], [2, 1, 5, 4], [2, 2, 3, 3]]


def test_boxes_at_thresholds_equals_one_by_one():
    rng = np.random.default_rng(1)
    m = normalize_map(resize_map(rng.random((4, 6)), (12, 20)))
    ts = threshold_grid(0.05)
    for rule in ("authors", "wsol"):
        one_by_one = [scoremap_to_box(m, t, rule).tolist() for t in ts]
        assert boxes_at_thresholds(m, ts, rule).tolist() == one_by_one


# ---------------------------------------------------------------- metrics


def test_accumulator_on_a_hand_made_list():
    # image: IoU, top-5 (best first), label -> gt-known, top1-loc, top1-clas, top5-loc, top5-clas
    ious = [0.7, 0.5, 0.49, 0.9, 0.1]
    top5 = [[3, 1, 2, 0, 4],   # 0: label 3, IoU .7  -> 1 1 1 1 1
            [1, 3, 0, 2, 4],   # 1: label 3, IoU .5  -> 1 0 0 1 1  (0.5 counts: >=)
            [2, 0, 1, 3, 4],   # 2: label 2, IoU .49 -> 0 0 1 0 1
            [4, 0, 1, 2, 3],   # 3: label 0, IoU .9  -> 1 0 0 1 1
            [0, 1, 2, 3, 4]]   # 4: label 9, IoU .1  -> 0 0 0 0 0 (label not in top 5)
    labels = [3, 3, 2, 0, 9]
    acc = LocalizationAccumulator()
    acc.update(ious[:2], top5[:2], labels[:2])                     # in two batches
    acc.update(ious[2:], top5[2:], labels[2:])
    assert acc.summary() == pytest.approx({"gt_known_loc": 60.0, "top1_loc": 20.0, "top1_clas": 40.0,
                                           "top5_loc": 60.0, "top5_clas": 80.0})
    strict = LocalizationAccumulator(strict=True)                  # the authors' IoU > 0.5
    strict.update(ious, top5, labels)
    assert strict.summary()["gt_known_loc"] == pytest.approx(40.0)
    with pytest.raises(ValueError):
        LocalizationAccumulator().summary()


def test_top_k_classes_few_classes_and_ties():
    logits = np.array([[0.1, 0.9, 0.5], [1.0, 1.0, 0.0]])
    assert top_k_classes(logits).tolist() == [[1, 2, 0], [0, 1, 2]]   # K=3 < 5: all classes
    assert top_k_classes(logits, k=1).tolist() == [[1], [0]]


# ---------------------------------------------------------------- sweep


def test_threshold_grid():
    grid = threshold_grid(0.01)
    assert len(grid) == 101 and grid[0] == 0.0 and grid[-1] == 1.0 and grid[7] == 0.07
    with pytest.raises(ValueError):
        threshold_grid(0.03)


def test_sweep_counts_per_threshold_over_the_whole_set():
    # image A is localised only at low thresholds, image B only at high ones
    a = np.zeros((6, 10), np.float32)
    a[1:5, 1:9] = 0.3                                              # wide low plateau = the object
    a[2:4, 4:6] = 1.0                                              # small peak
    b = np.zeros((6, 10), np.float32)
    b[0:6, 0:10] = 0.3                                             # the whole image glows a little
    b[1:4, 2:6] = 1.0                                              # the object is the peak
    gt = np.array([[1, 1, 8, 4], [2, 1, 5, 3]])
    sweep = ThresholdSweep([0.1, 0.5], rule="wsol")
    sweep.update(np.stack([a, b]), gt, top1_correct=[True, False], top5_correct=[True, True])
    res = sweep.result()
    # t=0.1: A box [1,1,9,5] IoU 32/45; B box whole image IoU 12/60 -> 1 of 2 = 50%
    # t=0.5: A box [4,2,6,4] IoU 9/32; B box [2,1,6,4] (clipped) IoU 12/20 -> 1 of 2 = 50%
    assert res["gt_known_loc"] == [50.0, 50.0]                     # never 100: no "any threshold"
    assert res["top1_loc"] == [50.0, 0.0]
    assert res["top5_loc"] == [50.0, 50.0]
    assert res["best"] == {"threshold": 0.1, "max_box_acc": 50.0, "top1_loc": 50.0, "top5_loc": 50.0}
    json.dumps(res)                                                # JSON-able


# ---------------------------------------------------------------- pictures and files


def test_figure_panels_draw_boxes_in_the_right_place(tmp_path):
    image = np.zeros((6, 10, 3), np.uint8)
    scoremap = blob_map(6, 10, rows=(1, 3), cols=(2, 6))
    panel = vis.figure_panels(image, scoremap, [0, 0, 9, 5], [2, 1, 6, 3], scale=2, caption="x")
    assert panel.shape[1] == 3 * 10 * 2 + 2 * 2
    assert tuple(panel[0, 0]) == vis.GT_COLOR                      # gt box outlines the whole image
    assert tuple(panel[2, 4]) == vis.PRED_COLOR                    # estimate starts at pixel (2, 1) * 2
    assert tuple(panel[2 * 4 - 1, 2 * 7 - 1]) == vis.PRED_COLOR    # and ends at (6, 3) inclusive
    heat = vis.cubehelix(np.array([0.0, 1.0]))
    assert heat[0].tolist() == [0, 0, 0] and heat[1].tolist() == [255, 255, 255]
    out = tmp_path / "grid.png"
    fileio.write_png(str(out), vis.grid([panel, panel, panel], columns=2))
    assert out.stat().st_size > 0 and not list(tmp_path.glob(".*tmp"))


def test_plot_sweep_and_atomic_writers(tmp_path):
    res = {"thresholds": [0.0, 0.5, 1.0], "gt_known_loc": [10.0, 60.0, 0.0],
           "top1_loc": [5.0, 30.0, 0.0], "top5_loc": [8.0, 50.0, 0.0]}
    img = vis.plot_sweep(res, marks=[(0.2, "paper")], size=(200, 300))
    assert img.shape == (200, 300, 3) and (img != 255).any()
    fileio.write_json(str(tmp_path / "a.json"), {"x": 1})
    fileio.write_npz(str(tmp_path / "a.npz"), cams=np.zeros((2, 3, 4), np.float32))
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1}
    assert np.load(tmp_path / "a.npz")["cams"].shape == (2, 3, 4)
    assert fileio.check_writable(str(tmp_path / "missing" / "a.json"), "--json") is not None
    assert fileio.check_writable(str(tmp_path / "b.json"), "--json") is None
