"""The Tiny ImageNet reader, its cache, its errors, and the training/evaluation DataFlows.

All on the generated ``tiny_data`` (4 classes, 12 train + 4 val per class, 32 high x 40 wide).
"""
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

import dataflow.tinyimagenet as tin
from dataflow import (DataError, TinyImageNet, build_eval_dataflow, build_train_dataflow, holdout_indices, load_split,
                      read_annotations, split_holdout)
from dataflow.builders import TrainBatches, train_augmentors
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


def _cached(cache):
    (name,) = os.listdir(cache)
    return os.path.join(cache, name)


def test_damaged_cache_is_found_and_decoded_again(data, tmp_path, caplog):
    # issue 9 item 5: bytes zeroed in place (same size) were served as pixels
    cache = tmp_path / "cache"
    first = load_split(data, "val", cache_dir=cache, progress=False)
    path = _cached(cache)
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.seek(size - first.images[-3:].nbytes)  # the last three images
        f.write(bytes(first.images[-3:].nbytes))
    again = load_split(data, "val", cache_dir=cache, progress=False)
    assert "damaged cache" in caplog.text and path in caplog.text
    np.testing.assert_array_equal(again.images, first.images)
    assert _cached(cache) == path and os.path.getsize(path) == size  # rewritten under its own name
    np.testing.assert_array_equal(np.load(path), first.images)


def test_cache_with_an_edited_shape_is_refused(data, tmp_path, caplog):
    # issue 9 item 5: a header saying (N, W, H, 3) (same byte count) was accepted, boxes clipped to it
    cache = tmp_path / "cache"
    first = load_split(data, "val", cache_dir=cache, progress=False)
    path = _cached(cache)
    with open(path, "rb") as f:
        raw = f.read()
    old, new = f"({N_VAL}, {H}, {W}, 3)".encode(), f"({N_VAL}, {W}, {H}, 3)".encode()
    assert raw.count(old) == 1 and len(old) == len(new)
    with open(path, "wb") as f:
        f.write(raw.replace(old, new))
    assert np.load(path).shape == (N_VAL, W, H, 3)
    again = load_split(data, "val", cache_dir=cache, progress=False)
    assert f"cache holds uint8 ({N_VAL}, {W}, {H}, 3)" in caplog.text
    np.testing.assert_array_equal(again.images, first.images)
    np.testing.assert_array_equal(again.boxes, first.boxes)


def test_stale_cache_removal_tolerates_another_process(data, tmp_path, monkeypatch):
    # issue 9 item 5: two processes removing the same stale entry, one died with FileNotFoundError
    cache = tmp_path / "cache"
    load_split(data, "val", cache_dir=cache, progress=False)
    stale = _cached(cache)
    cv2.imwrite(os.path.join(data, "val", "images", "val_0.JPEG"), np.zeros((H, W, 3), np.uint8))
    real_remove = os.remove

    def raced_remove(path):
        if os.path.exists(path):
            real_remove(path)  # the other process got there first ...
        real_remove(path)  # ... so this one finds nothing to remove
    monkeypatch.setattr(os, "remove", raced_remove)
    split = load_split(data, "val", cache_dir=cache, progress=False)
    assert (split.images[0] == 0).all() and not os.path.exists(stale) and len(os.listdir(cache)) == 1


def test_checksum_sees_bytes_shape_and_dtype():
    from dataflow.cache import checksum
    a = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    b = a.copy()
    b[1, 2, 3, 2] ^= 1
    sums = {checksum(a), checksum(b), checksum(a.reshape(2, 4, 3, 3)), checksum(a.view(np.int8))}
    assert len(sums) == 4 and checksum(a.copy()) == checksum(a)


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
    # issue 9 item 7: a traceback (FileNotFoundError / OSError ELOOP from os.stat) before
    "dangling symlink": ("val", lambda d: _relink(d, "val_2.JPEG", "gone.JPEG"),
                         r"val_annotations\.txt:3: image .*val_2\.JPEG is a symbolic link to gone\.JPEG, "
                         r"which does not exist"),
    "symlink loop": ("val", lambda d: _relink(d, "val_3.JPEG", "val_3.JPEG"),
                     r"val_annotations\.txt:4: image .*val_3\.JPEG is a symbolic link loop"),
    # issue 9 item 8: silently decoded before (OpenCV reads PNG whatever the name)
    "png named .JPEG": ("val", lambda d: cv2.imwrite(os.path.join(d, "val", "images", "val_1.png"),
                                                     np.zeros((H, W, 3), np.uint8))
                        and os.replace(os.path.join(d, "val", "images", "val_1.png"),
                                       os.path.join(d, "val", "images", "val_1.JPEG")),
                        r"val_1\.JPEG: not a readable JPEG \(the file is a PNG\)"),
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


# ---------------------------------------------------------------- annotations, hold-out (issue 12)

def test_read_annotations_matches_load_split_without_decoding(tiny_data, train, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("read_annotations decoded an image")
    monkeypatch.setattr(cv2, "imdecode", no_decoding)
    ann = read_annotations(tiny_data, "train")
    assert ann.files == train.files and ann.wnids == train.wnids
    np.testing.assert_array_equal(ann.labels, train.labels)
    np.testing.assert_array_equal(ann.boxes, train.boxes)
    assert ann.lines[13].endswith("n00000001_boxes.txt:2")


def test_holdout_indices_are_the_last_of_each_class_in_file_order():
    labels = np.array([2, 0, 0, 2, 1, 0, 1, 2, 1, 1])
    np.testing.assert_array_equal(holdout_indices(labels, 1), [5, 7, 9])
    np.testing.assert_array_equal(holdout_indices(labels, 2), [2, 3, 5, 7, 8, 9])
    assert holdout_indices(labels, 0).size == 0
    with pytest.raises(DataError, match="leaves class with label 0 no training image: it has 3"):
        holdout_indices(labels, 3)
    with pytest.raises(DataError, match=">= 0"):
        holdout_indices(labels, -1)


def test_split_holdout(train):
    kept, held = split_holdout(train, 3)
    assert len(held) == 3 * TINY["classes"] and len(kept) == N_TRAIN - len(held)
    # the tiny split is 12 images per class in class order: held = images 9, 10, 11 of each class
    expected = [c * 12 + i for c in range(TINY["classes"]) for i in (9, 10, 11)]
    assert held.files == [train.files[i] for i in expected]
    np.testing.assert_array_equal(held.images, train.images[expected])
    np.testing.assert_array_equal(held.boxes, train.boxes[expected])
    assert sorted(kept.files + held.files) == sorted(train.files) and kept.wnids == train.wnids
    same, empty = split_holdout(train, 0)
    assert same is train and len(empty) == 0 and empty.images.shape == (0, H, W, 3)


def test_held_out_images_never_reach_the_training_flow(train):
    kept, held = split_holdout(train, 2)
    flow = build_train_dataflow(kept, "cam", 4, seed=0)
    flow.reset_state()
    seen = set()
    for _ in range(3):  # three epochs
        for images, _ in flow:
            seen.update(img.tobytes() for img in images)
    assert seen == {img.tobytes() for img in kept.images}  # every kept image, no held one
    assert not seen & {img.tobytes() for img in held.images}


# ---------------------------------------------------------------- augmentation in the flow

def test_hns_fill_is_the_training_split_mean(train):
    (hns,) = build_train_dataflow(train, "hns", 4).augmentor.augmentors
    np.testing.assert_array_equal(hns.fill, train.mean_bgr())


def test_jitter_and_flip_in_the_flow_are_seeded(train):
    def batches(**kwargs):
        flow = build_train_dataflow(train, "cam", 8, seed=4, **kwargs)
        flow.reset_state()
        return list(flow)
    plain, jittered, again = batches(), batches(jitter=True), batches(jitter=True)
    for (a, la), (b, lb), (c, _) in zip(plain, jittered, again):
        np.testing.assert_array_equal(la, lb)  # the same order: the augmentors have their own streams
        np.testing.assert_array_equal(b, c)
        assert b.dtype == np.uint8 and not np.array_equal(a, b)
    flipped = batches(flip=True)
    mirrored = sum((b == a[:, :, ::-1]).all(axis=(1, 2, 3)).sum() for (a, _), (b, _) in zip(plain, flipped))
    assert 0.25 < mirrored / N_TRAIN < 0.75  # about half of the images, each mirrored whole


def test_lighting_constants_are_fb_resnet_torch_in_bgr():
    # fb.resnet.torch's PCA lighting in RGB, as its transforms.lua computes it, on a reversed image
    from augment.methods import LIGHTING_EIGVAL_BGR, LIGHTING_EIGVEC_BGR, _PCA_EIGVAL_RGB, _PCA_EIGVEC_RGB
    from tensorpack.dataflow import imgaug
    alpha_bgr = np.array([0.3, -1.2, 0.7], np.float32)
    bgr = np.full((2, 3, 3), 100, np.float32)
    lighting = imgaug.Lighting(0.1, eigval=LIGHTING_EIGVAL_BGR, eigvec=LIGHTING_EIGVEC_BGR, clip=False)
    out = lighting._augment(bgr, alpha_bgr)
    alpha_rgb = alpha_bgr[::-1]  # eigenvalue k of the BGR list is eigenvalue 2 - k of the RGB list
    rgb_shift = np.array(_PCA_EIGVEC_RGB) @ (alpha_rgb * np.array(_PCA_EIGVAL_RGB) * 255)
    np.testing.assert_allclose(out[0, 0], 100 + rgb_shift[::-1], rtol=1e-5)


# ---------------------------------------------------------------- workers (issues 8, 13)

def _replay(split, seed, worker, count):
    """The first ``count`` batches of worker ``worker``'s stream, computed in this process."""
    flow = TrainBatches(split, train_augmentors(split, "gr", flip=True, jitter=True), 6, seed=seed, worker=worker)
    flow.reset_state()
    out = []
    while len(out) < count:
        out.extend(flow)
    return out[:count]


def _interleaves(got, streams):
    """True when ``got`` is an interleaving of prefixes of ``streams``, each in its order."""
    pos = [0] * len(streams)
    for images, labels in got:
        for k, stream in enumerate(streams):
            if pos[k] < len(stream) and np.array_equal(stream[pos[k]][0], images) \
                    and np.array_equal(stream[pos[k]][1], labels):
                pos[k] += 1
                break
        else:
            return False
    return True


@pytest.mark.slow
def test_two_workers_follow_the_seed_and_the_worker_index(train):
    streams = [_replay(train, 7, k, 24) for k in (0, 1)]
    assert not np.array_equal(streams[0][0][0], streams[1][0][0])  # workers differ
    for _ in range(2):  # two runs: each an interleaving of the same two seeded streams
        flow = build_train_dataflow(train, "gr", 6, seed=7, num_workers=2, flip=True, jitter=True)
        flow.reset_state()
        got = [b for _ in range(2) for b in flow]  # two "epochs" of 8 batches from both workers
        del flow
        assert len(got) == 16 and _interleaves(got, streams)
    flow = build_train_dataflow(train, "gr", 6, seed=7, num_workers=1, flip=True, jitter=True)
    flow.reset_state()
    assert _interleaves(list(flow), streams[:1])  # one worker = in-process
    del flow


def _children(pid):
    """Live (not zombie) processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; the death signal is Linux's")
def test_killing_the_consumer_of_two_workers_leaves_no_worker_behind(tiny_data, tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (f"from dataflow import load_split, build_train_dataflow\n"
            f"split = load_split({tiny_data!r}, 'train', cache_dir={str(tmp_path)!r}, progress=False)\n"
            f"flow = build_train_dataflow(split, 'gr', 4, seed=0, num_workers=2)\n"
            f"flow.reset_state()\n"
            f"it = iter(flow); next(it); next(it)\n"
            f"print('READY', flush=True)\n"
            f"import time; time.sleep(120)\n")
    consumer = subprocess.Popen([sys.executable, "-c", code], cwd=repo, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)
    try:
        lines = iter(consumer.stdout.readline, "")
        assert any(line.strip() == "READY" for line in lines), "the consumer died before its workers ran"
        workers = _children(consumer.pid)
        assert len(workers) >= 2
    finally:
        consumer.kill()
        consumer.wait()
    deadline = time.time() + 30
    while any(_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.2)
    left = [p for p in workers if _alive(p)]
    for p in left:  # do not leave them to the next test
        os.kill(p, signal.SIGKILL)
    assert not left
