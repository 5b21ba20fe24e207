"""cam/: hand-checked cases for CAMs, the three protocols, IoU, the one evaluator, MaxBoxAccV2, baselines.

Every expected number below is worked out by hand in the comment beside it.
Maps are non-square (H != W) so that a width/height swap fails a test.
"""
import json

import cv2
import matplotlib
import numpy as np
import pytest

import fileio
from cam import (PROTOCOLS, WSOL_MULTI, BoxEvaluator, class_activation_maps, iou, normalize_map, resize_map,
                 scoremaps_from_cams, threshold_grid, top_k_classes)
from cam import vis
from cam.baselines import best_fixed_box
from cam.box import boxes_at_cuts, boxes_from_mask
from cam.maxboxacc import THRESHOLDS, maxboxacc_v2
from cam.protocols import authors_grey, whole_image_box

AUTHORS, PAPER, WSOL = PROTOCOLS["authors"], PROTOCOLS["paper"], PROTOCOLS["wsol"]


def box_of(protocol, scoremap, threshold=0.2):
    """The single box of ``protocol`` at one threshold, as a list."""
    levels = protocol.level_map(np.asarray(scoremap, np.float32))
    boxes, owner = boxes_at_cuts(levels, protocol.cuts(levels, [threshold]), protocol.pick, protocol.write)
    return boxes[owner[0]].tolist()


def blob_map(height, width, rows, cols, value=1.0):
    m = np.zeros((height, width), np.float32)
    m[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = value
    return m


# ---------------------------------------------------------------- CAM and resize


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


def test_resize_takes_height_then_width_bilinear_and_cubic():
    cam = np.arange(6, dtype=np.float32).reshape(2, 3)            # h=2, w=3
    for resize, flag in (("bilinear", cv2.INTER_LINEAR), ("cubic", cv2.INTER_CUBIC)):
        out = resize_map(cam, (4, 6), resize)                      # (H, W) = (4, 6)
        assert out.shape == (4, 6)
        np.testing.assert_array_equal(out, cv2.resize(cam, (6, 4), interpolation=flag))
    assert not np.array_equal(resize_map(cam, (4, 6), "bilinear"), resize_map(cam, (4, 6), "cubic"))
    assert scoremaps_from_cams(cam[None], (5, 9), "cubic").shape == (1, 5, 9)


def test_normalize_min_max_and_degenerate_maps():
    np.testing.assert_allclose(normalize_map(np.array([[2.0, 4.0, 3.0]])), [[0.0, 1.0, 0.5]])
    assert not normalize_map(np.full((2, 3), 7.0)).any()           # constant -> zeros
    assert not normalize_map(np.array([[0.0, np.nan, 1.0]])).any()  # non-finite -> zeros


# ---------------------------------------------------------------- the authors' grey level


def test_grey_pipeline_equals_matplotlib_and_opencv_calls():
    rng = np.random.default_rng(3)
    resized = cv2.resize(rng.normal(size=(4, 5)).astype(np.float32), (10, 7))   # (H, W) = (7, 10)
    # SN-ResNet codes/utils_loc.py, written out with the library calls themselves
    x = resized.astype("float")
    x -= x.min()
    x /= x.max()
    rgb = matplotlib.colormaps["cubehelix"](x)[..., :3].astype("float32") * 255.0
    expected = cv2.cvtColor(rgb.astype("uint8"), cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(authors_grey(resized), expected)
    from tensorpack.utils import viz                                 # and tensorpack's own function
    tp = cv2.cvtColor(viz.intensity_to_rgb(resized.copy(), normalize=True).astype("uint8"), cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(authors_grey(resized), tp)
    assert authors_grey(np.full((3, 4), 2.0, np.float32)).max() == 0     # constant map: NaN -> black


def test_grey_level_and_float_value_fall_on_different_sides_of_the_cut():
    m = np.zeros((6, 10), np.float32)
    m[2, 2] = 1.0                          # peak: grey 255, cut int(0.2 * 255) = 51
    m[2, 3:8] = 0.202                      # float 0.202 > 0.2, but its cubehelix grey level is 50 <= 51
    assert authors_grey(m)[2, 3] == 50
    assert box_of(PAPER, m) == [2, 2, 7, 2]                        # tight box of x 2..7 on row 2
    assert box_of(AUTHORS, m) == [2, 2, 3, 3]                      # only the peak survives: one past
    m[2, 3:8] = 0.21                                               # grey 52 > 51: both keep the row
    assert box_of(AUTHORS, m) == [2, 2, 8, 3]


# ---------------------------------------------------------------- IoU and hits


@pytest.mark.parametrize("a, b, expected", [
    ([0, 0, 9, 9], [0, 0, 9, 9], 1.0),                # identical
    ([0, 0, 9, 9], [2, 2, 6, 6], 25 / 100),           # inside: 5x5 in 10x10
    ([0, 0, 3, 2], [2, 1, 5, 4], 4 / 24),             # 4x3=12, 4x4=16, overlap 2x2=4, union 24
    ([1, 2, 5, 6], [3, 1, 4, 5], 8 / 27),             # wsolevaluation's case: 25 + 10 - 8 = 27
    ([0, 0, 4, 4], [4, 0, 8, 4], 5 / 45),             # touching: share column x=4 (5 pixels)
    ([0, 0, 4, 4], [5, 0, 9, 4], 0.0),                # adjacent, no shared pixel
    ([0, 0, 4, 4], [10, 10, 14, 14], 0.0),            # disjoint in x and y
    ([3, 3, 3, 3], [0, 0, 9, 9], 1 / 100),            # one pixel is a real box
    ([5, 5, 3, 3], [5, 5, 3, 3], 0.0),                # both degenerate: empty union -> 0
])
def test_iou_inclusive_clamped(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


def test_diagonal_disjoint_pair_is_a_hit_for_authors_only():
    a, b = [0, 0, 20, 20], [40, 40, 63, 63]
    # unclamped: (20 - 40 + 1)^2 = 361 "intersection", union 441 + 576 - 361 = 656
    assert iou(a, b, clamp=False) == pytest.approx(361 / 656)
    assert iou(a, b, clamp=True) == 0.0
    for protocol, hit in ((AUTHORS, 100.0), (PAPER, 0.0), (WSOL, 0.0)):
        ev = BoxEvaluator(protocol, [0.2])
        ev.add_box(a, b)
        assert ev.summary(0.2)["gt_known_loc"] == hit, protocol.name


def test_iou_of_exactly_one_half_is_a_hit_for_wsol_only():
    a, b = [0, 0, 9, 9], [0, 0, 9, 4]                             # 50 / 100 = 0.5
    hits = {}
    for protocol in (AUTHORS, PAPER, WSOL):
        ev = BoxEvaluator(protocol, [0.2])
        ev.add_box(a, b)
        hits[protocol.name] = ev.summary(0.2)["gt_known_loc"]
    assert hits == {"authors": 0.0, "paper": 0.0, "wsol": 100.0}   # > 0.5 vs >= 0.5


# ---------------------------------------------------------------- boxes per protocol


def test_unimodal_box_each_write_out():
    m = blob_map(6, 10, rows=(1, 3), cols=(2, 6))                  # pixels x 2..6, y 1..3
    # boundingRect (x=2, y=1, w=5, h=3)
    assert box_of(AUTHORS, m) == [2, 1, 7, 4]                      # [x, y, x+w, y+h]
    assert box_of(PAPER, m) == [2, 1, 6, 3]                        # tight inclusive box
    assert box_of(WSOL, m) == [2, 1, 7, 4]                         # min(7, W-1=9), min(4, H-1=5)


def test_box_at_the_border():
    m = blob_map(6, 10, rows=(3, 5), cols=(6, 9))                  # touches the bottom-right corner
    assert box_of(AUTHORS, m) == [6, 3, 10, 6]                     # x1 = W, y1 = H: outside the image
    assert box_of(PAPER, m) == [6, 3, 9, 5]
    assert box_of(WSOL, m) == [6, 3, 9, 5]                         # clipped
    assert whole_image_box(AUTHORS, (6, 10)).tolist() == [0, 0, 10, 6]
    assert whole_image_box(PAPER, (6, 10)).tolist() == [0, 0, 9, 5]


def test_threshold_is_strict_and_ties_keep_the_first_rectangle():
    m = np.zeros((4, 7), np.float32)
    m[1, 1] = 1.0                                                  # threshold 0.2 * 1
    m[1, 2] = 0.2                                                  # equal to the threshold: background
    m[1, 3] = 0.5                                                  # above: foreground, not 8-connected
    # two 1x1 components; OpenCV lists the last-found (raster order) first, and the first wins the tie
    assert box_of(PAPER, m) == [3, 1, 3, 1]
    m[1, 2] = 0.5                                                  # now one component x 1..3
    assert box_of(PAPER, m) == [1, 1, 3, 1]


def test_rect_area_vs_contour_area():
    m = np.zeros((7, 9), np.float32)
    for i in range(5):
        m[i, i] = 1.0                     # diagonal line (0,0)..(4,4): bbox 5x5 = 25, contour area 0
    m[4:7, 6:9] = 1.0                     # 3x3 square x 6..8, y 4..6: bbox 9, contour area 2x2 = 4
    assert box_of(AUTHORS, m) == [0, 0, 5, 5]
    assert box_of(PAPER, m) == [0, 0, 4, 4]
    assert box_of(WSOL, m) == [6, 4, 8, 6]                         # min(9, 8), min(7, 6)


def test_ring_hole_contour_does_not_shrink_the_box():
    m = blob_map(7, 9, rows=(1, 5), cols=(2, 7))
    m[3, 4] = 0.0                                                  # a hole inside (RETR_TREE lists it too)
    assert box_of(PAPER, m) == [2, 1, 7, 5]
    assert len(boxes_from_mask((m > 0).view(np.uint8), "all", "tight")) == 2   # outer + hole


def test_empty_maps_give_the_no_box():
    for protocol in (AUTHORS, PAPER, WSOL):
        assert box_of(protocol, np.zeros((5, 8), np.float32)) == [0, 0, 0, 0]
        assert box_of(protocol, np.full((5, 8), 3.0, np.float32)) == [0, 0, 0, 0]   # constant


# wsolevaluation's published expectations (evaluation_test.py), thresholds np.arange(0, 1, 0.2)
WSOL_UNIMODAL = np.array([[0.0, 0.0, 0.0, 0.0, 0.0],
                          [0.0, 0.4, 0.4, 0.4, 0.6],
                          [0.0, 0.4, 1.0, 0.8, 0.6],
                          [0.0, 0.4, 0.4, 0.4, 0.6]], np.float32)
WSOL_MULTIMODAL = np.array([[0.4, 0.0, 0.2, 0.2, 0.2],
                            [0.4, 0.4, 0.0, 0.4, 0.0],
                            [0.0, 0.0, 0.0, 0.4, 0.0],
                            [1.0, 0.6, 0.8, 0.2, 0.2]], np.float32)


def test_wsol_rule_matches_wsolevaluation_cases():
    ts = np.arange(0, 1, 0.2)
    assert [box_of(WSOL, WSOL_UNIMODAL, t) for t in ts] == [
        [1, 1, 4, 3], [1, 1, 4, 3], [2, 1, 4, 3], [2, 2, 4, 3], [2, 2, 3, 3]]
    assert [box_of(WSOL, WSOL_MULTIMODAL, t) for t in ts] == [
        [0, 0, 4, 3], [0, 0, 2, 2], [0, 3, 3, 3], [2, 3, 3, 3], [0, 3, 1, 3]]


def test_distinct_masks_traced_once_equal_one_by_one():
    rng = np.random.default_rng(1)
    m = resize_map(rng.random((4, 6)).astype(np.float32), (12, 20))
    ts = threshold_grid(0.05)
    for protocol in (AUTHORS, PAPER, WSOL, WSOL_MULTI):
        levels = protocol.level_map(m)
        cuts = protocol.cuts(levels, ts)
        boxes, owner = boxes_at_cuts(levels, cuts, protocol.pick, protocol.write)
        for cut, first in zip(cuts, owner):
            alone = boxes_from_mask((levels > cut).view(np.uint8), protocol.pick, protocol.write)
            assert boxes[first:first + len(alone)].tolist() == alone.tolist()


# ---------------------------------------------------------------- the one evaluator


def test_evaluator_metrics_on_a_hand_made_list():
    # image: gt box, top-5, label -> IoU of the fixed box [0, 0, 9, 9] under clamped IoU
    gts = [[0, 0, 9, 9], [0, 0, 9, 4], [0, 0, 9, 3], [0, 0, 9, 7], [50, 50, 60, 60]]   # IoU 1, .5, .4, .8, 0
    top5 = [[3, 1, 2, 0, 4], [1, 3, 0, 2, 4], [2, 0, 1, 3, 4], [4, 0, 1, 2, 3], [0, 1, 2, 3, 4]]
    labels = [3, 3, 2, 0, 9]
    ev = BoxEvaluator(WSOL, [0.2])                                  # IoU >= 0.5: images 0, 1, 3
    for gt, t5, label in zip(gts, top5, labels):
        ev.add_box([0, 0, 9, 9], gt, t5[0] == label, label in t5)
    # top-1 right: 0, 2; top-5 right: 0, 1, 2, 3
    assert ev.summary(0.2) == pytest.approx({"gt_known_loc": 60.0, "top1_loc": 20.0, "top1_clas": 40.0,
                                             "top5_loc": 60.0, "top5_clas": 80.0})
    with pytest.raises(ValueError):
        BoxEvaluator(WSOL, [0.2]).summary(0.2)                      # nothing evaluated
    with pytest.raises(ValueError):
        ev.summary(0.3)                                             # a threshold not in the list


def test_sweep_counts_per_threshold_over_the_whole_set_and_one_threshold_agrees():
    # image A is localised only at low thresholds, image B only at high ones
    a = np.zeros((6, 10), np.float32)
    a[1:5, 1:9] = 0.3                                              # wide low plateau = the object
    a[2:4, 4:6] = 1.0                                              # small peak
    b = np.full((6, 10), 0.3, np.float32)                          # the whole image glows a little,
    b[0, 0] = 0.0                                                  # (min 0: min-max keeps the values)
    b[1:4, 2:6] = 1.0                                              # the object is the peak
    gt = [[1, 1, 8, 4], [2, 1, 5, 3]]
    sweep = BoxEvaluator(WSOL, [0.1, 0.5])
    single = BoxEvaluator(WSOL, [0.5])
    for m, g, top1 in zip((a, b), gt, (True, False)):
        sweep.accumulate(WSOL.level_map(m), g, top1, True)
        single.accumulate(WSOL.level_map(m), g, top1, True)
    res = sweep.sweep()
    # t=0.1: A box [1,1,9,5] IoU 32/45; B box whole image [0,0,9,5] IoU 12/60 -> 1 of 2 = 50%
    # t=0.5: A box [4,2,6,4] IoU 9/32; B box [2,1,6,4] IoU 12/20 -> 1 of 2 = 50%
    assert res["gt_known_loc"] == [50.0, 50.0]                     # never 100: no "any threshold"
    assert res["top1_loc"] == [50.0, 0.0]
    assert res["best"] == {"threshold": 0.1, "max_box_acc": 50.0, "top1_loc": 50.0, "top5_loc": 50.0}
    assert single.summary(0.5) == sweep.summary(0.5)               # a list of length one is the same
    json.dumps(res)


# ---------------------------------------------------------------- MaxBoxAccV2


def two_blob_map():
    """12 x 16 map: a big weak blob (rows 1-6, cols 1-8) and a small strong one (rows 8-10, cols 11-14)."""
    m = np.zeros((12, 16), np.float32)
    m[1:7, 1:9] = 0.5
    m[8:11, 11:15] = 1.0
    return m


def test_every_contour_box_beats_the_largest_contour_box():
    m, gt = two_blob_map(), [11, 8, 14, 10]                        # the object is the small blob
    levels = WSOL.level_map(m)
    largest = BoxEvaluator(WSOL, [0.2])
    ious, boxes = largest.accumulate(levels, gt, True, True)
    assert boxes[0].tolist() == [1, 1, 9, 7] and ious[0] == 0.0    # the big blob: disjoint from gt
    every = BoxEvaluator(WSOL_MULTI, [0.2])
    ious, boxes = every.accumulate(WSOL_MULTI.level_map(m), gt, True, True)
    # small blob: rect (11, 8, 4, 3) -> [11, 8, 15, 11] (inside W-1 = 15, H-1 = 11), area 20; gt area 12
    assert boxes[0].tolist() == [11, 8, 15, 11] and ious[0] == pytest.approx(12 / 20)


def test_maxboxacc_v2_at_iou_030_050_070():
    # one map, three images with different gt boxes; at threshold 0.2 both blobs survive, at 0.6 only the small
    m = two_blob_map()
    gts = [[11, 8, 14, 10],       # IoU with [11, 8, 15, 11] = 12/20 = 0.6: hit at .3 and .5, not .7
           [11, 8, 15, 11],       # 1.0 at every IoU
           [1, 1, 4, 3]]          # vs big blob [1, 1, 9, 7] 12/63 = 0.19: no hit (small blob disjoint)
    ev = BoxEvaluator(WSOL_MULTI, THRESHOLDS, (0.3, 0.5, 0.7))
    for gt, top1 in zip(gts, (True, False, True)):
        ev.accumulate(WSOL_MULTI.level_map(m), gt, top1, True)
    out = maxboxacc_v2(ev)
    assert out["by_iou"]["30"]["box_acc"] == pytest.approx(200 / 3)
    assert out["by_iou"]["50"]["box_acc"] == pytest.approx(200 / 3)
    assert out["by_iou"]["70"]["box_acc"] == pytest.approx(100 / 3)
    assert out["maxboxacc_v2"] == pytest.approx((200 / 3 + 200 / 3 + 100 / 3) / 3)
    # Top-1 Loc: image 0 (top-1 right) hits at .3/.5 only; image 1 is top-1 wrong
    assert [out["by_iou"][k]["top1_loc"] for k in ("30", "50", "70")] == pytest.approx([100 / 3, 100 / 3, 0])
    assert out["by_iou"]["30"]["box_acc_threshold"] == 0.0
    chosen = maxboxacc_v2(ev, chosen_on=ev)                        # held-out = the same set: same numbers
    assert chosen["maxboxacc_v2"] == out["maxboxacc_v2"]


# ---------------------------------------------------------------- baselines


def test_whole_image_and_best_fixed_box_on_a_tiny_set():
    shape = (6, 8)                                                 # H=6, W=8
    train = [[0, 0, 3, 3], [0, 0, 3, 3], [1, 1, 3, 3], [4, 2, 7, 5]]
    box, hits = best_fixed_box(train, shape, PAPER)
    # [0, 0, 3, 3] hits itself twice (IoU 1) and [1, 1, 3, 3] (9/16 > 0.5): 3; nothing hits all 4
    assert hits == 3 and iou(box, [0, 0, 3, 3]) > 0.5 and iou(box, [1, 1, 3, 3]) > 0.5
    assert box.tolist() == [0, 0, 3, 3]                            # the first such box in (x0, x1, y0, y1) order
    val = [[0, 0, 3, 3], [0, 0, 7, 5], [4, 2, 7, 5]]
    for protocol, whole_hits in ((PAPER, 1), (AUTHORS, 1)):
        ev = BoxEvaluator(protocol, [0.0])
        for gt in val:
            ev.add_box(whole_image_box(protocol, shape), gt)
        # whole image vs [0,0,7,5]: paper IoU 1; authors [0,0,8,6] 48/63 > .5; others 16/48, 16/48 (< .5)
        assert ev.summary(0.0)["gt_known_loc"] == pytest.approx(100 * whole_hits / 3)


def test_fixed_box_local_search_finds_a_good_box_on_a_larger_set():
    rng = np.random.default_rng(0)
    x0 = rng.integers(10, 14, 400)
    y0 = rng.integers(5, 9, 400)
    train = np.stack([x0, y0, x0 + 30, y0 + 20], axis=1)          # boxes near [12, 7, 42, 27] on 48 x 64
    box, hits = best_fixed_box(train, (48, 64), PAPER)
    assert hits >= 0.95 * len(train)
    assert hits == int((iou(train, box) > 0.5).sum())


# ---------------------------------------------------------------- pictures and files


def test_heatmap_is_tensorpacks_colour_rendering():
    from tensorpack.utils import viz
    m = np.linspace(0, 1, 15).reshape(3, 5)
    expected = viz.intensity_to_rgb(m.copy(), normalize=False).astype(np.uint8)[..., ::-1]
    np.testing.assert_array_equal(vis.heatmap(m), expected)
    assert vis.heatmap(np.array([[0.0, 1.0]]))[0].tolist() == [[0, 0, 0], [255, 255, 255]]


def test_figure_panels_draw_boxes_in_the_right_place(tmp_path):
    image = np.zeros((6, 10, 3), np.uint8)
    scoremap = blob_map(6, 10, rows=(1, 3), cols=(2, 6))
    panel = vis.figure_panels(image, scoremap, [0, 0, 9, 5], [2, 1, 6, 3], scale=2, caption="x")
    assert panel.shape[1] == 3 * 10 * 2 + 2 * 2
    assert tuple(panel[0, 0]) == vis.GT_COLOR                      # gt box outlines the whole image
    assert tuple(panel[2, 4]) == vis.PRED_COLOR                    # estimate starts at pixel (2, 1) * 2
    assert tuple(panel[2 * 4 - 1, 2 * 7 - 1]) == vis.PRED_COLOR    # and ends at (6, 3) inclusive
    out = tmp_path / "grid.png"
    fileio.write_png(str(out), vis.grid([panel, panel, panel], columns=2))
    assert cv2.imread(str(out)).shape[:2] == (2 * (panel.shape[0] + 8) + 8, 2 * (panel.shape[1] + 8) + 8)


def test_plot_sweep_draws_the_curves():
    sweep = {"thresholds": [0.0, 0.5, 1.0], "gt_known_loc": [10.0, 60.0, 0.0], "top1_loc": [5.0, 30.0, 0.0]}
    img = vis.plot_sweep({"paper": sweep}, marks=[(0.2, "0.2")], size=(200, 300))
    assert img.shape == (200, 300, 3) and img.dtype == np.uint8
    blue = (img[..., 0] > 150) & (img[..., 1] < 140) & (img[..., 2] < 100)   # matplotlib's C0 line
    assert blue.sum() > 50


def test_top_k_classes_few_classes_and_ties():
    logits = np.array([[0.1, 0.9, 0.5], [1.0, 1.0, 0.0]])
    assert top_k_classes(logits).tolist() == [[1, 2, 0], [0, 1, 2]]   # K=3 < 5: all classes
    assert top_k_classes(logits, k=1).tolist() == [[1], [0]]


def test_threshold_grid():
    grid = threshold_grid(0.01)
    assert len(grid) == 101 and grid[0] == 0.0 and grid[-1] == 1.0 and grid[20] == 0.2
    for bad in (0.03, 0.0, -0.1):
        with pytest.raises(ValueError):
            threshold_grid(bad)
