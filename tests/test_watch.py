"""Tests of evaluation/watch.py's localisation during training, against evaluate.py's pipeline on the same outputs."""

from types import SimpleNamespace

import numpy as np
import pytest

from cam import CAM_THRESHOLD, PROTOCOLS, BoxEvaluator
from evaluation.runner import evaluate_images
from evaluation.watch import LOC_STATS, LocalizationInferencer


def outputs(rng, n, fc, h=4, w=5, classes=3):
    """What the validation tower fetches: features (n, h, w, C), fc_W (C, K), fc_b (K,), logits (n, K)."""
    return [
        rng.normal(size=(n, h, w, fc[0].shape[0])).astype(np.float32),
        *fc,
        rng.normal(size=(n, classes)),
    ]


@pytest.mark.parametrize("limit", [10, 7, 100])
def test_batches_in_order_give_evaluates_numbers_on_the_first_images(limit):
    rng = np.random.default_rng(0)
    n = 10
    # alternately near the whole 16x20 image and small: the random CAMs' boxes hit some, miss others
    boxes = np.array([[0, 0, 19, 13] if i % 2 else [2, 2, 9, 9] for i in range(n)])
    split = SimpleNamespace(
        images=rng.integers(0, 256, (n, 16, 20, 3), dtype=np.uint8),
        labels=rng.integers(0, 3, n),
        boxes=boxes,
    )
    fc = (
        rng.normal(size=(6, 3)),
        rng.normal(size=3),
    )  # the FC weights of one step: the same in every batch
    batches = [outputs(rng, 4, fc), outputs(rng, 4, fc), outputs(rng, 2, fc)]
    inf = LocalizationInferencer(split, limit)
    inf._before_inference()
    for b in batches:
        inf._on_fetches(b)
    got = inf._after_inference()

    m = min(
        limit, n
    )  # evaluate.py's pipeline, one pass over the same outputs of the first m images
    every = [
        np.concatenate([b[0] for b in batches])[:m],
        *fc,
        np.concatenate([b[3] for b in batches])[:m],
    ]
    ev = {"authors": BoxEvaluator(PROTOCOLS["authors"], [CAM_THRESHOLD])}
    evaluate_images(
        lambda _: every, split.images[:m], split.labels[:m], split.boxes[:m], ev, batch_size=m
    )
    want = ev["authors"].summary(CAM_THRESHOLD)
    assert ev["authors"].count == m
    assert got == {name: want[metric] for metric, name in LOC_STATS.items()}
    assert (
        0 < got["val-gt-known-loc"] < 100 and got["val-top1-loc"] < got["val-gt-known-loc"]
    )  # not a blank case
