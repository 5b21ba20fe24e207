"""Shared fixtures and helpers.

``REPO``: the repository root.  ``SMALL``: train.py flags of a narrow net on ``tiny_data``'s
48 training images (6 steps per epoch at batch 8).  :func:`run_script`: the one launcher of
train.py, evaluate.py and the other scripts, as a subprocess in the repository root (:func:`run_py`:
one that must succeed).
``tiny_data``: path (str) of a generated Tiny ImageNet (4 classes, 12 train and
4 val images per class, 32x40 i.e. height 32 width 40, seed 0), made once per
test session.  Treat it as read-only: a test that changes files copies it
first (the loader may add its cache under ``<root>/.cache``), or takes ``data``, a private copy.
``run_checkpoint``: a run folder with a random-weight network on ``tiny_data``'s shapes (made once
per test process, read-only too); :func:`evaluate_in_process` and :func:`expect_error` run
evaluate.py's main on it.  :func:`refused`: train.py's flag checks in-process.
:func:`run_settings`, :func:`cam_model` and :func:`build`: a RunSettings, a CAMModel and its graph.

TensorFlow's op determinism, which train.py and evaluate.py turn on for their process
(training/session.py), is turned off again after each test: once on, it refuses the
unseeded random ops of the graphs later tests build in the same process.
"""

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest

from dataflow.synthetic import generate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["--depth", "18", "--aug", "gr", "--batch", "8", "--width-mult", "0.125", "--threads", "2"]
# the same narrow net without a batch size, 3 steps per epoch (test_gpu_towers.py, test_gpu_layouts.py)
SMALL_3STEPS = "--depth 18 --aug gr --width-mult 0.125 --threads 2".split()
SMALL_3STEPS += "--steps-per-epoch 3 --val-every 2".split()
TINY = dict(classes=4, train_per_class=12, val_per_class=4, seed=0, height=32, width=40)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("tiny") / "data", **TINY)


@pytest.fixture
def data(tiny_data, tmp_path):
    """A private copy of tiny_data that a test may change (test_dataflow.py, test_dataflow_cache.py)."""
    return shutil.copytree(tiny_data, tmp_path / "data", ignore=shutil.ignore_patterns(".cache"))


@pytest.fixture(autouse=True)
def op_determinism_off_afterwards():
    yield
    if "tensorflow" in sys.modules:
        from tensorflow.python.framework import config  # no public switch-off

        config.disable_op_determinism()


def run_script(*args, timeout=300, **kw):
    """``python ARGS`` (e.g. ``"train.py", "--data", ...``) in the repository root, output captured."""
    return subprocess.run(
        [sys.executable, *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def run_py(*args, timeout=300):
    proc = run_script(*args, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def refused(argv):
    """train.py's flag checks on this machine, in-process (no data read, nothing built): the UserError's message."""
    from errors import UserError
    from runrecord import command
    from training import machine, trainer

    flags, facts = command.parse_args(argv), machine.facts()
    with pytest.raises(UserError) as info:
        trainer.check_memory(flags, facts)
        command.make_env(flags, facts)
    return str(info.value)


def evaluate_cams(tiny_data, load, out):
    run_py("evaluate.py", "--load", load, "--data", tiny_data, "--save-cams", str(out))
    return np.load(out)


def assert_cam_identity(cams):
    """``cams.mean() + bias == logit`` for every image's label (GAP then FC is linear)."""
    n = np.arange(len(cams["labels"]))
    np.testing.assert_allclose(
        cams["cams"].mean(axis=(1, 2)) + cams["fc_bias"][cams["labels"]],
        cams["logits"][n, cams["labels"]],
        rtol=1e-4,
        atol=1e-4,
    )


TABLE_ROW = re.compile(
    r"^\|\s*(GT-known Loc|Top-1 Loc|Top-1 Clas|Top-5 Loc|Top-5 Clas)\s*\|\s*([0-9.]+)\s*\|$"
)


def save_random_model(logdir, num_classes, image_shape, step=3, holdout=0, width_mult=0.125):
    """A ResNet-18 CAMModel with random weights, saved as ``logdir/model-STEP`` + a settings.json
    with the model and the training fields evaluate.py reads (``train.holdout``)."""
    import tensorflow as tf
    from tensorpack.tfutils.tower import TowerContext

    from models.resnet import CAMModel
    from runrecord import ModelSettings

    tf1 = tf.compat.v1
    model = CAMModel(
        ModelSettings(
            depth=18,
            num_classes=num_classes,
            image_shape=list(image_shape),
            width_mult=width_mult,
            mean_bgr=[100.0, 110.0, 120.0],
            std_bgr=[60.0, 60.0, 60.0],
        )
    )
    with tf.Graph().as_default():
        tf1.set_random_seed(
            0
        )  # also needed once an in-process evaluate.py turned op determinism on
        inputs = [tf1.placeholder(s.dtype, s.shape, s.name) for s in model.get_input_signature()]
        with TowerContext("", is_training=False):
            model.build_graph(*inputs)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            tf1.train.Saver().save(sess, os.path.join(logdir, "model"), global_step=step)
    settings = {
        "model": asdict(model.settings),
        "train": {"aug": "cam", "batch": 8, "holdout": holdout},
        "speed": {},
    }
    with open(os.path.join(logdir, "settings.json"), "w") as f:
        json.dump(settings, f)
    return os.path.join(logdir, f"model-{step}")


@pytest.fixture(scope="session")
def run_checkpoint(tiny_data, tmp_path_factory):
    logdir = tmp_path_factory.mktemp("run")
    save_random_model(str(logdir), num_classes=4, image_shape=(32, 40))
    return str(logdir)


def evaluate_in_process(argv, capsys):
    """Run evaluate.py's main as the CLI would; returns (exit code, stdout, stderr)."""
    import evaluate
    from errors import run_main

    try:
        code = run_main(evaluate.main, argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def printed_summary(stdout):
    """The five metrics of the table evaluate.py printed, by their cam.METRICS names."""
    from cam import METRICS

    rows = dict(m.groups() for m in map(TABLE_ROW.match, stdout.splitlines()) if m)
    keys = dict(
        zip(("GT-known Loc", "Top-1 Loc", "Top-1 Clas", "Top-5 Loc", "Top-5 Clas"), METRICS)
    )
    return {keys[title]: float(value) for title, value in rows.items()}


def expect_error(argv, capsys, *fragments):
    """evaluate.py exits 2 with one ``error:`` line that holds every fragment; returns the line."""
    code, out, err = evaluate_in_process(argv, capsys)
    assert code == 2, (out, err)
    assert "Traceback" not in err
    line = [x for x in err.splitlines() if x.startswith("error: ")]
    assert len(line) == 1, err
    for fragment in fragments:
        assert fragment in line[0], line[0]
    return line[0]


def run_settings(**changes):
    """A RunSettings; ``changes`` as ``{"train.lr": 0.2, "speed.workers": 4, "data": "/x"}``."""
    import runrecord

    s = runrecord.RunSettings(
        runrecord.ModelSettings(
            depth=18,
            num_classes=4,
            image_shape=[32, 40],
            width_mult=0.125,
            mean_bgr=[1.0, 2.0, 3.0],
            std_bgr=[4.0, 5.0, 6.0],
        ),
        runrecord.TrainSettings(
            aug="gr", batch=8, epochs=3, steps_per_epoch=6, final_step=18, threads=2
        ),
        runrecord.SpeedSettings(workers=0),
        data="/a",
        dataset={"sha1": "abc", "holdout": 0},
        git_commit="x",
    )
    for key, value in changes.items():
        section, _, name = key.partition(".")
        if name:
            setattr(getattr(s, section), name, value)
        else:
            setattr(s, section, value)
    return s


# a network's normalisation in cam_model (test_models_graph.py, test_models_training.py)
MEAN, STD = [104.0, 114.0, 123.0], [57.0, 57.0, 58.0]


def cam_model(depth, num_classes, image_shape, **fields):
    """``CAMModel(ModelSettings, TrainSettings)``; ``fields`` go to whichever settings has them."""
    from models.resnet import CAMModel
    from runrecord import ModelSettings, TrainSettings

    model = {k: fields.pop(k) for k in list(fields) if k in ModelSettings.__dataclass_fields__}
    model = ModelSettings(
        depth, num_classes, list(image_shape), **dict(dict(mean_bgr=MEAN, std_bgr=STD), **model)
    )
    return CAMModel(model, TrainSettings(aug="cam", batch=8, **fields))


def build(model, batch=None, training=False):
    """Build ``model`` in a new graph; return the graph and its cost."""
    import tensorflow as tf
    from tensorpack.tfutils.tower import TowerContext

    from models.resnet import INPUT_IMAGE, INPUT_LABEL

    tf1 = tf.compat.v1
    g = tf.Graph()
    with g.as_default():
        h, w = model.image_shape
        image = tf1.placeholder(tf.uint8, (batch, h, w, 3), INPUT_IMAGE)
        label = tf1.placeholder(tf.int32, (batch,), INPUT_LABEL)
        with TowerContext("", is_training=training):
            cost = model.build_graph(image, label)
    return g, cost
