"""Issue 27, train.py: bad data refused at load time, interrupts and setup errors during the setup.

Each test fails before any graph is built, or calls one function of training/trainer.py with stand-ins."""

import errno
import os
import shutil
import threading
import types

import cv2
import numpy as np
import pytest

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
import train
from training import trainer
from dataflow.synthetic import generate
from errors import UserError
from runrecord.command import parse_args
from tests.conftest import SMALL


def test_val_images_of_another_size_are_refused_at_load_time(tiny_data, tmp_path):
    """Item 3: train.py trained until the first validation, then died (every rerun at the same point)."""
    other = generate(
        tmp_path / "other",
        classes=4,
        train_per_class=1,
        val_per_class=4,
        seed=0,
        height=40,
        width=40,
    )
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns(".cache"))
    shutil.rmtree(data / "val")
    shutil.copytree(os.path.join(other, "val"), data / "val")
    logdir = tmp_path / "run"
    with pytest.raises(
        UserError, match=r"val images are 40x40 \(HxW\) but the train images are 32x40"
    ):
        train.main(["--data", str(data), *SMALL, "--logdir", str(logdir)])
    assert not os.path.exists(logdir / "settings.json")


def test_constant_training_pixels_are_refused_with_the_cause(data, tmp_path):
    """Item 8: std 0 gave a NaN loss at step 1, blamed on the learning rate."""
    for folder, _, files in os.walk(os.path.join(data, "train")):
        for name in files:
            if name.endswith(".JPEG"):
                cv2.imwrite(os.path.join(folder, name), np.full((32, 40, 3), 128, np.uint8))
    with pytest.raises(UserError, match=r"same B/G/R value \(standard deviation 0\)"):
        train.main(["--data", str(data), *SMALL, "--logdir", str(tmp_path / "run")])


def test_an_interrupt_before_the_feeder_started_stays_an_interrupt(tmp_path, monkeypatch):
    """Item 4: Ctrl-C or SIGTERM during the setup printed "cannot join thread before it is started"."""

    def setup_interrupted(config, trainer):
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "launch_train_with_config", setup_interrupted)
    config = types.SimpleNamespace(
        data=types.SimpleNamespace(thread=threading.Thread(target=lambda: None))
    )
    with pytest.raises(KeyboardInterrupt):
        trainer.train_steps(types.SimpleNamespace(towers=1, cluster=None), config, str(tmp_path))


def test_too_many_open_files_is_named(tiny_data, tmp_path, monkeypatch):
    """Item 4: --workers 40 under ulimit -n 64 was reported as the RuntimeError of the join."""

    def out_of_files(*args, **kw):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(trainer, "run", out_of_files)
    with pytest.raises(UserError, match="too many open files .*lower --workers"):
        train.main(["--data", tiny_data, *SMALL, "--logdir", str(tmp_path / "run")])


def test_a_path_tensorflow_cannot_encode_is_refused_by_the_parser(tiny_data, tmp_path, capsys):
    """Item 22: a unicode --logdir under LC_ALL=C PYTHONUTF8=0 (argv decoded to lone surrogates) was a
    UnicodeEncodeError traceback from TensorFlow's file functions."""
    import evaluate

    bad = str(tmp_path / "run\udcc3\udca9")  # "runé" as Python decodes it in the C locale
    for parse, argv in (
        (parse_args, ["--data", tiny_data, *SMALL, "--logdir", bad]),
        (evaluate.parse_args, ["--data", tiny_data, "--load", bad]),
    ):
        with pytest.raises(SystemExit):
            parse(argv)
        assert "PYTHONUTF8=1" in capsys.readouterr().err
    good = str(tmp_path / "runé")  # the same name in a UTF-8 locale
    assert parse_args(["--data", tiny_data, *SMALL, "--logdir", good]).logdir == good
