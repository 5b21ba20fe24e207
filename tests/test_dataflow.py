"""The Tiny ImageNet reader, its annotations and its errors (the cache: test_dataflow_cache.py;
the flows: test_trainflow.py).

All on the generated ``tiny_data`` (4 classes, 12 train + 4 val per class, 32 high x 40 wide).
"""

import os
import shutil

import cv2
import numpy as np
import pytest

import dataflow.tinyimagenet as tin
from dataflow import DataError
from dataflow.tinyimagenet import load_split
from dataflow.annotations import read_annotations
from tests.conftest import TINY

H, W = TINY["height"], TINY["width"]
N_TRAIN, N_VAL = TINY["classes"] * TINY["train_per_class"], TINY["classes"] * TINY["val_per_class"]


def _read(path):
    with open(path) as f:
        return f.read().splitlines()


def _write(path, lines):
    with open(path, "w") as f:
        f.write("".join(line + "\n" for line in lines))


@pytest.fixture(scope="module")
def train(tiny_data, tmp_path_factory):
    return load_split(
        tiny_data, "train", cache_dir=tmp_path_factory.mktemp("cache"), progress=False
    )


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
    rows = [
        line.split("\t") for line in _read(os.path.join(tiny_data, "train", w, f"{w}_boxes.txt"))
    ]
    assert train.files[24:36] == [f"train/{w}/images/{r[0]}" for r in rows]
    np.testing.assert_array_equal(train.boxes[24:36], [[int(x) for x in r[1:]] for r in rows])


def test_val_split(tiny_data, val):
    rows = [
        line.split("\t") for line in _read(os.path.join(tiny_data, "val", "val_annotations.txt"))
    ]
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


def _set_line(path, index, text):
    lines = _read(path)
    lines[index] = text
    _write(path, lines)


def _truncate(path):
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])


def _val_ann(data):
    return os.path.join(data, "val", "val_annotations.txt")


def _boxes(data):
    w = _read(os.path.join(data, "wnids.txt"))[1]
    return os.path.join(data, "train", w, f"{w}_boxes.txt"), w


BREAKAGES = {
    "malformed train line": (
        "train",
        lambda d: _set_line(_boxes(d)[0], 2, "oops\t1\t2"),
        r"_boxes\.txt:3: expected 'file x0 y0 x1 y1'",
    ),
    "malformed val line": (
        "val",
        lambda d: _set_line(_val_ann(d), 4, "val_4.JPEG\tn00000001\t1\t2\tx\t5"),
        r"val_annotations\.txt:5: box .* is not four integers",
    ),
    "negative box": (
        "val",
        lambda d: _set_line(_val_ann(d), 0, "val_0.JPEG\tn00000000\t-1\t0\t3\t5"),
        r"val_annotations\.txt:1: box \[-1, 0, 3, 5\] is not \[x0, y0, x1, y1\]",
    ),
    "unknown wnid": (
        "val",
        lambda d: _set_line(_val_ann(d), 1, "val_1.JPEG\tn12345678\t0\t0\t3\t3"),
        r"val_annotations\.txt:2: wnid n12345678 is not in .*wnids\.txt",
    ),
    "annotated but missing": (
        "val",
        lambda d: os.remove(os.path.join(d, "val", "images", "val_2.JPEG")),
        r"val_annotations\.txt:3: image .*val_2\.JPEG does not exist",
    ),
    "on disk but not annotated": (
        "val",
        lambda d: _write(_val_ann(d), _read(_val_ann(d))[1:]),
        r"val_0\.JPEG: image has no line in .*val_annotations\.txt",
    ),
    "corrupt jpeg": (
        "val",
        lambda d: _write(os.path.join(d, "val", "images", "val_5.JPEG"), ["garbage"]),
        r"val_5\.JPEG: not a readable JPEG",
    ),
    "truncated jpeg": (
        "val",
        lambda d: _truncate(os.path.join(d, "val", "images", "val_7.JPEG")),
        r"val_7\.JPEG: not a readable JPEG",
    ),
    "other size": (
        "val",
        lambda d: cv2.imwrite(
            os.path.join(d, "val", "images", "val_6.JPEG"), np.zeros((H, W + 1, 3), np.uint8)
        ),
        r"val_6\.JPEG: image is 41x32 \(WxH\), but .*val_0\.JPEG is 40x32",
    ),
    "empty split": (
        "val",
        lambda d: (
            shutil.rmtree(os.path.join(d, "val", "images")),
            os.mkdir(os.path.join(d, "val", "images")),
            _write(_val_ann(d), []),
        ),
        r"the val split has no annotated images",
    ),
    "missing class folder": (
        "train",
        lambda d: shutil.rmtree(_boxes(d)[0].rsplit(os.sep, 1)[0]),
        r"train/n00000001: no such directory \(class n00000001 of wnids.txt\)",
    ),
    "missing annotation file": (
        "val",
        lambda d: os.remove(_val_ann(d)),
        r"val_annotations\.txt: no such file",
    ),
    "missing wnids": (
        "val",
        lambda d: os.remove(os.path.join(d, "wnids.txt")),
        r"wnids\.txt: no such file",
    ),
    "repeated wnid": (
        "val",
        lambda d: _write(os.path.join(d, "wnids.txt"), ["n00000000"] * 2),
        r"wnids\.txt:2: wnid n00000000 repeats line 1",
    ),
    # issue 9 item 7: a traceback (FileNotFoundError / OSError ELOOP from os.stat) before
    "dangling symlink": (
        "val",
        lambda d: _relink(d, "val_2.JPEG", "gone.JPEG"),
        r"val_annotations\.txt:3: image .*val_2\.JPEG is a symbolic link to gone\.JPEG, "
        r"which does not exist",
    ),
    "symlink loop": (
        "val",
        lambda d: _relink(d, "val_3.JPEG", "val_3.JPEG"),
        r"val_annotations\.txt:4: image .*val_3\.JPEG is a symbolic link loop",
    ),
    # issue 9 item 8: silently decoded before (OpenCV reads PNG whatever the name)
    "png named .JPEG": (
        "val",
        lambda d: (
            cv2.imwrite(
                os.path.join(d, "val", "images", "val_1.png"), np.zeros((H, W, 3), np.uint8)
            )
            and os.replace(
                os.path.join(d, "val", "images", "val_1.png"),
                os.path.join(d, "val", "images", "val_1.JPEG"),
            )
        ),
        r"val_1\.JPEG: not a readable JPEG \(the file is a PNG\)",
    ),
}


def _relink(data, name, target):
    path = os.path.join(data, "val", "images", name)
    os.remove(path)
    os.symlink(target, path)


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


def test_root_that_is_a_file_is_named_a_file(tmp_path):
    # issue 9 item 8: it said "no such directory"
    (tmp_path / "data.tar").write_bytes(b"x")
    with pytest.raises(DataError, match=r"data\.tar: is a file, not a folder"):
        load_split(tmp_path / "data.tar", "train")


def test_utf8_bom_in_wnids_is_dropped(data, tiny_data):
    # issue 9 item 8: the BOM became part of the first wnid ("n00000000" not found, shown invisibly)
    path = os.path.join(data, "wnids.txt")
    with open(path, "rb") as f:
        raw = f.read()
    with open(path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + raw)
    split = load_split(data, "val", progress=False)
    assert split.wnids == _read(os.path.join(tiny_data, "wnids.txt"))


def test_read_annotations_matches_load_split_without_decoding(tiny_data, train, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("read_annotations decoded an image")

    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    ann = read_annotations(tiny_data, "train")
    assert ann.files == train.files and ann.wnids == train.wnids
    np.testing.assert_array_equal(ann.labels, train.labels)
    np.testing.assert_array_equal(ann.boxes, train.boxes)
    assert ann.lines[13].endswith("n00000001_boxes.txt:2")
