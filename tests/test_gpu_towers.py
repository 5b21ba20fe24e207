"""The multi-GPU code paths, run on the CPU (NCHW and precisions: test_gpu_layouts.py).

* ``--towers 2``: tensorpack's replicated multi-GPU trainer with its two towers
  soft-placed on the CPU (tools/tower_probe.py trains the real train.py path and
  fetches from each tower);
* ``--cluster``: two train.py processes over TensorFlow's gRPC runtime on 127.0.0.1 (a resumed
  run ends with the variables of the first, bit for bit).
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
import tensorflow as tf

from tests.conftest import REPO, SMALL_3STEPS, assert_cam_identity, evaluate_cams, refused, run_py
from tools.tower_probe import PROBE

tf1 = tf.compat.v1


def checkpoint_variables(prefix):
    return dict(tf.train.list_variables(prefix))


def checkpoint_values(prefix):
    return {name: tf.train.load_variable(prefix, name) for name in checkpoint_variables(prefix)}


# --------------------------------------------------------------------------- towers on the CPU


@pytest.fixture(scope="module")
def two_towers(tiny_data, tmp_path_factory):
    """2 epochs of 3 steps, batch 8 over 2 towers, through tools/tower_probe.py (train.py's path)."""
    logdir = str(tmp_path_factory.mktemp("towers") / "r18-gr-b8-t2")
    towers = "--batch 8 --towers 2 --epochs 2".split()
    args = ["--data", tiny_data, *SMALL_3STEPS, *towers, "--logdir", logdir]
    run_py("-m", "tools.tower_probe", *args)
    with open(os.path.join(logdir, PROBE)) as f:
        return logdir, json.load(f)


@pytest.mark.slow
def test_two_towers_split_the_batch_and_normalise_per_tower(two_towers):
    _, probe = two_towers
    assert probe["towers"] == 2 and len(probe["steps"]) == 3 and len(probe["epoch_seconds"]) == 2
    assert probe["feeders_after_run"] == []  # no daemon feeder left to abort the process at exit
    assert probe["devices"] == ["/device:GPU:0", "/device:GPU:1"]  # tensorpack's request
    assert probe["ran_on"] and all("CPU" in d for d in probe["ran_on"])  # soft placement
    for step in probe["steps"]:
        assert step["images"] == [4, 4]  # --batch 8 is the whole minibatch
        assert step["distinct_images"]  # each tower dequeues its own images
        # each tower's BatchNorm mean is its own images' mean, not the whole batch's
        assert max(step["bn_vs_own"]) < 1e-4
    assert min(min(s["bn_vs_whole"]) for s in probe["steps"]) > 1e-3


@pytest.mark.slow
def test_tower_i_gets_part_i_of_the_streams_batch(two_towers, tiny_data):
    """One dequeue of the whole minibatch a step, split: which tower trains on which images is
    fixed (issue 17), not the order in which TensorFlow runs per-tower dequeues."""
    import hashlib
    from dataflow.builders import build_train_dataflow
    from dataflow.tinyimagenet import load_split

    _, probe = two_towers
    flow = build_train_dataflow(load_split(tiny_data, "train", progress=False), "gr", 8, seed=0)
    flow.reset_state()
    for g, step in enumerate(probe["steps"]):
        images = flow.batch(g)[0]
        halves = [images[:4], images[4:]]
        assert step["images_sha1"] == [hashlib.sha1(h.tobytes()).hexdigest() for h in halves]


@pytest.mark.slow
def test_two_towers_keep_every_variable_identical(two_towers):
    _, probe = two_towers
    mid, final = probe["mid_epoch_max_diff"], probe["final_max_diff"]
    # mid-epoch: weights, BN gammas/betas and momentum slots, kept equal by the all-reduce alone
    assert "conv0/W" in mid and "linear/W/Momentum" in mid and "conv0/bn/gamma" in mid
    assert max(mid.values()) == 0.0
    # after training: every variable, the BN moving averages included (tensorpack syncs them per epoch)
    assert "conv0/bn/mean/EMA" in final and set(mid) < set(final)
    assert max(final.values()) == 0.0


@pytest.mark.slow
def test_two_tower_checkpoint_resumes_in_one_tower(two_towers, tiny_data, tmp_path):
    logdir, _ = two_towers
    two = os.path.join(logdir, "model-6")
    assert not any(name.startswith("tower") for name in checkpoint_variables(two))
    # A one-tower run of the same whole batch (its per-tower batch differs, so it gets its own
    # logdir): it is given the two-tower run's epoch-1 checkpoint in place of its own.
    one = str(tmp_path / "r18-gr-b8-t1")
    args = ["train.py", "--data", tiny_data, *SMALL_3STEPS, "--batch", "8", "--epochs", "2"]
    args += ["--logdir", one]
    run_py(*args)
    one_variables = checkpoint_variables(os.path.join(one, "model-6"))
    assert one_variables.keys() == checkpoint_variables(two).keys()
    for name in os.listdir(one):
        if name != "settings.json":
            path = os.path.join(one, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    for name in os.listdir(logdir):
        if name.startswith("model-3."):
            shutil.copy(os.path.join(logdir, name), one)
    tf1.train.update_checkpoint_state(one, os.path.join(one, "model-3"))
    resumed = run_py(*args)
    assert "global step 3" in resumed.stdout + resumed.stderr
    assert "not found in checkpoint" not in resumed.stdout + resumed.stderr
    assert tf.train.load_variable(os.path.join(one, "model-6"), "global_step") == 6


def test_towers_flag_is_checked(tiny_data, tmp_path):
    towers = ["--batch", "9", "--towers", "2", "--logdir", str(tmp_path / "x")]
    message = refused(["--data", tiny_data, *SMALL_3STEPS, *towers])
    assert "--batch 9" in message and "towers (2)" in message


@pytest.mark.slow
def test_two_tower_checkpoint_evaluates(two_towers, tiny_data, tmp_path):
    """evaluate.py on the two-tower run: ``cams.mean() + bias == logit`` for every image."""
    logdir, _ = two_towers
    cams = evaluate_cams(tiny_data, os.path.join(logdir, "model-6"), tmp_path / "cams.npz")
    assert_cam_identity(cams)


# --------------------------------------------------------------------------- several machines


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_cluster(tiny_data, logdir, worker_logdir):
    """Task 1 (train.py) and the chief (tools/tower_probe.py, train.py's path) on loopback."""
    hosts = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
    args = [*SMALL_3STEPS, "--batch", "8", "--epochs", "2", "--cluster", hosts]
    # task 1 reads no data and writes no logdir: it is given neither (issue 23)
    worker = subprocess.Popen(
        [sys.executable, "train.py", *args, "--task", "1"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        chief = run_py(
            "-m", "tools.tower_probe", "--data", tiny_data, *args, "--task", "0", "--logdir", logdir
        )
        out, _ = worker.communicate(timeout=60)  # the chief's end releases it
    finally:
        worker.kill()
    assert worker.returncode == 0 and "the chief has finished" in out, out[-2000:]
    with open(os.path.join(logdir, PROBE)) as f:
        return chief.stdout + chief.stderr, json.load(f)


@pytest.mark.slow
def test_two_processes_over_tensorflows_runtime(tiny_data, tmp_path):
    """--cluster: one tower per process, the batch split over them, variables identical in both,
    only the chief writes, and a killed run resumes to the same variables, bit for bit."""
    logdir, worker_logdir = str(tmp_path / "chief"), str(tmp_path / "worker")
    _, probe = run_cluster(tiny_data, logdir, worker_logdir)
    jobs = [d.split("/device")[0] for d in probe["devices"]]
    assert jobs == ["/job:worker/task:0", "/job:worker/task:1"]
    # not soft-placed on the chief
    assert any("/task:1/" in d for d in probe["ran_on"]), probe["ran_on"]
    assert all(s["images"] == [4, 4] and s["distinct_images"] for s in probe["steps"])
    assert max(max(s["bn_vs_own"]) for s in probe["steps"]) < 1e-4
    assert max(probe["mid_epoch_max_diff"].values()) == 0.0
    assert max(probe["final_max_diff"].values()) == 0.0
    assert not os.path.exists(worker_logdir)
    # killed after epoch 1 (its last checkpoint and done.json never written): both re-run, it resumes
    first = checkpoint_values(os.path.join(logdir, "model-6"))
    for name in os.listdir(logdir):
        if name.startswith("model-6.") or name == "done.json":
            os.remove(os.path.join(logdir, name))
    out, _ = run_cluster(tiny_data, logdir, worker_logdir)
    assert "Resuming from" in out and "global step 3" in out
    again = checkpoint_values(os.path.join(logdir, "model-6"))
    assert again.keys() == first.keys() and again["global_step"] == 6
    assert [n for n in first if not np.array_equal(first[n], again[n])] == []  # issue 17


@pytest.mark.slow
def test_a_dead_peer_ends_the_chief_and_a_dead_chief_ends_a_task(tiny_data, tmp_path):
    """Neither waits forever (TensorFlow's runtime would): each stops within --peer-timeout with an
    error line naming the other; here the other was never started."""
    ports = free_ports(4)
    chief_hosts, task_hosts = (
        ",".join(f"127.0.0.1:{p}" for p in pair) for pair in (ports[:2], ports[2:])
    )
    flags = [*SMALL_3STEPS, "--batch", "8", "--peer-timeout", "3"]
    chief = ["--data", tiny_data, *flags, "--logdir", str(tmp_path / "c")]
    chief += ["--cluster", chief_hosts]
    task = [*flags, "--cluster", task_hosts, "--task", "1"]
    procs = [
        subprocess.Popen(
            [sys.executable, "train.py", *argv],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv in (chief, task)
    ]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            p.kill()
    peers = [f"task 1 ({chief_hosts.split(',')[1]})", f"the chief ({task_hosts.split(',')[0]})"]
    for proc, (_, err), peer in zip(procs, outs, peers):
        assert proc.returncode == 2, err[-2000:]
        message = f"error: --cluster: {peer} did not answer within 3 s (--peer-timeout)"
        assert message in err, err[-2000:]


def test_cluster_flags_are_checked(tiny_data, tmp_path):
    base = ["--data", tiny_data, *SMALL_3STEPS, "--batch", "8", "--logdir", str(tmp_path / "x")]
    assert "not host:port" in refused(base + ["--cluster", "127.0.0.1"])
    assert "appears twice" in refused(base + ["--cluster", "127.0.0.1:1,127.0.0.1:1"])
    two = ["--cluster", "127.0.0.1:1,127.0.0.1:2"]
    assert "--towers does not apply" in refused(base + [*two, "--towers", "2"])
    odd = ["--data", tiny_data, *SMALL_3STEPS, "--batch", "9", *two]
    assert "divide by the number of towers (2)" in refused([*odd, "--logdir", str(tmp_path / "y")])
