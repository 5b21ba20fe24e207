"""cam/ from maps to boxes: CAMs, resize, the authors' grey level, each protocol's boxes, the pictures.

Every expected number below is worked out by hand in the comment beside it.
Maps are non-square (H != W) so that a width/height swap fails a test.
"""

import cv2
import matplotlib
import numpy as np
import pytest

import fileio
from cam import (
    PROTOCOLS,
    WSOL_MULTI,
    class_activation_maps,
    normalize_map,
    resize_map,
    threshold_grid,
)
from cam import vis
from cam.box import boxes_at_cuts, boxes_from_mask
from cam.protocols import authors_grey, whole_image_box


AUTHORS, PAPER, WSOL = PROTOCOLS["authors"], PROTOCOLS["paper"], PROTOCOLS["wsol"]


def box_of(protocol, scoremap, threshold=0.2):
    """The single box of ``protocol`` at one threshold, as a list."""
    levels = protocol.level_map(np.asarray(scoremap, np.float32))
    boxes, owner = boxes_at_cuts(
        levels, protocol.cuts(levels, [threshold]), protocol.pick, protocol.write
    )
    return boxes[owner[0]].tolist()


def blob_map(height, width, rows, cols, value=1.0):
    m = np.zeros((height, width), np.float32)
    m[rows[0] : rows[1] + 1, cols[0] : cols[1] + 1] = value
    return m


# ---------------------------------------------------------------- CAM and resize


def test_cam_mean_plus_bias_is_the_logit():
    rng = np.random.default_rng(0)
    features = rng.random((3, 2, 5, 4)).astype(np.float32)  # N=3, h=2, w=5, C=4 (NHWC)
    fc_w = rng.normal(size=(4, 6)).astype(np.float32)  # C=4 -> K=6 classes
    fc_b = rng.normal(size=6).astype(np.float32)
    logits = features.mean(axis=(1, 2)) @ fc_w + fc_b  # GAP + FC
    classes = np.array([5, 0, 2])
    cams = class_activation_maps(features, fc_w, classes)
    assert cams.shape == (3, 2, 5) and cams.dtype == np.float32
    np.testing.assert_allclose(
        cams.mean(axis=(1, 2)) + fc_b[classes], logits[np.arange(3), classes], rtol=1e-5, atol=1e-5
    )


def test_cam_is_the_weighted_channel_sum():
    features = np.zeros((1, 1, 2, 3), np.float32)
    features[0, 0, 0] = [1, 2, 3]
    features[0, 0, 1] = [0, 1, 0]
    fc_w = np.array([[1, 0], [10, 0], [100, 0]], np.float32)  # class 0 weights (1, 10, 100)
    # pixel (0,0): 1 + 20 + 300 = 321; pixel (0,1): 10
    np.testing.assert_array_equal(class_activation_maps(features, fc_w, [0])[0], [[321, 10]])
    with pytest.raises(ValueError):
        class_activation_maps(features, fc_w, [2])  # class out of range


def test_resize_takes_height_then_width_bilinear_and_cubic():
    cam = np.arange(6, dtype=np.float32).reshape(2, 3)  # h=2, w=3
    for resize, flag in (("bilinear", cv2.INTER_LINEAR), ("cubic", cv2.INTER_CUBIC)):
        out = resize_map(cam, (4, 6), resize)  # (H, W) = (4, 6)
        assert out.shape == (4, 6)
        np.testing.assert_array_equal(out, cv2.resize(cam, (6, 4), interpolation=flag))
    assert not np.array_equal(resize_map(cam, (4, 6), "bilinear"), resize_map(cam, (4, 6), "cubic"))
    assert resize_map(cam, (5, 9), "cubic").shape == (
        5,
        9,
    )  # (H, W) = (5, 9): non-square, both ways


def test_normalize_min_max_and_degenerate_maps():
    np.testing.assert_allclose(normalize_map(np.array([[2.0, 4.0, 3.0]])), [[0.0, 1.0, 0.5]])
    assert not normalize_map(np.full((2, 3), 7.0)).any()  # constant -> zeros
    assert not normalize_map(np.array([[0.0, np.nan, 1.0]])).any()  # non-finite -> zeros


# ---------------------------------------------------------------- the authors' grey level


def test_grey_pipeline_equals_matplotlib_and_opencv_calls():
    rng = np.random.default_rng(3)
    resized = cv2.resize(rng.normal(size=(4, 5)).astype(np.float32), (10, 7))  # (H, W) = (7, 10)
    # SN-ResNet codes/utils_loc.py, written out with the library calls themselves
    x = resized.astype("float")
    x -= x.min()
    x /= x.max()
    rgb = matplotlib.colormaps["cubehelix"](x)[..., :3].astype("float32") * 255.0
    expected = cv2.cvtColor(rgb.astype("uint8"), cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(authors_grey(resized), expected)
    from tensorpack.utils import viz  # and tensorpack's own function

    tp = cv2.cvtColor(
        viz.intensity_to_rgb(resized.copy(), normalize=True).astype("uint8"), cv2.COLOR_RGB2GRAY
    )
    np.testing.assert_array_equal(authors_grey(resized), tp)
    assert authors_grey(np.full((3, 4), 2.0, np.float32)).max() == 0  # constant map: NaN -> black


def test_grey_level_and_float_value_fall_on_different_sides_of_the_cut():
    m = np.zeros((6, 10), np.float32)
    m[2, 2] = 1.0  # peak: grey 255, cut int(0.2 * 255) = 51
    m[2, 3:8] = 0.202  # float 0.202 > 0.2, but its cubehelix grey level is 50 <= 51
    assert authors_grey(m)[2, 3] == 50
    assert box_of(PAPER, m) == [2, 2, 7, 2]  # tight box of x 2..7 on row 2
    assert box_of(AUTHORS, m) == [2, 2, 3, 3]  # only the peak survives: one past
    m[2, 3:8] = 0.21  # grey 52 > 51: both keep the row
    assert box_of(AUTHORS, m) == [2, 2, 8, 3]


# ---------------------------------------------------------------- boxes per protocol


def test_unimodal_box_each_write_out():
    m = blob_map(6, 10, rows=(1, 3), cols=(2, 6))  # pixels x 2..6, y 1..3
    # boundingRect (x=2, y=1, w=5, h=3)
    assert box_of(AUTHORS, m) == [2, 1, 7, 4]  # [x, y, x+w, y+h]
    assert box_of(PAPER, m) == [2, 1, 6, 3]  # tight inclusive box
    assert box_of(WSOL, m) == [2, 1, 7, 4]  # min(7, W-1=9), min(4, H-1=5)


def test_box_at_the_border():
    m = blob_map(6, 10, rows=(3, 5), cols=(6, 9))  # touches the bottom-right corner
    assert box_of(AUTHORS, m) == [6, 3, 10, 6]  # x1 = W, y1 = H: outside the image
    assert box_of(PAPER, m) == [6, 3, 9, 5]
    assert box_of(WSOL, m) == [6, 3, 9, 5]  # clipped
    assert whole_image_box(AUTHORS, (6, 10)).tolist() == [0, 0, 10, 6]
    assert whole_image_box(PAPER, (6, 10)).tolist() == [0, 0, 9, 5]


def test_threshold_is_strict_and_ties_keep_the_first_rectangle():
    m = np.zeros((4, 7), np.float32)
    m[1, 1] = 1.0  # threshold 0.2 * 1
    m[1, 2] = 0.2  # equal to the threshold: background
    m[1, 3] = 0.5  # above: foreground, not 8-connected
    # two 1x1 components; OpenCV lists the last-found (raster order) first, and the first wins the tie
    assert box_of(PAPER, m) == [3, 1, 3, 1]
    m[1, 2] = 0.5  # now one component x 1..3
    assert box_of(PAPER, m) == [1, 1, 3, 1]


def test_rect_area_vs_contour_area():
    m = np.zeros((7, 9), np.float32)
    for i in range(5):
        m[i, i] = 1.0  # diagonal line (0,0)..(4,4): bbox 5x5 = 25, contour area 0
    m[4:7, 6:9] = 1.0  # 3x3 square x 6..8, y 4..6: bbox 9, contour area 2x2 = 4
    assert box_of(AUTHORS, m) == [0, 0, 5, 5]
    assert box_of(PAPER, m) == [0, 0, 4, 4]
    assert box_of(WSOL, m) == [6, 4, 8, 6]  # min(9, 8), min(7, 6)


def test_ring_hole_contour_does_not_shrink_the_box():
    m = blob_map(7, 9, rows=(1, 5), cols=(2, 7))
    m[3, 4] = 0.0  # a hole inside (RETR_TREE lists it too)
    assert box_of(PAPER, m) == [2, 1, 7, 5]
    assert len(boxes_from_mask((m > 0).view(np.uint8), "all", "tight")) == 2  # outer + hole


def test_empty_maps_give_the_no_box():
    for protocol in (AUTHORS, PAPER, WSOL):
        assert box_of(protocol, np.zeros((5, 8), np.float32)) == [0, 0, 0, 0]
        assert box_of(protocol, np.full((5, 8), 3.0, np.float32)) == [0, 0, 0, 0]  # constant


# wsolevaluation's published expectations (evaluation_test.py), thresholds np.arange(0, 1, 0.2)
WSOL_UNIMODAL = np.array(
    [
        [0.0, 0.0, 0.0, 0.0, 0.0],
        [0.0, 0.4, 0.4, 0.4, 0.6],
        [0.0, 0.4, 1.0, 0.8, 0.6],
        [0.0, 0.4, 0.4, 0.4, 0.6],
    ],
    np.float32,
)


WSOL_MULTIMODAL = np.array(
    [
        [0.4, 0.0, 0.2, 0.2, 0.2],
        [0.4, 0.4, 0.0, 0.4, 0.0],
        [0.0, 0.0, 0.0, 0.4, 0.0],
        [1.0, 0.6, 0.8, 0.2, 0.2],
    ],
    np.float32,
)


def test_wsol_rule_matches_wsolevaluation_cases():
    ts = np.arange(0, 1, 0.2)
    assert [box_of(WSOL, WSOL_UNIMODAL, t) for t in ts] == [
        [1, 1, 4, 3],
        [1, 1, 4, 3],
        [2, 1, 4, 3],
        [2, 2, 4, 3],
        [2, 2, 3, 3],
    ]
    assert [box_of(WSOL, WSOL_MULTIMODAL, t) for t in ts] == [
        [0, 0, 4, 3],
        [0, 0, 2, 2],
        [0, 3, 3, 3],
        [2, 3, 3, 3],
        [0, 3, 1, 3],
    ]


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
            assert boxes[first : first + len(alone)].tolist() == alone.tolist()


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
    assert tuple(panel[0, 0]) == vis.GT_COLOR  # gt box outlines the whole image
    assert tuple(panel[2, 4]) == vis.PRED_COLOR  # estimate starts at pixel (2, 1) * 2
    assert tuple(panel[2 * 4 - 1, 2 * 7 - 1]) == vis.PRED_COLOR  # and ends at (6, 3) inclusive
    # issue 24: the blue ground truth vanished on a blue object; a white edge now surrounds each box
    blue = np.full((6, 10, 3), vis.GT_COLOR, np.uint8)
    boxed = vis.figure_panels(blue, scoremap, [2, 2, 7, 4], [2, 2, 7, 4], scale=2)
    assert (
        tuple(boxed[4, 3]) == tuple(boxed[3, 8]) == vis.HALO_COLOR != vis.GT_COLOR
    )  # just outside the box
    two_lines = vis.figure_panels(
        image, scoremap, [0, 0, 9, 5], [2, 1, 6, 3], scale=2, caption="x\ny"
    )
    assert two_lines.shape[0] > panel.shape[0] >= 6 * 2 + 12  # a caption line per \n, legible
    out = tmp_path / "grid.png"
    fileio.write_png(str(out), vis.grid([panel, panel, panel], columns=2))
    assert cv2.imread(str(out)).shape[:2] == (
        2 * (panel.shape[0] + 8) + 8,
        2 * (panel.shape[1] + 8) + 8,
    )


def test_plot_sweep_draws_the_curves():
    sweep = {
        "thresholds": [0.0, 0.5, 1.0],
        "gt_known_loc": [10.0, 60.0, 0.0],
        "top1_loc": [5.0, 30.0, 0.0],
    }
    img = vis.plot_sweep({"paper": sweep}, marks=[(0.2, "0.2")], size=(200, 300))
    assert img.shape == (200, 300, 3) and img.dtype == np.uint8
    blue = (img[..., 0] > 150) & (img[..., 1] < 140) & (img[..., 2] < 100)  # matplotlib's C0 line
    assert blue.sum() > 50
