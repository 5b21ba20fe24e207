"""Issue 27, data: decoding, annotations, the decode cache, stale temporaries, the generator's atomicity.

All on ``data`` (a private copy of ``tiny_data``: 4 classes, 12 train / 4 val images each, 32 high x 40 wide)."""

import os
import signal
import struct
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

import fileio
from dataflow import DataError
from dataflow.tinyimagenet import load_split
from dataflow.annotations import read_annotations
from dataflow.cache import cache_stem, save_cache
from dataflow.synthetic import generate
from dataflow.tinyimagenet import _decode
from tests.conftest import REPO, TINY

H, W = TINY["height"], TINY["width"]


def _val_line(data, i, text):
    path = os.path.join(data, "val", "val_annotations.txt")
    lines = open(path).read().splitlines()
    lines[i] = text
    open(path, "w").write("\n".join(lines) + "\n")


def _exif_orientation(jpeg, value):
    """``jpeg`` bytes with an APP1 Exif segment holding one tag: Orientation (0x0112) = ``value``."""
    tiff = (
        b"II*\x00"
        + struct.pack("<I", 8)
        + struct.pack("<H", 1)
        + struct.pack("<HHIHH", 0x0112, 3, 1, value, 0)
        + struct.pack("<I", 0)
    )
    body = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def test_an_exif_orientation_tag_does_not_rotate_the_pixels(tmp_path):
    """Item 10: OpenCV rotated a tagged JPEG while its box stayed on the stored grid."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:4, :8] = 255
    path = tmp_path / "tagged.JPEG"
    path.write_bytes(
        _exif_orientation(cv2.imencode(".jpg", img)[1].tobytes(), 6)
    )  # 6: rotate 90 clockwise
    assert cv2.imread(str(path)).shape == (W, H, 3)  # what OpenCV does by default
    decoded = _decode(str(path))
    assert decoded.shape == (H, W, 3) and decoded[:4, :8].mean() > 200


def test_a_box_wholly_outside_the_image_is_refused(data):
    """Item 14: it became a 1-pixel corner box and was scored."""
    _val_line(data, 0, f"val_0.JPEG\tn00000000\t{W}\t3\t{W + 5}\t9")
    with pytest.raises(
        DataError,
        match=r"val_annotations.txt:1: box \[40, 3, 45, 9\] lies wholly outside the 40x32",
    ):
        load_split(data, "val", progress=False)


def test_a_coordinate_beyond_int32_is_refused(data):
    """Item 15: an OverflowError traceback."""
    _val_line(data, 0, "val_0.JPEG\tn00000000\t0\t0\t99999999999\t9")
    with pytest.raises(
        DataError, match="val_annotations.txt:1: box .* has a coordinate beyond 2147483647"
    ):
        read_annotations(data, "val")


def test_an_annotated_hidden_file_is_found(data):
    """Item 20: `.val_0.JPEG`, annotated and on disk, was reported as "does not exist"."""
    images = os.path.join(data, "val", "images")
    os.rename(os.path.join(images, "val_0.JPEG"), os.path.join(images, ".val_0.JPEG"))
    line = open(os.path.join(data, "val", "val_annotations.txt")).readline()
    _val_line(data, 0, "." + line.rstrip("\n"))
    assert read_annotations(data, "val").files[0] == "val/images/.val_0.JPEG"
    open(
        os.path.join(images, ".DS_Store"), "w"
    ).close()  # a hidden file nobody annotated is still ignored
    assert len(read_annotations(data, "val").files) == 16


def test_a_class_without_training_images_is_named(data, caplog):
    """Item 13: it was trained on silently."""
    folder = os.path.join(data, "train", "n00000002")
    for name in os.listdir(os.path.join(folder, "images")):
        os.remove(os.path.join(folder, "images", name))
    open(os.path.join(folder, "n00000002_boxes.txt"), "w").close()
    load_split(data, "train", progress=False)
    assert (
        "1 class(es) of wnids.txt have no training image" in caplog.text
        and "n00000002" in caplog.text
    )


def test_a_same_size_change_with_the_mtime_kept_is_not_served_stale(data):
    """Item 12: the key used size and mtime only (`cp -p`, `rsync -a` keep both)."""
    ann = read_annotations(data, "val")
    before = cache_stem(data, "val", ann)
    path = os.path.join(data, ann.files[0])
    st = os.stat(path)
    raw = bytearray(open(path, "rb").read())
    raw[-3] ^= 0xFF  # same size, other content
    open(path, "wb").write(bytes(raw))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size and os.stat(path).st_mtime_ns == st.st_mtime_ns
    assert cache_stem(data, "val", ann) != before


def _dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_temporaries_of_dead_writers_are_removed(tmp_path):
    """Item 11: kill -9 during an atomic write left .NAME.XXXX.tmp for good (a whole split for the cache)."""
    owner = fileio._owner().rsplit("-", 1)[0]
    dead, alive = f"{owner}-{_dead_pid()}", f"{owner}-{os.getpid()}"
    for name in (
        f".eval.json.{dead}.ab_12cd3.tmp",
        f".eval.json.{alive}.zz9.tmp",
        ".eval.json.otherhost-1.x.tmp",
        f".tinyimagenet-val-0123abcd-key-sum.npy.{dead}.q1.tmp",
    ):
        (tmp_path / name).write_text("partial")
    fileio.write_json(str(tmp_path / "eval.json"), {})
    left = sorted(os.listdir(tmp_path))
    assert f".eval.json.{dead}.ab_12cd3.tmp" not in left and f".eval.json.{alive}.zz9.tmp" in left
    assert ".eval.json.otherhost-1.x.tmp" in left  # another host's writer may be alive
    assert not any(
        n.startswith(".tinyimagenet") for n in os.listdir(tmp_path)
    )  # any name, once per folder
    cache = tmp_path / "cache"  # the decode cache's: a whole split
    cache.mkdir()
    (cache / f".tinyimagenet-val-0123abcd-oldkey-sum.npy.{dead}.q1.tmp").write_text("partial")
    save_cache([str(cache)], "tinyimagenet-val-0123abcd-newkey-", np.zeros((1, 2, 2, 3), np.uint8))
    assert [n for n in os.listdir(cache) if n.endswith(".tmp")] == []


def test_a_killed_generation_blocks_nothing(tmp_path):
    """Item 5: a killed generation left a folder that every later demo refused; Ctrl-C was a traceback."""
    out = tmp_path / "ds"
    sizes = "--classes 2 --train-per-class 100000 --height 16 --width 16".split()
    cmd = [sys.executable, "-m", "dataflow.synthetic", str(out), *sizes]
    for sig in (signal.SIGKILL, signal.SIGTERM):
        proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, text=True)
        try:
            while not any(
                n.endswith(f"-{proc.pid}.partial") for n in os.listdir(tmp_path)
            ):  # generating
                assert proc.poll() is None, "no partial folder beside the output"
                time.sleep(0.05)
        except AssertionError:
            proc.kill()
            raise
        proc.send_signal(sig)
        err = proc.communicate(timeout=60)[1]
        assert not out.exists()
        if sig == signal.SIGTERM:
            assert (
                proc.returncode == 130
                and "interrupted: nothing was written" in err
                and "Traceback" not in err
            )
            assert os.listdir(tmp_path) == []
    generate(
        out, classes=2, train_per_class=2, val_per_class=1, height=16, width=16
    )  # removes the SIGKILL residue
    assert os.listdir(tmp_path) == ["ds"] and (out / "synthetic.json").is_file()
    big = subprocess.run(cmd[:4] + ["--height", "100000"], cwd=REPO, capture_output=True, text=True)
    assert (
        big.returncode == 2 and "argument --height: expected an integer in [16, 4096]" in big.stderr
    )


def test_a_dataset_published_meanwhile_by_another_process_is_kept(tmp_path):
    """Item 5: two demos at once: the second was told the folder is "not empty and not a synthetic dataset"."""
    out = tmp_path / "ds"

    def fill(tmp):
        open(os.path.join(tmp, "mine"), "w").close()
        generate(
            tmp_path / "other", classes=2, train_per_class=2, val_per_class=1, height=16, width=16
        )
        os.rename(tmp_path / "other", out)  # the other process finished first

    fileio.write_folder(str(out), fill, done=lambda: (out / "synthetic.json").is_file())
    assert "mine" not in os.listdir(out) and os.listdir(tmp_path) == ["ds"]
