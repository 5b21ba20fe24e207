"""The Tiny ImageNet reader, its cache, its errors, and the training/evaluation DataFlows.

All on the generated ``tiny_data`` (4 classes, 12 train + 4 val per class, 32 high x 40 wide).
"""
import os
import shutil

import cv2
import numpy as np
import pytest

import dataflow.tinyimagenet as tin
from dataflow import DataError, TinyImageNet, build_eval_dataflow, build_train_dataflow, load_split
from tests.conftest import TINY

H, W = TINY["height"], TINY["width"]
N_TRAIN, N_VAL = TINY["classes"] * TINY["train_per_class"], TINY["classes"] * TINY["val_per_class"]


def _read(path):
    with open(path) as f:
        return f.read().splitlines()


def _write(path, lines):
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


@pytest.fixture
def data(tiny_data, tmp_path):
    """A private copy of tiny_data that a test may change."""
    return shutil.copytree(tiny_data, tmp_path / "data", ignore=shutil.ignore_patterns(".cache"))


@pytest.fixture(scope="module")
def train(tiny_data, tmp_path_factory):
    return load_split(tiny_data, "train", cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


@pytest.fixture(scope="module")
def val(tiny_data, tmp_path_factory):
    return load_split(tiny_data, "val", cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def test_train_split(tiny_data, train):
    assert train.images.shape == (N_TRAIN, H, W, 3) and train.images.dtype == np.uint8
    assert train.image_shape == (H, W) and len(train) == N_TRAIN
    wnids = _read(os.path.join(tiny_data, "wnids.txt"))
    assert train.wnids == wnids and train.num_classes == TINY["classes"]
    assert train.labels.dtype == np.int32 and train.boxes.dtype == np.int32
    np.testing.assert_array_equal(train.labels, np.repeat(np.arange(4), 12))
    w = wnids[2]
    rows = [line.split("\t") for line in _read(os.path.join(tiny_data, "train", w, f"{w}_boxes.txt"))]
    assert train.files[24:36] == [f"train/{w}/images/{r[0]}" for r in rows]
    np.testing.assert_array_equal(train.boxes[24:36], [[int(x) for x in r[1:]] for r in rows])


def test_val_split(tiny_data, val):
    rows = [line.split("\t") for line in _read(os.path.join(tiny_data, "val", "val_annotations.txt"))]
    wnids = _read(os.path.join(tiny_data, "wnids.txt"))
    assert val.files == [f"val/images/{r[0]}" for r in rows]
    np.testing.assert_array_equal(val.labels, [wnids.index(r[1]) for r in rows])
    np.testing.assert_array_equal(val.boxes, [[int(x) for x in r[2:]] for r in rows])
    assert val.images.shape == (N_VAL, H, W, 3)


def test_pixels_are_bgr_and_grayscale_becomes_three_channels(tiny_data, val):
    gray = 0
    for i, rel in enumerate(val.files):
        path = os.path.join(tiny_data, rel)
        np.testing.assert_array_equal(val.images[i], cv2.imread(path, cv2.IMREAD_COLOR))
        if cv2.imread(path, cv2.IMREAD_UNCHANGED).ndim == 2:
            gray += 1
            img = val.images[i]
            assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()
    assert gray >= 1


def test_mean_and_std():
    images = np.zeros((2, 3, 5, 3), np.uint8)
    images[0, ..., 0] = 10  # blue: half the pixels 10, half 0
    images[..., 2] = 200
    split = tin.Split(images, np.zeros(2, np.int32), np.zeros((2, 4), np.int32), ["a", "b"], ["n0"])
    np.testing.assert_allclose(split.mean_bgr(), [5, 0, 200])
    np.testing.assert_allclose(split.std_bgr(), [5, 0, 0])


def test_labels_follow_wnids_order(data):
    path = os.path.join(data, "wnids.txt")
    wnids = _read(path)
    _write(path, wnids[::-1])
    split = load_split(data, "train", progress=False)
    assert split.wnids == wnids[::-1]
    assert split.files[0].startswith(f"train/{wnids[-1]}/") and split.labels[0] == 0


def test_cache_is_reused_and_invalidated(data, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = load_split(data, "val", cache_dir=cache, progress=False)
    entries = os.listdir(cache)
    assert len(entries) == 1 and entries[0].endswith(".npy")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")
    with monkeypatch.context() as m:
        m.setattr(tin, "decode_images", no_decoding)
        again = load_split(data, "val", cache_dir=cache, progress=False)
    np.testing.assert_array_equal(again.images, first.images)

    # Change one image: decoded again, the stale entry replaced.
    path = os.path.join(data, "val", "images", "val_3.JPEG")
    cv2.imwrite(path, np.full((H, W, 3), 77, np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 100])
    changed = load_split(data, "val", cache_dir=cache, progress=False)
    assert abs(int(changed.images[3].mean()) - 77) <= 1
    np.testing.assert_array_equal(changed.images[:3], first.images[:3])
    assert len(os.listdir(cache)) == 1 and os.listdir(cache) != entries


def test_default_cache_is_under_root_and_a_broken_entry_is_redone(data):
    load_split(data, "val", progress=False)
    (name,) = os.listdir(os.path.join(data, ".cache"))
    with open(os.path.join(data, ".cache", name), "wb") as f:
        f.write(b"not an npy file")
    split = load_split(data, "val", progress=False)
    assert split.images.shape == (N_VAL, H, W, 3)


def _set_line(path, index, text):
    lines = _read(path)
    lines[index] = text
    _write(path, lines)


def _truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[:len(data) // 2])


def _val_ann(data):
    return os.path.join(data, "val", "val_annotations.txt")


def _boxes(data):
    w = _read(os.path.join(data, "wnids.txt"))[1]
    return os.path.join(data, "train", w, f"{w}_boxes.txt"), w


BREAKAGES = {
    "malformed train line": ("train", lambda d: _set_line(_boxes(d)[0], 2, "oops\t1\t2"),
                             r"_boxes\.txt:3: expected 'file x0 y0 x1 y1'"),
    "malformed val line": ("val", lambda d: _set_line(_val_ann(d), 4, "val_4.JPEG\tn00000001\t1\t2\tx\t5"),
                           r"val_annotations\.txt:5: box .* is not four integers"),
    "negative box": ("val", lambda d: _set_line(_val_ann(d), 0, "val_0.JPEG\tn00000000\t-1\t0\t3\t5"),
                     r"val_annotations\.txt:1: box \[-1, 0, 3, 5\] is not \[x0, y0, x1, y1\]"),
    "unknown wnid": ("val", lambda d: _set_line(_val_ann(d), 1, "val_1.JPEG\tn12345678\t0\t0\t3\t3"),
                     r"val_annotations\.txt:2: wnid n12345678 is not in .*wnids\.txt"),
    "annotated but missing": ("val", lambda d: os.remove(os.path.join(d, "val", "images", "val_2.JPEG")),
                              r"val_annotations\.txt:3: image .*val_2\.JPEG does not exist"),
    "on disk but not annotated": ("val", lambda d: _write(_val_ann(d), _read(_val_ann(d))[1:]),
                                  r"val_0\.JPEG: image has no line in .*val_annotations\.txt"),
    "corrupt jpeg": ("val", lambda d: _write(os.path.join(d, "val", "images", "val_5.JPEG"), ["garbage"]),
                     r"val_5\.JPEG: not a readable JPEG"),
    "truncated jpeg": ("val", lambda d: _truncate(os.path.join(d, "val", "images", "val_7.JPEG")),
                       r"val_7\.JPEG: not a readable JPEG"),
    "other size": ("val", lambda d: cv2.imwrite(os.path.join(d, "val", "images", "val_6.JPEG"),
                                                np.zeros((H, W + 1, 3), np.uint8)),
                   r"val_6\.JPEG: image is 41x32 \(WxH\), but .*val_0\.JPEG is 40x32"),
    "empty split": ("val", lambda d: (shutil.rmtree(os.path.join(d, "val", "images")),
                                      os.mkdir(os.path.join(d, "val", "images")), _write(_val_ann(d), [])),
                    r"the val split has no annotated images"),
    "missing class folder": ("train", lambda d: shutil.rmtree(_boxes(d)[0].rsplit(os.sep, 1)[0]),
                             r"train/n00000001: no such directory \(class n00000001 of wnids.txt\)"),
    "missing annotation file": ("val", lambda d: os.remove(_val_ann(d)), r"val_annotations\.txt: no such file"),
    "missing wnids": ("val", lambda d: os.remove(os.path.join(d, "wnids.txt")), r"wnids\.txt: no such file"),
    "repeated wnid": ("val", lambda d: _write(os.path.join(d, "wnids.txt"), ["n00000000"] * 2),
                      r"wnids\.txt:2: wnid n00000000 repeats line 1"),
}


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_bad_dataset_names_file_and_line(data, name):
    split, breakage, message = BREAKAGES[name]
    breakage(data)
    with pytest.raises(DataError, match=message):
        load_split(data, split, progress=False)


def test_box_past_the_far_edge_is_clipped_and_reported(data, caplog):
    # x1 == W (one past the last column): kept, clipped to W - 1, and logged with file:line
    _set_line(_val_ann(data), 0, f"val_0.JPEG\tn00000000\t2\t3\t{W}\t{H + 4}")
    val = load_split(data, "val", progress=False)
    assert val.files[0] == "val/images/val_0.JPEG"
    assert val.boxes[0].tolist() == [2, 3, W - 1, H - 1]
    assert "1 val box(es) reach past the 40x32" in caplog.text
    assert "val_annotations.txt:1" in caplog.text


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match=r"nowhere: no such directory"):
        load_split(tmp_path / "nowhere", "train")


def test_tinyimagenet_dataflow(tiny_data, val):
    df = TinyImageNet(val)
    df.reset_state()
    points = list(df)
    assert len(points) == len(df) == N_VAL
    image, label, box = points[5]
    assert image.shape == (H, W, 3) and image.dtype == np.uint8 and isinstance(label, int)
    assert box.dtype == np.int32 and box.tolist() == val.boxes[5].tolist()

    shuffled = TinyImageNet(tiny_data, "val", shuffle=True, cache_dir=None, progress=False)
    shuffled.reset_state()
    labels = [p[1] for p in shuffled]
    assert sorted(labels) == sorted(val.labels.tolist())


def test_train_dataflow(train):
    df = build_train_dataflow(train, "cam", 5, seed=3)
    df.reset_state()
    batches = list(df)
    assert len(batches) == len(df) == N_TRAIN // 5
    seen = []
    for images, labels in batches:
        assert images.shape == (5, H, W, 3) and images.dtype == np.uint8 and labels.dtype == np.int32
        for img, label in zip(images, labels):  # "cam" does not augment: each image is a split image
            (j,) = np.nonzero((train.images == img).all(axis=(1, 2, 3)))
            assert train.labels[j[0]] == label
            seen.append(j[0])
    assert len(set(seen)) == len(seen)  # no image twice in an epoch
    assert seen != sorted(seen)  # shuffled


@pytest.mark.parametrize("method", ["hns", "gr", "hns_after_gr", "gr_after_hns"])
def test_train_dataflow_is_seeded_and_augments(train, method):
    runs = []
    for _ in range(2):
        df = build_train_dataflow(train, method, 8, seed=11)
        df.reset_state()
        runs.append([b for b in df])
    for (a, la), (b, lb) in zip(*runs):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)
        assert a.shape == (8, H, W, 3)
    assert not all((train.images == img).all(axis=(1, 2, 3)).any() for img in runs[0][0][0])


def test_train_dataflow_bad_arguments(train):
    with pytest.raises(DataError, match="larger than the 48 training images"):
        build_train_dataflow(train, "gr", N_TRAIN + 1)
    with pytest.raises(ValueError, match="valid methods"):
        build_train_dataflow(train, "mixup", 4)


@pytest.mark.slow
def test_train_dataflow_with_a_worker(train):
    df = build_train_dataflow(train, "gr", 6, num_workers=1)
    df.reset_state()
    it = iter(df)
    for _ in range(3):
        images, labels = next(it)
        assert images.shape == (6, H, W, 3) and labels.shape == (6,)
    del it, df


def test_eval_dataflow(val):
    df = build_eval_dataflow(val, 5)
    df.reset_state()
    batches = list(df)
    assert [len(b[0]) for b in batches] == [5, 5, 5, 1] and len(df) == 4
    images, labels, boxes = (np.concatenate(parts) for parts in zip(*batches))
    np.testing.assert_array_equal(images, val.images)
    np.testing.assert_array_equal(labels, val.labels)
    np.testing.assert_array_equal(boxes, val.boxes)
    assert images.dtype == np.uint8 and labels.dtype == np.int32 and boxes.dtype == np.int32
    again = list(df)
    assert all((a[0] == b[0]).all() for a, b in zip(batches, again))
