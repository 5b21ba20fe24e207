"""runrecord/settings.py and argtypes.py: the settings, their comparison, flags and validation,
the dataset fingerprint."""

import argparse
import dataclasses
import json
import os
import types

import numpy as np
import pytest

import argtypes
import runrecord
from errors import UserError
from tests.conftest import run_settings


def test_differences_compare_what_matters_and_ignore_speed():
    base = run_settings()
    assert (
        base.differences(
            run_settings(**{"speed.workers": 4, "speed.gpus": 2}, data="/elsewhere", git_commit="y")
        )
        == []
    )
    # they change the last bits of the results (docs/reproducibility.md)
    assert base.differences(
        run_settings(**{"train.threads": 16, "train.deterministic": False})
    ) == ["train.deterministic: True -> False", "train.threads: 2 -> 16"]
    assert base.differences(run_settings(**{"train.lr": 0.2})) == ["train.lr: 0.1 -> 0.2"]
    assert base.differences(run_settings(**{"train.recipe": "sn-resnet"})) == [
        "train.recipe: paper -> sn-resnet"
    ]
    assert base.differences(run_settings(dataset={"sha1": "def", "holdout": 0})) == [
        "dataset.sha1: abc -> def"
    ]
    # mean/std unknown before the pixels are read: not compared; known and different: compared
    assert base.differences(run_settings(**{"model.mean_bgr": None})) == []
    assert base.differences(run_settings(**{"model.mean_bgr": [0.0, 2.0, 3.0]})) == [
        "model.mean_bgr: [1.0, 2.0, 3.0] -> [0.0, 2.0, 3.0]"
    ]


def test_json_round_trip_and_an_older_layout_refused_with_its_file_named(tmp_path):
    s = run_settings()
    again = runrecord.RunSettings.from_json(json.loads(json.dumps(s.to_json())))
    assert again == s and set(s.to_json()) >= {"model", "train", "speed", "dataset", "data"}
    # what train.py wrote before: speed keys in "train" (no "speed"), image_shape in the fingerprint,
    # threads in "speed" (before issue 17), horovod_size (before --cluster)
    no_speed = s.to_json()
    no_speed["train"].update(no_speed.pop("speed"))
    shape = dict(s.to_json(), dataset={"sha1": "abc", "image_shape": [32, 40]})
    threads = s.to_json()
    threads["speed"]["threads"] = threads["train"].pop("threads")
    horovod = s.to_json()
    horovod["speed"]["horovod_size"] = horovod["speed"].pop("machines")
    for old, why in (
        (no_speed, 'no "speed" section'),
        (shape, '"image_shape" in "dataset"'),
        (threads, "threads"),
        (horovod, "horovod_size"),
    ):
        runrecord.write_json(str(tmp_path / runrecord.SETTINGS), old)
        with pytest.raises(UserError) as info:
            runrecord.load_settings(str(tmp_path))
        message = str(info.value)
        assert (
            message.startswith(
                f"{tmp_path / runrecord.SETTINGS}: settings: not this train.py's settings.json "
                "layout ("
            )
            and why in message
            and "written by an older train.py" in message
        )


@pytest.mark.parametrize(
    "key, value",
    [
        ("train.lr", float("nan")),
        ("train.weight_decay", float("inf")),
        ("train.momentum", 1.0),
        ("train.recipe", "other"),
        ("train.normalize", "x"),
        ("train.seed", -1),
        ("model.depth", 50),
        ("train.epochs", 10**7),
        ("speed.val_every", 0),
    ],
)
def test_validation_refuses_bad_values(key, value):
    d = run_settings().to_json()
    section, name = key.split(".")
    d[section][name] = value
    with pytest.raises(ValueError, match=name):
        runrecord.RunSettings.from_json(d)


def test_the_choices_stated_in_the_fields_are_the_codes():
    # runrecord imports no TensorFlow: the fields take models/' choices from its TensorFlow-free layer plan
    # and augment/'s from its TensorFlow-free registry, and each method builds
    from augment.methods import augmentor_list
    from augment.registry import names, paper_methods
    from models.plan import DEPTHS, FINAL_STRIDES

    choices = {
        f.name: f.metadata.get("choices")
        for cls in (runrecord.ModelSettings, runrecord.TrainSettings)
        for f in dataclasses.fields(cls)
    }
    assert tuple(choices["aug"]) == names() and tuple(choices["aug"][:5]) == paper_methods()
    assert all(isinstance(augmentor_list(m, (1.0, 2.0, 3.0)), list) for m in choices["aug"])
    assert choices["depth"] == tuple(sorted(DEPTHS)) and choices["final_stride"] == tuple(
        sorted(FINAL_STRIDES)
    )
    assert choices["normalize"] == runrecord.NORMALIZE and choices["recipe"] == tuple(
        sorted(runrecord.RECIPES)
    )


def test_add_flags_makes_the_fields_flags():
    p = argparse.ArgumentParser(allow_abbrev=False)
    runrecord.add_flags(p, runrecord.ModelSettings, ["depth", "width_mult"])
    runrecord.add_flags(p, runrecord.TrainSettings, ["weight_decay", "deterministic", "flip"])
    args = p.parse_args([])
    assert (args.depth, args.width_mult, args.wd, args.nondeterministic, args.flip) == (
        18,
        1.0,
        1e-4,
        False,
        None,
    )
    assert (
        runrecord.field_default(runrecord.ModelSettings, "depth") == 18
    )  # positional, the flag's default
    assert p.parse_args(["--wd", "0", "--nondeterministic", "--no-flip"]).wd == 0.0
    text = p.format_help()
    for said in (
        "ResNet depth (default 18; paper sec. 3",
        "(default 1.0;",
        "(default 0.0001; paper sec. 3)",
        "(default: deterministic;",
        "(default: --recipe's;",
    ):
        assert said in " ".join(text.split()), said
    with pytest.raises(SystemExit):
        p.parse_args(["--wd", "-1"])  # the field's argparse type
    unset = argparse.ArgumentParser()
    runrecord.add_flags(unset, runrecord.ModelSettings, ["depth", "width_mult"], unset=True)
    assert vars(unset.parse_args([])) == {"depth": None, "width_mult": None}
    said = " ".join(unset.format_help().split())
    assert "settings.json, needed without one" in said  # --depth has no default of its own
    assert "settings.json, else 1.0" in said  # the help names the field's default
    with pytest.raises(ValueError, match="not by a flag"):
        runrecord.add_flags(unset, runrecord.ModelSettings, ["num_classes"])


def test_recipe_parts_and_overrides():
    assert runrecord.resolve_recipe("paper") == {
        "flip": False,
        "jitter": False,
        "normalize": "dataset",
        "early_grad_scale": 1.0,
    }
    sn = runrecord.resolve_recipe("sn-resnet", flip=False, early_grad_scale=None)
    assert sn == {"flip": False, "jitter": True, "normalize": "imagenet", "early_grad_scale": 0.1}


def test_fingerprint_needs_no_pixels_and_covers_the_holdout():
    def ann(files, labels):
        return types.SimpleNamespace(
            wnids=["a", "b"],
            files=files,
            labels=np.array(labels),
            boxes=np.zeros((len(labels), 4), int),
        )

    train = ann(["t0", "t1", "t2", "t3", "t4"], [0, 0, 0, 1, 1])
    val = ann(["v0"], [1])
    fp = runrecord.dataset_fingerprint(train, val)
    assert (
        fp["train_images"] == fp["train_used"] == 5
        and fp["num_classes"] == 2
        and fp["holdout"] == 0
    )
    held = runrecord.dataset_fingerprint(train, val, holdout=2)
    assert held["train_used"] == 1 and held["holdout"] == 2 and held["sha1"] == fp["sha1"]
    moved = runrecord.dataset_fingerprint(ann(["t0", "t1", "t2", "t3", "x"], [0, 0, 0, 1, 1]), val)
    assert moved["sha1"] != fp["sha1"]


def test_fingerprint_of_the_annotations_equals_that_of_the_loaded_splits(tiny_data):
    from dataflow import annotations, tinyimagenet

    loaded = runrecord.dataset_fingerprint(
        tinyimagenet.load_split(tiny_data, "train"), tinyimagenet.load_split(tiny_data, "val"), 3
    )
    cheap = runrecord.dataset_fingerprint(
        annotations.read_annotations(tiny_data, "train"),
        annotations.read_annotations(tiny_data, "val"),
        3,
    )
    pixels = loaded.pop("pixels")
    assert cheap.pop("pixels") is None and set(pixels) == {
        "train",
        "val",
    }  # the annotations have no pixels
    assert cheap == loaded and loaded["train_used"] == 4 * (12 - 3)


def test_the_fingerprint_covers_class_order_and_the_image_to_label_map(tiny_data, tmp_path):
    """Issue 19 item 3: wnids.txt reversed, or two images of two classes swapped, is another dataset."""
    import shutil
    from dataflow import annotations, tinyimagenet

    data = str(tmp_path / "data")
    shutil.copytree(tiny_data, data, ignore=shutil.ignore_patterns(".cache"))
    train, val = tinyimagenet.load_split(data, "train"), tinyimagenet.load_split(data, "val")
    recorded = runrecord.dataset_fingerprint(train, val)
    ann = [annotations.read_annotations(data, s) for s in ("train", "val")]
    assert runrecord.dataset_problem(recorded, *ann, ("val", val)) is None
    a, b = (
        os.path.join(data, val.files[i]) for i in (0, list(val.labels).index(1))
    )  # classes 0 and 1
    os.rename(a, a + ".tmp"), os.rename(b, a), os.rename(a + ".tmp", b)
    swapped = tinyimagenet.load_split(data, "val", cache_dir=str(tmp_path / "cache"))
    assert "val images differ" in runrecord.dataset_problem(recorded, *ann, ("val", swapped))
    wnids = os.path.join(data, "wnids.txt")
    with open(wnids) as f:
        names = f.read().split()
    with open(wnids, "w") as f:
        f.write("\n".join(reversed(names)) + "\n")
    ann = [annotations.read_annotations(data, s) for s in ("train", "val")]
    assert "class order" in runrecord.dataset_problem(recorded, *ann)


# --------------------------------------------------------------------------- argtypes


@pytest.mark.parametrize(
    "kind, good, bad",
    [
        (argtypes.positive_int, [("1", 1), ("12", 12)], ["0", "-1", "1.5", "x", ""]),
        (argtypes.nonnegative_int, [("0", 0), ("3", 3)], ["-1", "nan"]),
        (
            argtypes.positive_float,
            [("0.5", 0.5), ("1e-3", 1e-3)],
            ["0", "-1", "nan", "inf", "-inf", "x"],
        ),
        (argtypes.nonnegative_float, [("0", 0.0)], ["-0.1", "nan", "inf"]),
        (argtypes.probability, [("0", 0.0), ("1", 1.0), ("0.2", 0.2)], ["1.01", "-0.01", "nan"]),
        (argtypes.float_in(0, 1, high_open=True), [("0", 0.0), ("0.9", 0.9)], ["1", "nan"]),
    ],
)
def test_argtypes(kind, good, bad):
    for text, value in good:
        assert kind(text) == value
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            kind(text)
