"""Tests of runrecord/cost.py: the FLOP count against the built graph, rates.json, hours measured or estimated."""

import json

import pytest

from runrecord import cost, machine
from tests.conftest import build, cam_model


@pytest.mark.parametrize(
    "depth,width,stride,shape,classes",
    [(18, 0.0625, 4, (64, 64), 200), (34, 0.125, 8, (32, 40), 7)],
)
def test_forward_macs_equal_the_graphs_convolutions(depth, width, stride, shape, classes):
    from benchmarks.bench_train import forward_flops

    graph, _ = build(
        cam_model(depth, classes, shape, width_mult=width, final_stride=stride),
        batch=2,
        training=True,
    )
    assert 2 * cost.forward_macs(depth, width, stride, shape, classes) == forward_flops(graph)


def test_paper_flops():
    """The paper's networks at 64x64 (docs/tables.md): 3.86 and 7.19 GMAC forward."""
    assert (
        round(cost.forward_macs(18) / 1e9, 2) == 3.86
        and round(cost.forward_macs(34) / 1e9, 2) == 7.19
    )
    assert cost.train_flops(18) == 6 * cost.forward_macs(18)


def test_record_rate_merges_one_entry_per_key(tmp_path):
    path = str(tmp_path / "results" / "rates.json")
    cost.record_rate("GPU X", 18, 256, "tf32", 100.0, "a", path=path)
    cost.record_rate("GPU X", 18, 32, "tf32", 50.0, "b", path=path)
    cost.record_rate("GPU X", 18, 256, "tf32", 120.0, "c", path=path)  # replaces the first
    entries = cost.read_rates(path)
    assert sorted((e["batch"], e["img_per_s"], e["command"]) for e in entries) == [
        (32, 50.0, "b"),
        (256, 120.0, "c"),
    ]
    assert json.load(open(path))["rates"] == entries
    with pytest.raises(ValueError, match="precision"):
        cost.record_rate("GPU X", 18, 32, "fp64", 1.0, "x", path=path)


def test_rate_measured_else_estimated_at_the_peak():
    rates = [
        {
            "device": "NVIDIA H100 80GB HBM3",
            "depth": 18,
            "batch": 256,
            "precision": "tf32",
            "img_per_s": 5000.0,
            "command": "make gpu-check",
            "host": "h",
            "measured": "2026-12-06 10:00",
        }
    ]
    flops = cost.train_flops(18)
    got = cost.rate_for("NVIDIA H100 80GB HBM3", 18, 256, "tf32", flops, rates)
    assert got.measured and got.img_per_s == 5000.0 and "make gpu-check" in got.how
    other = cost.rate_for("NVIDIA H100 80GB HBM3", 18, 32, "tf32", flops, rates)
    assert (
        not other.measured
        and other.img_per_s == pytest.approx(494.7e12 / flops)
        and "lower bound" in other.how
    )
    narrow = cost.rate_for(
        "NVIDIA H100 80GB HBM3", 18, 256, "tf32", flops, rates, paper_model=False
    )
    assert not narrow.measured
    assert cost.rate_for("Some GPU", 18, 256, "tf32", flops, rates).img_per_s is None
    assert (
        "unknown (no rate measured and no known peak" in cost.cost_lines("Some GPU", rates=rates)[0]
    )


def test_cost_lines_say_how_each_figure_was_obtained():
    h100 = "NVIDIA H100 80GB HBM3"
    rates = [
        {
            "device": h100,
            "depth": d,
            "batch": 256,
            "precision": "fp16",
            "img_per_s": 10000.0,
            "command": "make gpu-check",
            "host": "h",
            "measured": "2026-12-06",
        }
        for d in (18, 34)
    ]
    lines = cost.cost_lines(h100, rates=rates)
    assert len(lines) == 3 * 3 and all(
        "Table" in x and "GPU-hours" in x for x in lines
    )  # fp32, tf32, fp16
    t1_fp16 = next(x for x in lines if x.startswith("Table 1") and "fp16" in x)
    # 10 runs of 1500 epochs x 100,000 images at 10,000 img/s: 10 x 4.17 h
    assert (
        "41.7 GPU-hours" in t1_fp16
        and "10 run(s) at rates measured" in t1_fp16
        and "estimated" not in t1_fp16
    )
    t2_fp16 = next(x for x in lines if x.startswith("Table 2") and "fp16" in x)
    assert "6 run(s) at rates measured" in t2_fp16 and "12 run(s) estimated" in t2_fp16
    assert all("estimated" in x and "measured" not in x for x in lines if "tf32" in x)
    both = next(x for x in lines if x.startswith("Tables 1 and 2") and "fp16" in x)
    assert (
        "22 runs" in both
        and "10 run(s) at rates measured" in both
        and "12 run(s) estimated" in both
    )


def test_gpu_names_from_nvidia_smi(tmp_path):
    smi = tmp_path / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\necho '0, NVIDIA H100 80GB HBM3, 550.54.15, 9.0'\necho '1, NVIDIA H200, 550.54.15, 9.0'\n"
    )
    smi.chmod(0o755)
    assert [(g["index"], g["name"], g["capability"]) for g in machine.nvidia_smi(str(smi))] == [
        ("0", "NVIDIA H100 80GB HBM3", (9, 0)),
        ("1", "NVIDIA H200", (9, 0)),
    ]
    assert machine.gpu_record(str(smi))[1] == {"name": "NVIDIA H200", "driver": "550.54.15"}
    assert cost.device_name(["1"], smi=str(smi)) == "NVIDIA H200"
    assert cost.device_name([], cores=2).startswith("CPU ") and cost.device_name(
        [], cores=2
    ).endswith(", 2 cores")
    assert cost.precision(False, 1, "NVIDIA H200") == "fp32"  # --tf32 is off by default
    assert cost.precision(False, 1, "NVIDIA H200", tf32=True) == "tf32"
    assert cost.precision(False, 1, "Tesla V100", tf32=True) == "fp32"  # no TF32 before Ampere
    assert (
        cost.precision("fp16", 1, "NVIDIA H200") == "fp16"
        and cost.precision(False, 0, "CPU x, 2 cores") == "fp32"
    )


def test_default_workers_scale_with_the_gpus_and_the_recipe_within_the_cores():
    assert cost.default_workers(0, 64) == 0  # the CPU trains: no workers
    assert (
        cost.default_workers(1, 64) == 2 and cost.default_workers(8, 64) == 11
    )  # 8 x 8,000 / 6,000 img/s
    assert cost.default_workers(8, 64, jitter=True) == 50  # 8 x 8,000 / 1,300 img/s
    assert cost.default_workers(8, 32, jitter=True) == 30  # the cores less the trainer's
    assert cost.default_workers(1, 64, jitter=True) > cost.default_workers(1, 64)
    assert cost.default_workers(4, 2) == 1  # at least one
