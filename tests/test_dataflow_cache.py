"""The verified cache of decoded splits: reuse, invalidation, damage found, and a race between processes.

All on the generated ``tiny_data`` (4 classes, 4 val images per class, 32 high x 40 wide).
"""

import os

import cv2
import numpy as np

import dataflow.tinyimagenet as tin
from dataflow.tinyimagenet import load_split
from tests.conftest import TINY

H, W = TINY["height"], TINY["width"]
N_VAL = TINY["classes"] * TINY["val_per_class"]


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
    assert (
        (split.images[0] == 0).all() and not os.path.exists(stale) and len(os.listdir(cache)) == 1
    )


def test_checksum_sees_bytes_shape_and_dtype():
    from dataflow.cache import checksum

    a = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    b = a.copy()
    b[1, 2, 3, 2] ^= 1
    sums = {checksum(a), checksum(b), checksum(a.reshape(2, 4, 3, 3)), checksum(a.view(np.int8))}
    assert len(sums) == 4 and checksum(a.copy()) == checksum(a)
