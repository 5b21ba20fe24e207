"""cam/ from boxes to numbers: IoU and hits, the one evaluator, MaxBoxAccV2, baselines, top-k, thresholds.

Every expected number below is worked out by hand in the comment beside it.
Maps are non-square (H != W) so that a width/height swap fails a test.
"""

import json

import numpy as np
import pytest

from cam import PROTOCOLS, WSOL_MULTI, BoxEvaluator, iou, threshold_grid, top_k_classes
from cam.baselines import best_fixed_box
from cam.maxboxacc import THRESHOLDS, maxboxacc_v2
from cam.protocols import whole_image_box

AUTHORS, PAPER, WSOL = PROTOCOLS["authors"], PROTOCOLS["paper"], PROTOCOLS["wsol"]


# ---------------------------------------------------------------- IoU and hits


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([0, 0, 9, 9], [0, 0, 9, 9], 1.0),  # identical
        ([0, 0, 9, 9], [2, 2, 6, 6], 25 / 100),  # inside: 5x5 in 10x10
        ([0, 0, 3, 2], [2, 1, 5, 4], 4 / 24),  # 4x3=12, 4x4=16, overlap 2x2=4, union 24
        ([1, 2, 5, 6], [3, 1, 4, 5], 8 / 27),  # wsolevaluation's case: 25 + 10 - 8 = 27
        ([0, 0, 4, 4], [4, 0, 8, 4], 5 / 45),  # touching: share column x=4 (5 pixels)
        ([0, 0, 4, 4], [5, 0, 9, 4], 0.0),  # adjacent, no shared pixel
        ([0, 0, 4, 4], [10, 10, 14, 14], 0.0),  # disjoint in x and y
        ([3, 3, 3, 3], [0, 0, 9, 9], 1 / 100),  # one pixel is a real box
        ([5, 5, 3, 3], [5, 5, 3, 3], 0.0),  # both degenerate: empty union -> 0
    ],
)
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
    a, b = [0, 0, 9, 9], [0, 0, 9, 4]  # 50 / 100 = 0.5
    hits = {}
    for protocol in (AUTHORS, PAPER, WSOL):
        ev = BoxEvaluator(protocol, [0.2])
        ev.add_box(a, b)
        hits[protocol.name] = ev.summary(0.2)["gt_known_loc"]
    assert hits == {"authors": 0.0, "paper": 0.0, "wsol": 100.0}  # > 0.5 vs >= 0.5


# ---------------------------------------------------------------- the one evaluator


def test_evaluator_metrics_on_a_hand_made_list():
    # image: gt box, top-5, label -> IoU of the fixed box [0, 0, 9, 9] under clamped IoU
    gts = [
        [0, 0, 9, 9],
        [0, 0, 9, 4],
        [0, 0, 9, 3],
        [0, 0, 9, 7],
        [50, 50, 60, 60],
    ]  # IoU 1, .5, .4, .8, 0
    top5 = [[3, 1, 2, 0, 4], [1, 3, 0, 2, 4], [2, 0, 1, 3, 4], [4, 0, 1, 2, 3], [0, 1, 2, 3, 4]]
    labels = [3, 3, 2, 0, 9]
    ev = BoxEvaluator(WSOL, [0.2])  # IoU >= 0.5: images 0, 1, 3
    for gt, t5, label in zip(gts, top5, labels):
        ev.add_box([0, 0, 9, 9], gt, t5[0] == label, label in t5)
    # top-1 right: 0, 2; top-5 right: 0, 1, 2, 3
    assert ev.summary(0.2) == pytest.approx(
        {
            "gt_known_loc": 60.0,
            "top1_loc": 20.0,
            "top1_clas": 40.0,
            "top5_loc": 60.0,
            "top5_clas": 80.0,
        }
    )
    with pytest.raises(ValueError):
        BoxEvaluator(WSOL, [0.2]).summary(0.2)  # nothing evaluated
    with pytest.raises(ValueError):
        ev.summary(0.3)  # a threshold not in the list


def test_sweep_counts_per_threshold_over_the_whole_set_and_one_threshold_agrees():
    # image A is localised only at low thresholds, image B only at high ones
    a = np.zeros((6, 10), np.float32)
    a[1:5, 1:9] = 0.3  # wide low plateau = the object
    a[2:4, 4:6] = 1.0  # small peak
    b = np.full((6, 10), 0.3, np.float32)  # the whole image glows a little,
    b[0, 0] = 0.0  # (min 0: min-max keeps the values)
    b[1:4, 2:6] = 1.0  # the object is the peak
    gt = [[1, 1, 8, 4], [2, 1, 5, 3]]
    sweep = BoxEvaluator(WSOL, [0.1, 0.5])
    single = BoxEvaluator(WSOL, [0.5])
    for m, g, top1 in zip((a, b), gt, (True, False)):
        sweep.accumulate(WSOL.level_map(m), g, top1, True)
        single.accumulate(WSOL.level_map(m), g, top1, True)
    res = sweep.sweep()
    # t=0.1: A box [1,1,9,5] IoU 32/45; B box whole image [0,0,9,5] IoU 12/60 -> 1 of 2 = 50%
    # t=0.5: A box [4,2,6,4] IoU 9/32; B box [2,1,6,4] IoU 12/20 -> 1 of 2 = 50%
    assert res["gt_known_loc"] == [50.0, 50.0]  # never 100: no "any threshold"
    assert res["top1_loc"] == [50.0, 0.0]
    assert res["best"] == {
        "threshold": 0.1,
        "max_box_acc": 50.0,
        "top1_loc": 50.0,
        "top5_loc": 50.0,
    }
    assert single.summary(0.5) == sweep.summary(0.5)  # a list of length one is the same
    json.dumps(res)


# ---------------------------------------------------------------- MaxBoxAccV2


def two_blob_map():
    """12 x 16 map: a big weak blob (rows 1-6, cols 1-8) and a small strong one (rows 8-10, cols 11-14)."""
    m = np.zeros((12, 16), np.float32)
    m[1:7, 1:9] = 0.5
    m[8:11, 11:15] = 1.0
    return m


def test_every_contour_box_beats_the_largest_contour_box():
    m, gt = two_blob_map(), [11, 8, 14, 10]  # the object is the small blob
    levels = WSOL.level_map(m)
    largest = BoxEvaluator(WSOL, [0.2])
    ious, boxes = largest.accumulate(levels, gt, True, True)
    assert boxes[0].tolist() == [1, 1, 9, 7] and ious[0] == 0.0  # the big blob: disjoint from gt
    every = BoxEvaluator(WSOL_MULTI, [0.2])
    ious, boxes = every.accumulate(WSOL_MULTI.level_map(m), gt, True, True)
    # small blob: rect (11, 8, 4, 3) -> [11, 8, 15, 11] (inside W-1 = 15, H-1 = 11), area 20; gt area 12
    assert boxes[0].tolist() == [11, 8, 15, 11] and ious[0] == pytest.approx(12 / 20)


def test_maxboxacc_v2_at_iou_030_050_070():
    # one map, three images with different gt boxes; at threshold 0.2 both blobs survive, at 0.6 only the small
    m = two_blob_map()
    gts = [
        [11, 8, 14, 10],  # IoU with [11, 8, 15, 11] = 12/20 = 0.6: hit at .3 and .5, not .7
        [11, 8, 15, 11],  # 1.0 at every IoU
        [1, 1, 4, 3],
    ]  # vs big blob [1, 1, 9, 7] 12/63 = 0.19: no hit (small blob disjoint)
    ev = BoxEvaluator(WSOL_MULTI, THRESHOLDS, (0.3, 0.5, 0.7))
    for gt, top1 in zip(gts, (True, False, True)):
        ev.accumulate(WSOL_MULTI.level_map(m), gt, top1, True)
    out = maxboxacc_v2(ev)
    assert out["by_iou"]["30"]["box_acc"] == pytest.approx(200 / 3)
    assert out["by_iou"]["50"]["box_acc"] == pytest.approx(200 / 3)
    assert out["by_iou"]["70"]["box_acc"] == pytest.approx(100 / 3)
    assert out["maxboxacc_v2"] == pytest.approx((200 / 3 + 200 / 3 + 100 / 3) / 3)
    # Top-1 Loc: image 0 (top-1 right) hits at .3/.5 only; image 1 is top-1 wrong
    assert [out["by_iou"][k]["top1_loc"] for k in ("30", "50", "70")] == pytest.approx(
        [100 / 3, 100 / 3, 0]
    )
    assert out["by_iou"]["30"]["box_acc_threshold"] == 0.0
    chosen = maxboxacc_v2(ev, chosen_on=ev)  # held-out = the same set: same numbers
    assert chosen["maxboxacc_v2"] == out["maxboxacc_v2"]


# ---------------------------------------------------------------- baselines


def test_whole_image_and_best_fixed_box_on_a_tiny_set():
    shape = (6, 8)  # H=6, W=8
    train = [[0, 0, 3, 3], [0, 0, 3, 3], [1, 1, 3, 3], [4, 2, 7, 5]]
    box, hits = best_fixed_box(train, shape, PAPER)
    # [0, 0, 3, 3] hits itself twice (IoU 1) and [1, 1, 3, 3] (9/16 > 0.5): 3; nothing hits all 4
    assert hits == 3 and iou(box, [0, 0, 3, 3]) > 0.5 and iou(box, [1, 1, 3, 3]) > 0.5
    assert box.tolist() == [0, 0, 3, 3]  # the first such box in (x0, x1, y0, y1) order
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
    train = np.stack([x0, y0, x0 + 30, y0 + 20], axis=1)  # boxes near [12, 7, 42, 27] on 48 x 64
    box, hits = best_fixed_box(train, (48, 64), PAPER)
    assert hits >= 0.95 * len(train)
    assert hits == int((iou(train, box) > 0.5).sum())


def test_top_k_classes_few_classes_and_ties():
    logits = np.array([[0.1, 0.9, 0.5], [1.0, 1.0, 0.0]])
    assert top_k_classes(logits).tolist() == [[1, 2, 0], [0, 1, 2]]  # K=3 < 5: all classes
    assert top_k_classes(logits, k=1).tolist() == [[1], [0]]


def test_threshold_grid():
    grid = threshold_grid(0.01)
    assert len(grid) == 101 and grid[0] == 0.0 and grid[-1] == 1.0 and grid[20] == 0.2
    for bad in (0.03, 0.0, -0.1):
        with pytest.raises(ValueError):
            threshold_grid(bad)
