"""Tests of reproduce/runs.py and reproduce/paper.py's numbers: the configurations, --only, --seeds, run
states and reuse, the train.py / evaluate.py commands and the flags the table script reserves."""

import os
import shutil

import pytest

from errors import UserError
from reproduce import __main__ as cli
from reproduce import executor as ex
from reproduce import paper
from reproduce import runs as rs
from reproduce.runs import Expectation
from tests.tables_fixtures import make_run, table_data, write_eval  # noqa: F401 (table_data: a fixture)


def test_paper_tables_agree_with_each_other():
    # the paper prints Top-1 Loc at batch 256 in both tables: one transcription checks the other
    assert len(paper.TABLE1) == 10 and len(paper.TABLE2) == 9
    for m in ("cam", "hns", "gr"):
        for d in paper.DEPTHS:
            assert paper.TABLE2[(m, 256)][d] == paper.TABLE1[(d, m)]["top1_loc"]


def test_configs_names_and_seeds():
    t1, t2 = rs.table_configs(1), rs.table_configs(2)
    assert len(t1) == 10 and len(t2) == 18
    assert t1[0].name == "r34-cam-b256" and {c.batch for c in t1} == {256}
    assert {c.name for c in t1 if c.aug in ("cam", "hns", "gr")} <= {c.name for c in t2}  # reuse
    assert {c.batch for c in rs.table_configs(2, {32: 4, 128: 16, 256: 32})} == {4, 16, 32}
    two = rs.table_configs(1, seeds=[0, 1], depths=(18,))
    assert [c.name for c in two[:2]] == [
        "r18-cam-b256",
        "r18-cam-b256-s1",
    ]  # seed 0 keeps today's name
    assert len(two) == 10 and {c.depth for c in two} == {18} and two[1].cell == "r18-cam-b256"
    assert cli.parse_seeds("3") == [0, 1, 2] and cli.parse_seeds("0,4,7") == [0, 4, 7]
    assert cli.parse_seeds("5,") == [5] and cli.parse_seeds(2) == [0, 1]
    for bad in ("0", "x", "1,1", "-1,2"):
        with pytest.raises(UserError, match="--seeds"):
            cli.parse_seeds(bad)


def test_select():
    t1 = rs.table_configs(1, seeds=[0, 1])
    assert [c.name for c in rs.select(t1, "r18-gr")] == ["r18-gr-b256", "r18-gr-b256-s1"]
    assert [c.name for c in rs.select(t1, "r18-gr-b256-s1")] == ["r18-gr-b256-s1"]
    assert len(rs.select(t1, "r34")) == 10
    assert len(rs.select(rs.table_configs(2), "*-b32")) == 6
    with pytest.raises(UserError, match="r50"):
        rs.select(t1, "r50")


def test_run_states(tmp_path):
    run = make_run(tmp_path, tmp_path)
    assert rs.run_state(run)[0] == rs.NEW
    write_eval(run.logdir, 1, 1, 1)
    state, _, doc = rs.run_state(run)
    assert state == rs.EVALUATED and doc.summary["top1_loc"] == 1  # the document, read once
    os.rmdir(run.figure_dir)  # evaluated before the tables asked for Figure 2: evaluated again
    assert rs.run_state(run) == (rs.TRAINED, "evaluated without the figure panels (figure2/)", None)
    os.makedirs(run.figure_dir)
    os.utime(os.path.join(run.logdir, "done.json"), (5000, 5000))
    assert rs.run_state(run)[0] == rs.TRAINED  # eval.json older than done.json
    os.remove(os.path.join(run.logdir, "done.json"))
    assert rs.run_state(run)[0] == rs.RESUMABLE


def test_finished_run_is_never_reused_for_other_settings(tmp_path, table_data):
    expect = Expectation(table_data, 0)
    run = make_run(
        tmp_path, table_data, train_args=["--epochs", "2", "--threads", "1"], expectation=expect
    )
    assert run.expected.train.epochs == 2 and run.expected.train.seed == 0
    write_eval(run.logdir, 1, 1, 1, settings=run.expected)  # as train.py and evaluate.py leave it
    speed = ["--threads=1", "--epochs=2", "--workers", "3"]  # speed settings only
    same = make_run(tmp_path, table_data, train_args=speed, expectation=expect)
    assert rs.run_state(same)[0] == rs.EVALUATED
    for other in (
        ["--epochs", "3"],
        ["--epochs", "2", "--lr", "0.05"],
        ["--epochs", "2", "--recipe", "sn-resnet"],
        ["--epochs", "2", "--threads", "2"],
        ["--epochs", "2", "--threads", "1", "--nondeterministic"],
    ):
        state, reason, _ = rs.run_state(
            make_run(tmp_path, table_data, train_args=other, expectation=expect)
        )
        assert state == rs.CONFLICT and "other settings" in reason
    args = ["--epochs", "2", "--threads", "1"]
    seed1 = make_run(tmp_path, table_data, "r18-gr-b256-s1", args, seeds=(1,), expectation=expect)
    assert seed1.expected.train.seed == 1
    assert seed1.expected.differences(run.expected) == ["train.seed: 1 -> 0"]
    with pytest.raises(UserError, match="(?s)r18-gr-b256.*nothing was run"):
        rs.refuse_conflicts([run], {run.name: (rs.CONFLICT, "holds a run with other settings")})
    other_data = tmp_path / "other"
    shutil.copytree(table_data, other_data)
    ann = other_data / "val" / "val_annotations.txt"
    lines = ann.read_text().splitlines()
    first = lines[0].split("\t")
    # one box moved by a pixel
    lines[0] = "\t".join(first[:2] + [str(int(first[2]) + 1)] + first[3:])
    ann.write_text("\n".join(lines) + "\n")
    expect_other = Expectation(str(other_data), 0)
    moved = make_run(tmp_path, other_data, train_args=["--epochs", "2"], expectation=expect_other)
    state, reason, _ = rs.run_state(moved)
    assert state == rs.CONFLICT and "dataset.sha1" in reason


def test_commands(tmp_path):
    run = make_run(tmp_path, tmp_path, "r18-gr-b256-s1", train_args=["--epochs", "2"], seeds=(1,))
    logdir = str(tmp_path / "logs" / "r18-gr-b256-s1")
    config = "--depth 18 --aug gr --batch 256 --seed 1".split()
    train = ["py", "/repo/train.py", "--data", str(tmp_path), *config, "--logdir", logdir]
    assert run.train_cmd == [*train, "--epochs", "2"]
    evaluate = ["py", "/repo/evaluate.py", "--load", logdir, "--data", str(tmp_path)]
    assert run.eval_cmd[:8] == [*evaluate, "--json", os.path.join(logdir, "eval.json")]
    assert run.eval_cmd[8:10] == ["--vis", run.figure_dir]
    gpu_run = rs.make_runs(rs.table_configs(1)[:1], data="d", logroot="l", gpus_per_run=2)[0]
    assert gpu_run.train_cmd[-2:] == ["--gpus", "2"]
    lines = rs.describe(run, rs.NEW, ex.env_prefix(["2", "3"]))
    assert lines[0].startswith("CUDA_VISIBLE_DEVICES=2,3 py /repo/train.py") and len(lines) == 2
    assert len(rs.describe(run, rs.TRAINED, "")) == 1 and rs.describe(run, rs.EVALUATED, "") == []


@pytest.mark.parametrize("flag", ["--depth", "--dep", "--bat", "--d", "--se=3", "--logd", "--gpu"])
def test_reserved_flags_and_their_abbreviations_are_refused(flag):
    with pytest.raises(UserError, match="set by the table script"):
        rs.check_passthrough(["--epochs", "2", flag, "34"])
    rs.check_passthrough(["--data-format", "NCHW", "--lr", "0.1", "--width-mult", "0.5"])
