"""Helpers of the reproduce/ tests: hand-written run folders (settings.json, done.json, eval.json, figure
panels), their protocols, a table's runs and its collected result, and ``table_data``, a generated
dataset with one step of the paper's batch 256."""

import json
import os
import sys

import pytest

import fileio
import runrecord
from reproduce import runs as rs


@pytest.fixture(scope="module")
def table_data(tmp_path_factory):
    """A generated dataset with 4 x 64 = 256 training images: one step of the paper's batch 256."""
    from dataflow.synthetic import generate

    return str(
        generate(
            tmp_path_factory.mktemp("table") / "data",
            classes=4,
            train_per_class=64,
            val_per_class=3,
            seed=1,
            height=32,
            width=40,
        )
    )


def summary(gt, top1, clas):
    return {
        "gt_known_loc": gt,
        "top1_loc": top1,
        "top1_clas": clas,
        "top5_loc": 0.0,
        "top5_clas": 0.0,
    }


def write_eval(logdir, gt_known, top1_loc, top1_clas, done=True, settings=None, **contract):
    """A finished run's folder: settings.json, done.json, then eval.json (1 s newer) and figure panels.

    ``settings``: a RunSettings (default: some valid one); ``contract``: more eval.json fields
    (protocol, protocols, wsol2020), as evaluate.py writes them.
    """
    os.makedirs(os.path.join(logdir, rs.FIGURE_DIR), exist_ok=True)
    settings = settings or runrecord.RunSettings(
        runrecord.ModelSettings(18, 4, [32, 40]), runrecord.TrainSettings("gr", 256)
    )
    fileio.write_json(os.path.join(logdir, runrecord.SETTINGS), settings.to_json())
    if done:
        with open(os.path.join(logdir, "done.json"), "w") as f:
            json.dump({"global_step": 10, "epoch": 2}, f)
        os.utime(os.path.join(logdir, "done.json"), (1000, 1000))
    with open(os.path.join(logdir, "eval.json"), "w") as f:
        json.dump(
            {
                "summary": summary(gt_known, top1_loc, top1_clas),
                "records": [],
                "settings": {
                    "checkpoint": os.path.join(logdir, "model-10"),
                    "split": "val",
                    "limit": None,
                },
                **contract,
            },
            f,
        )
    os.utime(os.path.join(logdir, "eval.json"), (1001, 1001))


def protocols(gt, top1, clas, *, whole=40.0, fixed=45.0, holdout=None):
    """``protocols`` of an eval.json: authors = the given values, paper 1 point lower, wsol 3 lower."""
    out = {}
    for name, shift in (("authors", 0.0), ("paper", -1.0), ("wsol", -3.0)):
        out[name] = {
            "summary": summary(gt + shift, top1 + shift, clas),
            "baselines": {"whole_image": whole, "best_fixed_box": fixed},
            "holdout": holdout,
        }
    return out


def table_runs(tmp_path, table=1, seeds=(0,), batch_map=None, depths=None):
    return rs.make_runs(
        rs.table_configs(table, batch_map, depths, seeds), data=None, logroot=str(tmp_path)
    )


def collect(tmp_path, table=1, seeds=(0,), batch_map=None, depths=None, **kw):
    return rs.collect(
        table,
        table_runs(tmp_path, table, seeds, batch_map, depths),
        batch_map=batch_map,
        depths=depths,
        **kw,
    )


def make_run(tmp_path, data, name="r18-gr-b256", train_args=(), seeds=(0,), expectation=None):
    cfg = next(c for c in rs.table_configs(1, seeds=seeds) if c.name == name)
    return rs.make_runs(
        [cfg],
        data=str(data),
        logroot=str(tmp_path / "logs"),
        train_args=list(train_args),
        gpus_per_run=0,
        python="py",
        repo="/repo",
        expectation=expectation,
    )[0]


def fake_run(tmp_path, name, train_code, eval_code="pass"):
    """A Run whose 'training' and 'evaluation' are short python -c programs run in its logdir."""
    logdir = str(tmp_path / name)
    ev = (
        f"import json,os; os.makedirs(os.path.join({logdir!r}, {rs.FIGURE_DIR!r}), exist_ok=True); "
        "json.dump({'summary': {'gt_known_loc': 1, 'top1_loc': 2, 'top1_clas': 3}, 'settings': "
        f"{{'checkpoint': os.path.join({logdir!r}, 'model-1'), 'split': 'val', 'limit': None}}}},"
        f" open(os.path.join({logdir!r}, 'eval.json'), 'w')); " + eval_code
    )
    tr = (
        f"import json,os; print('training {name}', os.environ['CUDA_VISIBLE_DEVICES']); "
        + train_code
        + f"; json.dump({{}}, open(os.path.join({logdir!r}, 'done.json'), 'w'))"
    )
    return rs.Run(
        rs.Config(18, name, 1), logdir, [sys.executable, "-c", tr], [sys.executable, "-c", ev]
    )


def table_argv(table, *rest, data=None, logroot=None, results=None):
    """A command line of ``python -m reproduce``: --table TABLE, then --data, --logroot and --results
    where given (as str), then ``rest`` as is (more flags and values, a ``--`` and train.py's)."""
    argv = ["--table", str(table)]
    for flag, value in (("--data", data), ("--logroot", logroot), ("--results", results)):
        if value is not None:
            argv += [flag, str(value)]
    return [*argv, *rest]
