"""Learning happens: train.py then evaluate.py on generated data, checked against chance and a box without a network.

A narrow ResNet-18 trained for a few epochs on a small synthetic dataset
(non-square, 32 high x 40 wide) must classify its validation images well
above chance, and its CAM boxes must beat the box drawn without looking at
the image (the whole image).  A pipeline that misaligns labels and images
(labels shifted under augmentation, the CAM of the wrong class, boxes in the
wrong frame) fails here even though every unit test passes: shifting each
batch's labels by one in ``dataflow.builders.TrainBatches`` left validation
Top-1 at chance and failed this test (the mutation is described in the
docs/data.md, "Synthetic data").
"""

import json

import numpy as np
import pytest

from cam.metrics import iou, is_localized
from tests.conftest import run_script
from dataflow.synthetic import generate

# 4 classes x 60 training images, 32x40: a few seconds per epoch for a width-0.125 net on 2 cores.
DATA = dict(classes=4, train_per_class=60, val_per_class=15, seed=3, height=32, width=40)
TRAIN = "--depth 18 --aug cam --batch 16 --width-mult 0.125".split()
TRAIN += "--epochs 8 --lr-step-epochs 6 --val-every 100 --seed 0".split()
CHANCE = 100.0 / DATA["classes"]


def run(script, *args):
    proc = run_script(script, *args, timeout=600)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"


@pytest.mark.slow
def test_training_learns_to_classify_and_localise(tmp_path):
    data = generate(tmp_path / "data", **DATA)
    logdir, report = tmp_path / "run", tmp_path / "eval.json"
    run("train.py", "--data", data, "--logdir", str(logdir), *TRAIN)
    run("evaluate.py", "--load", str(logdir), "--data", data, "--json", str(report))
    with open(report) as f:
        result = json.load(f)
    # the "paper" protocol: clamped inclusive IoU, a hit at IoU > 0.5 (docs/sources.md)
    paper, records = result["protocols"]["paper"], result["records"]
    gt = np.array([r["gt_box"] for r in records])
    h, w = DATA["height"], DATA["width"]
    whole = np.broadcast_to([0, 0, w - 1, h - 1], gt.shape)
    whole_image = 100.0 * is_localized(iou(whole, gt), 0.5, strict=True).mean()

    assert len(records) == DATA["classes"] * DATA["val_per_class"]
    # evaluate.py's own baseline
    assert paper["baselines"]["whole_image"] == pytest.approx(whole_image)
    top1, loc = paper["summary"]["top1_clas"], paper["summary"]["gt_known_loc"]
    assert top1 >= CHANCE + 40, f"Top-1 {top1:.1f}% (chance {CHANCE:.0f}%)"
    assert loc > whole_image, f"GT-known Loc {loc:.1f}% vs whole-image box {whole_image:.1f}%"
