"""The DataFlows: TinyImageNet, training batches (seeds, hold-out, augmentation, workers) and evaluation.

All on the generated ``tiny_data`` (4 classes, 12 train + 4 val per class, 32 high x 40 wide).
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from augment.registry import names, steps
from dataflow import DataError
from dataflow.tinyimagenet import TinyImageNet, holdout_indices, split_holdout
from dataflow.builders import build_eval_dataflow, build_train_dataflow
from procs import child_processes
from tests.conftest import TINY
from tests.test_dataflow import train, val  # noqa: F401  (module-scoped fixtures: the loaded splits)

H, W = TINY["height"], TINY["width"]
N_TRAIN, N_VAL = TINY["classes"] * TINY["train_per_class"], TINY["classes"] * TINY["val_per_class"]


def test_tinyimagenet_dataflow(tiny_data, val):
    df = TinyImageNet(val)
    df.reset_state()
    points = list(df)
    assert len(points) == len(df) == N_VAL
    image, label, box = points[5]
    assert image.shape == (H, W, 3) and image.dtype == np.uint8 and isinstance(label, int)
    assert box.dtype == np.int32 and box.tolist() == val.boxes[5].tolist()

    shuffled = TinyImageNet(val, shuffle=True)
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
        assert (
            images.shape == (5, H, W, 3) and images.dtype == np.uint8 and labels.dtype == np.int32
        )
        for img, label in zip(
            images, labels
        ):  # "cam" does not augment: each image is a split image
            (j,) = np.nonzero((train.images == img).all(axis=(1, 2, 3)))
            assert train.labels[j[0]] == label
            seen.append(j[0])
    assert len(set(seen)) == len(seen)  # no image twice in an epoch
    assert seen != sorted(seen)  # shuffled


@pytest.mark.parametrize("method", [m for m in names() if steps(m)])  # every method that augments
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


# ---------------------------------------------------------------- hold-out (issue 12)


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
        np.testing.assert_array_equal(
            la, lb
        )  # the same order: the augmentors have their own streams
        np.testing.assert_array_equal(b, c)
        assert b.dtype == np.uint8 and not np.array_equal(a, b)
    flipped = batches(flip=True)
    mirrored = sum(
        (b == a[:, :, ::-1]).all(axis=(1, 2, 3)).sum() for (a, _), (b, _) in zip(plain, flipped)
    )
    assert 0.25 < mirrored / N_TRAIN < 0.75  # about half of the images, each mirrored whole


# ---------------------------------------------------------------- the stream, workers (issues 8, 13, 17)


def _flow(split, start=0, workers=0, seed=7):
    """GR with jitter and flip (every augmentor draws), batches of 6: 8 per pass."""
    return build_train_dataflow(
        split, "gr", 6, seed=seed, start=start, num_workers=workers, flip=True, jitter=True
    )


def _passes(flow, n):
    """``n`` iterations of ``flow`` (each to the end of a pass), after ``reset_state``."""
    flow.reset_state()
    return [b for _ in range(n) for b in flow]


def _same(a, b):
    return len(a) == len(b) and all(
        np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1]) for x, y in zip(a, b)
    )


def test_stream_depends_on_the_batch_index_not_on_the_start(train):
    whole = _passes(_flow(train), 4)  # passes 1-4 from the start
    assert len(whole) == 32 and not _same(whole[:8], whole[8:16])
    assert _same(
        _passes(_flow(train, start=16), 2), whole[16:]
    )  # started at pass 3 (a resumed run)
    assert _same(
        _passes(_flow(train, start=11), 2), whole[11:24]
    )  # mid-pass: to its end, then the next
    assert not _same(_passes(_flow(train, seed=8), 1), whole[:8])  # the seed matters


@pytest.mark.slow
def test_workers_yield_the_in_process_stream(train):
    alone = _passes(_flow(train, start=5), 3)  # 3 + 8 + 8 batches, from batch 5 (mid-pass)
    for workers in (2, 3):
        flow = _flow(train, start=5, workers=workers)
        assert _same(_passes(flow, 3), alone), f"{workers} workers"
        del flow  # stops the workers


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc; the death signal is Linux's"
)
def test_killing_the_consumer_of_two_workers_leaves_no_worker_behind(tiny_data, tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = (
        f"from dataflow.tinyimagenet import load_split\n"
        f"from dataflow.builders import build_train_dataflow\n"
        f"split = load_split({tiny_data!r}, 'train', cache_dir={str(tmp_path)!r}, progress=False)\n"
        f"flow = build_train_dataflow(split, 'gr', 4, seed=0, num_workers=2)\n"
        f"flow.reset_state()\n"
        f"it = iter(flow); next(it); next(it)\n"
        f"print('READY', flush=True)\n"
        f"import time; time.sleep(120)\n"
    )
    consumer = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        lines = iter(consumer.stdout.readline, "")
        assert any(line.strip() == "READY" for line in lines), (
            "the consumer died before its workers ran"
        )
        workers = list(child_processes(consumer.pid))
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
