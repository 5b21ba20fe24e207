"""The synthetic dataset: Tiny ImageNet layout, determinism under a seed, objects inside their boxes."""

import filecmp
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

from dataflow import DataError
from dataflow.synthetic import GRAY_EVERY, generate, head_look, main, render
from tests.conftest import TINY


def _all_files(root):
    return sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, _, fs in os.walk(root)
        for f in fs
        if not os.path.relpath(d, root).startswith(".cache")
    )


def _lines(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f]


def test_layout(tiny_data):
    wnids = [w for (w,) in _lines(os.path.join(tiny_data, "wnids.txt"))]
    assert len(wnids) == TINY["classes"] and all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    words = dict(_lines(os.path.join(tiny_data, "words.txt")))
    assert set(wnids) < set(words)  # every class, plus unrelated lines as in the real file
    # readable class names for captions (issue 24): "red disc", from words.txt's first comma part
    from dataflow.synthetic import class_name
    from dataflow.words import class_names

    assert class_names(tiny_data, wnids) == [class_name(k, len(wnids)) for k in range(len(wnids))]
    assert (
        class_names(tiny_data, wnids)[0] == "red disc"
        and class_names("/nonexistent", wnids) == wnids
    )

    for w in wnids:
        rows = _lines(os.path.join(tiny_data, "train", w, f"{w}_boxes.txt"))
        assert [r[0] for r in rows] == [f"{w}_{i}.JPEG" for i in range(TINY["train_per_class"])]
        assert sorted(os.listdir(os.path.join(tiny_data, "train", w, "images"))) == sorted(
            r[0] for r in rows
        )

    rows = _lines(os.path.join(tiny_data, "val", "val_annotations.txt"))
    n_val = TINY["classes"] * TINY["val_per_class"]
    assert [r[0] for r in rows] == [f"val_{i}.JPEG" for i in range(n_val)]
    assert sorted(r[1] for r in rows) == sorted(wnids * TINY["val_per_class"])
    assert len(os.listdir(os.path.join(tiny_data, "val", "images"))) == n_val
    assert len(os.listdir(os.path.join(tiny_data, "test", "images"))) == n_val

    h, w = TINY["height"], TINY["width"]
    for r in rows:
        x0, y0, x1, y1 = map(int, r[2:])
        assert (
            0 <= x0 < x1 <= w - 1 and 0 <= y0 < y1 <= h - 1
        )  # inclusive, inside a 40-wide, 32-high image
        img = cv2.imread(os.path.join(tiny_data, "val", "images", r[0]), cv2.IMREAD_UNCHANGED)
        assert img.shape[:2] == (h, w)


def test_some_jpegs_are_grayscale(tiny_data):
    folder = os.path.join(tiny_data, "val", "images")
    n_val = TINY["classes"] * TINY["val_per_class"]
    channels = [
        cv2.imread(os.path.join(folder, f"val_{i}.JPEG"), cv2.IMREAD_UNCHANGED).ndim
        for i in range(n_val)
    ]
    assert channels == [2 if i % GRAY_EVERY == GRAY_EVERY - 1 else 3 for i in range(n_val)]


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    args = dict(classes=3, train_per_class=2, val_per_class=2, height=24, width=36)
    a = generate(tmp_path / "a", seed=5, **args)
    b = generate(tmp_path / "b", seed=5, **args)
    c = generate(tmp_path / "c", seed=6, **args)
    files = _all_files(a)
    assert files == _all_files(b) == _all_files(c)
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert mismatch == [] and errors == []
    _, mismatch, _ = filecmp.cmpfiles(a, c, files, shallow=False)
    assert "val/images/val_0.JPEG" in mismatch


def test_head_colour_is_inside_the_box():
    rng = np.random.default_rng(0)
    for label in range(4):
        colour, _ = head_look(label, 4)
        img, (x0, y0, x1, y1) = render(rng, label, 4, 48, 80)
        near = np.abs(img.astype(float) - colour).max(axis=2) < 40  # noise sigma is 8
        ys, xs = np.nonzero(near)
        assert len(ys) >= 5
        assert x0 <= xs.min() and xs.max() <= x1 and y0 <= ys.min() and ys.max() <= y1
        # the head is a small part: most of the box is body or background
        assert len(ys) < 0.5 * (x1 - x0 + 1) * (y1 - y0 + 1)


def test_classes_look_different():
    looks = [head_look(k, 10) for k in range(10)]
    colours = np.array([c for c, _ in looks])
    gaps = np.abs(colours[:, None] - colours[None]).max(axis=2) + np.eye(10) * 255
    assert gaps.min() > 40


def test_reuse_and_refuse(tmp_path):
    out = generate(
        tmp_path / "d", classes=2, train_per_class=1, val_per_class=1, height=20, width=30
    )
    mtime = os.stat(os.path.join(out, "wnids.txt")).st_mtime_ns
    assert generate(out, classes=2, train_per_class=1, val_per_class=1, height=20, width=30) == out
    assert os.stat(os.path.join(out, "wnids.txt")).st_mtime_ns == mtime  # same settings: left as is
    with pytest.raises(DataError, match="not empty"):
        generate(out, classes=3, train_per_class=1, val_per_class=1, height=20, width=30)
    with pytest.raises(DataError, match="width must be an integer >= 16"):
        generate(tmp_path / "e", width=8)


def test_cli(tmp_path, capsys):
    sizes = "--classes 2 --train-per-class 3 --val-per-class 1 --height 20 --width 30 --seed 1"
    main([str(tmp_path / "cli"), *sizes.split()])
    assert "2 classes, 6 train and 2 val images of 20x30" in capsys.readouterr().out
    assert len(os.listdir(tmp_path / "cli" / "train")) == 2


@pytest.mark.slow
def test_cli_bad_input_exits_2_with_one_line(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    r = subprocess.run(
        [sys.executable, "-m", "dataflow.synthetic", str(tmp_path / "full")],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    assert r.returncode == 2
    assert (
        r.stderr.startswith("error: ") and "not empty" in r.stderr and "Traceback" not in r.stderr
    )


def test_no_fixed_box_fits_many_objects():
    # Objects placed and scaled at random: the best single box (fit on these very boxes, the paper
    # protocol's IoU > 0.5) hits at most 10% of 300 objects at 48x48; some objects are cut by the border.
    from cam.baselines import best_fixed_box
    from cam.protocols import PROTOCOLS

    rng = np.random.default_rng(0)
    boxes = np.array([render(rng, k % 6, 6, 48, 48)[1] for k in range(300)])
    _, hits = best_fixed_box(boxes, (48, 48), PROTOCOLS["paper"])
    assert hits <= 30
    assert ((boxes[:, :2] == 0) | (boxes[:, 2:] == 47)).any(axis=1).mean() > 0.2
