"""Tests of augment/: Hide-and-Seek, the colour jitter and flip, the five methods, seeding, the preview.

GoogLeNet Resize: test_googlenet_resize.py.  Images are non-square (30x50) on
purpose: width/height swaps are the classic bug of the public code (docs/sources.md).
"""

import cv2
import numpy as np
import pytest

from augment.googlenet_resize import GoogLeNetResize
from augment.hide_and_seek import HideAndSeek, cells_to_mask, sample_hidden_cells
from augment.methods import augmentor_list, augmentors_for, seed_augmentors
from augment.registry import names, paper_methods
from tensorpack.dataflow import AugmentImageComponent, DataFromList, imgaug


def _image(h, w, high=50, seed=0):
    """HxWx3 uint8 with values in [0, high): never equal to a fill of 200."""
    return np.random.RandomState(seed).randint(0, high, (h, w, 3)).astype(np.uint8)


FILL = (101.4, 114.3, 122.5)  # any BGR fill; the training flow passes the split's mean


def _apply(augs, img):
    return augs.augment(img)


# ---------------------------------------------------------------- HnS


def test_cells_to_mask_by_hand_cuts_the_last_row_and_column_short():
    cells = np.array([[1, 0, 1], [0, 1, 0]], bool)
    expected = np.array([[1, 1, 0, 0, 1], [1, 1, 0, 0, 1], [0, 0, 1, 1, 0]], bool)
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
            got = out[i * p : (i + 1) * p, j * p : (j + 1) * p]
            if cells[i, j]:
                assert (got == np.array([200, 201, 202], np.uint8)).all()
            else:
                np.testing.assert_array_equal(got, img[i * p : (i + 1) * p, j * p : (j + 1) * p])


def test_hns_draws_each_patch_size_uniformly_and_cells_with_hide_prob():
    rng = np.random.RandomState(6)
    draws = [sample_hidden_cells(64, 64, rng, (0, 16, 8, 4), 0.5) for _ in range(4000)]
    patches = np.array([p for p, _ in draws])
    for p in (0, 16, 8, 4):
        assert abs((patches == p).mean() - 0.25) < 0.03
    assert {c.shape for p, c in draws if p == 16} == {
        (4, 4)
    }  # paper sec. 3: 4x4 grid = 16 px cells
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


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(hide_prob=1.5),
        dict(patch_sizes=(-1,)),
        dict(patch_sizes=()),
        dict(patch_sizes=(2.5,)),
        dict(fill=(1, 2)),
        dict(fill=(0, 0, 300)),
    ],
)
def test_hns_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        HideAndSeek(**{"fill": FILL, **kwargs})


# ---------------------------------------------------------------- methods and seeding


def test_methods_build_augmentors_in_the_named_order():
    kinds = {m: [type(a) for a in augmentors_for(m, FILL).augmentors] for m in paper_methods()}
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
    for m in names():
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
    for method in names():
        flow = AugmentImageComponent(
            DataFromList(imgs, shuffle=False), augmentor_list(method, FILL, jitter=True)
        )
        flow.reset_state()
        out = [dp[0] for dp in flow]
        assert len(out) == 4 and all(o.shape == (30, 50, 3) and o.dtype == np.uint8 for o in out)


def test_lighting_constants_are_fb_resnet_torch_in_bgr():
    # fb.resnet.torch's PCA lighting in RGB, as its transforms.lua computes it, on a reversed image
    from augment.methods import (
        LIGHTING_EIGVAL_BGR,
        LIGHTING_EIGVEC_BGR,
        _PCA_EIGVAL_RGB,
        _PCA_EIGVEC_RGB,
    )

    alpha_bgr = np.array([0.3, -1.2, 0.7], np.float32)
    bgr = np.full((2, 3, 3), 100, np.float32)
    lighting = imgaug.Lighting(
        0.1, eigval=LIGHTING_EIGVAL_BGR, eigvec=LIGHTING_EIGVEC_BGR, clip=False
    )
    out = lighting._augment(bgr, alpha_bgr)
    alpha_rgb = alpha_bgr[::-1]  # eigenvalue k of the BGR list is eigenvalue 2 - k of the RGB list
    rgb_shift = np.array(_PCA_EIGVEC_RGB) @ (alpha_rgb * np.array(_PCA_EIGVAL_RGB) * 255)
    np.testing.assert_allclose(out[0, 0], 100 + rgb_shift[::-1], rtol=1e-5)


# ---------------------------------------------------------------- preview


def test_preview_writes_a_grid_with_one_row_per_image(tiny_data, tmp_path):
    from tools import preview

    out = tmp_path / "grid.png"
    grid_size = "--count 3 --draws 2 --scale 1".split()
    preview.main(["--data", tiny_data, "--method", "gr", "--out", str(out), *grid_size])
    grid = cv2.imread(str(out))
    h, w = 32, 40  # conftest.TINY
    assert grid.shape == (
        preview.HEADER + 3 * (h + preview.GAP),
        preview.GAP + 3 * (w + preview.GAP),
        3,
    )


def test_preview_all_has_one_column_per_method():
    from tools import preview

    labels = [label for label, _ in preview.columns("all", draws=5)]
    assert labels[:5] == [
        "original (cam)",
        "hns",
        "gr",
        "hns_after_gr",
        "gr_after_hns",
    ]  # then any other
    assert len(labels) == len(names())


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            ["--data", "/no/such/dir", "--out", "{tmp}/g.png"],
            "argument --data: /no/such/dir: no such directory",
        ),
        (["--data", "{data}", "--out", "{tmp}/missing/g.png"], "does not exist"),
        (["--data", "{data}", "--out", "{tmp}/g.jpg"], "must end in .png"),
        (["--data", "{data}", "--out", "{tmp}/g.png", "--count", "0"], "argument --count"),
    ],
)
def test_preview_bad_input_is_one_user_error(tiny_data, tmp_path, bad, message, capsys):
    from tools import preview
    from errors import UserError

    argv = [a.format(tmp=tmp_path, data=tiny_data) for a in bad]
    with pytest.raises((UserError, SystemExit)) as e:  # the parser's types, or validate()
        preview.main(argv)
    assert message in (str(e.value) if isinstance(e.value, UserError) else capsys.readouterr().err)


@pytest.mark.parametrize(
    "module, argv, flag",
    [
        ("tools.preview", ["--data", "DATA", "--out", "o.png"], "--method"),
        ("benchmarks.bench_augment", [], "--methods"),
        ("benchmarks.bench_dataflow", [], "--methods"),
    ],
)
def test_parsers_refuse_abbreviated_flags(module, argv, flag, capsys, tiny_data):
    # issue 8: with argparse's allow_abbrev=True, "--meth" was taken for the full flag
    import importlib

    argv = [tiny_data if a == "DATA" else a for a in argv]  # --data is checked by the parser
    parse_args = importlib.import_module(module).parse_args
    assert parse_args(argv + [flag, "gr"]).__dict__[flag[2:]] in ("gr", ["gr"])
    with pytest.raises(SystemExit):
        parse_args(argv + ["--meth", "gr"])
    assert "unrecognized arguments: --meth" in capsys.readouterr().err
