"""The multi-GPU, layout and precision code paths, run on the CPU.

* ``--towers 2``: tensorpack's replicated multi-GPU trainer with its two towers
  soft-placed on the CPU (tools/tower_probe.py trains the real train.py path and
  fetches from each tower);
* NCHW: the same variables as NHWC; a checkpoint trained in NCHW on the CPU (oneDNN)
  evaluates in evaluate.py's NHWC graph to the same numbers; without oneDNN a clear error;
* the fp16 static loss scale, at graph level;
* ``--amp``: learns on a CPU with bf16 arithmetic, refused with a clear error elsewhere;
* ``--cluster``: two train.py processes over TensorFlow's gRPC runtime on 127.0.0.1 (a resumed
  run ends with the variables of the first, bit for bit).
"""
import dataclasses
import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

import tf_env  # noqa: F401
import tensorflow as tf
from tensorpack.tfutils.tower import TowerContext

import models
import runrecord
import train
from errors import UserError
from models import INPUT_IMAGE, INPUT_LABEL, CAMModel
from tests.conftest import REPO, run_script
from training import session
from tools.tower_probe import PROBE

tf1 = tf.compat.v1
# a narrow net on the 48 training images of tiny_data (conftest.py), 3 steps per epoch
SMALL = ["--depth", "18", "--aug", "gr", "--width-mult", "0.125", "--threads", "2",
         "--steps-per-epoch", "3", "--val-every", "2"]


def run_py(*args, timeout=300):
    proc = run_script(*args, timeout=timeout)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def evaluate_cams(tiny_data, load, out):
    run_py("evaluate.py", "--load", load, "--data", tiny_data, "--save-cams", str(out))
    return np.load(out)


def assert_cam_identity(cams):
    """``cams.mean() + bias == logit`` for every image's label (GAP then FC is linear)."""
    n = np.arange(len(cams["labels"]))
    np.testing.assert_allclose(cams["cams"].mean(axis=(1, 2)) + cams["fc_bias"][cams["labels"]],
                               cams["logits"][n, cams["labels"]], rtol=1e-4, atol=1e-4)


def checkpoint_variables(prefix):
    return dict(tf.train.list_variables(prefix))


def checkpoint_values(prefix):
    return {name: tf.train.load_variable(prefix, name) for name in checkpoint_variables(prefix)}


# --------------------------------------------------------------------------- towers on the CPU

@pytest.fixture(scope="module")
def two_towers(tiny_data, tmp_path_factory):
    """2 epochs of 3 steps, batch 8 over 2 towers, through tools/tower_probe.py (train.py's path)."""
    logdir = str(tmp_path_factory.mktemp("towers") / "r18-gr-b8-t2")
    run_py("-m", "tools.tower_probe", "--data", tiny_data, *SMALL, "--batch", "8", "--towers", "2",
           "--epochs", "2", "--logdir", logdir)
    with open(os.path.join(logdir, PROBE)) as f:
        return logdir, json.load(f)


@pytest.mark.slow
def test_two_towers_split_the_batch_and_normalise_per_tower(two_towers):
    _, probe = two_towers
    assert probe["towers"] == 2 and len(probe["steps"]) == 3 and len(probe["epoch_seconds"]) == 2
    assert probe["feeders_after_run"] == []   # no daemon feeder left to abort the process at exit
    assert probe["devices"] == ["/device:GPU:0", "/device:GPU:1"]            # tensorpack's request
    assert probe["ran_on"] and all("CPU" in d for d in probe["ran_on"])      # soft placement
    for step in probe["steps"]:
        assert step["images"] == [4, 4]            # --batch 8 is the whole minibatch
        assert step["distinct_images"]             # each tower dequeues its own images
        # each tower's BatchNorm mean is its own images' mean, not the whole batch's
        assert max(step["bn_vs_own"]) < 1e-4
    assert min(min(s["bn_vs_whole"]) for s in probe["steps"]) > 1e-3


@pytest.mark.slow
def test_tower_i_gets_part_i_of_the_streams_batch(two_towers, tiny_data):
    """One dequeue of the whole minibatch a step, split: which tower trains on which images is
    fixed (issue 17), not the order in which TensorFlow runs per-tower dequeues."""
    import hashlib
    from dataflow import build_train_dataflow, load_split
    _, probe = two_towers
    flow = build_train_dataflow(load_split(tiny_data, "train", progress=False), "gr", 8, seed=0)
    flow.reset_state()
    for g, step in enumerate(probe["steps"]):
        images = flow.batch(g)[0]
        assert step["images_sha1"] == [hashlib.sha1(images[:4].tobytes()).hexdigest(),
                                       hashlib.sha1(images[4:].tobytes()).hexdigest()]


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
    args = ["train.py", "--data", tiny_data, *SMALL, "--batch", "8", "--epochs", "2", "--logdir", one]
    run_py(*args)
    assert checkpoint_variables(os.path.join(one, "model-6")).keys() == checkpoint_variables(two).keys()
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


def refused(argv):
    """train.py's flag checks, in-process (nothing is built): the UserError's message."""
    with pytest.raises(UserError) as info:
        train.validate(train.parse_args(argv))
    return str(info.value)


def test_towers_flag_is_checked(tiny_data, tmp_path):
    message = refused(["--data", tiny_data, *SMALL, "--batch", "9", "--towers", "2",
                       "--logdir", str(tmp_path / "x")])
    assert "--batch 9" in message and "towers (2)" in message


# --------------------------------------------------------------------------- layouts

def _variables(data_format):
    g = tf.Graph()
    with g.as_default():
        model = CAMModel(runrecord.ModelSettings(18, 4, [32, 40], width_mult=0.0625, mean_bgr=[100, 110, 120],
                                                 std_bgr=[60, 60, 60]),
                         runrecord.TrainSettings(aug="cam", batch=8, data_format=data_format))
        image = tf1.placeholder(tf.uint8, (None, 32, 40, 3), INPUT_IMAGE)
        label = tf1.placeholder(tf.int32, (None,), INPUT_LABEL)
        with TowerContext("", is_training=True):
            cost = model.build_graph(image, label)
        model.get_optimizer().minimize(cost)
        return {(v.op.name, tuple(v.shape.as_list())) for v in tf1.global_variables()}


def test_nchw_and_nhwc_training_graphs_save_the_same_variables():
    """So an NCHW-trained checkpoint restores into evaluate.py's NHWC graph (no layout-specific
    variable; the graph-level half of test_nchw_checkpoint_evaluates_like_nhwc)."""
    assert _variables("NCHW") == _variables("NHWC")


@pytest.mark.slow
def test_two_tower_checkpoint_evaluates(two_towers, tiny_data, tmp_path):
    """evaluate.py on the two-tower run: ``cams.mean() + bias == logit`` for every image."""
    logdir, _ = two_towers
    assert_cam_identity(evaluate_cams(tiny_data, os.path.join(logdir, "model-6"), tmp_path / "cams.npz"))


@pytest.mark.slow
def test_nchw_checkpoint_evaluates_like_nhwc(tiny_data, tmp_path):
    """NCHW training on the CPU (TensorFlow's oneDNN kernels, on by tf_env): evaluate.py's NHWC
    graph restores the checkpoint with ``cams.mean() + bias == logit``, and gives the same
    features, FC weights and logits as the NCHW graph the checkpoint was trained in."""
    from dataflow import load_split
    from evaluation.runner import build_predictor
    logdir = str(tmp_path / "nchw")
    run_py("train.py", "--data", tiny_data, *SMALL, "--batch", "8", "--epochs", "1",
           "--data-format", "NCHW", "--logdir", logdir)
    assert_cam_identity(evaluate_cams(tiny_data, logdir, tmp_path / "cams.npz"))
    settings = runrecord.load_settings(logdir)
    prefix, _ = runrecord.latest_checkpoint(logdir)
    images = load_split(tiny_data, "val", progress=False).images[:8]
    nhwc = build_predictor(settings.model, prefix)(images)
    nchw = build_predictor(settings.model, prefix, dataclasses.replace(settings.train, data_format="NCHW"))(images)
    for a, b in zip(nhwc, nchw):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_nchw_on_the_cpu_without_onednn_is_a_clear_error(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    message = refused(["--data", tiny_data, *SMALL, "--batch", "8", "--data-format", "NCHW",
                       "--logdir", str(tmp_path / "x")])
    assert message.startswith("--data-format NCHW on the CPU needs TensorFlow's oneDNN kernels")


# --------------------------------------------------------------------------- precisions

def _one_step(amp):
    """One step of CAMModel's optimizer (Nesterov momentum; with ``amp="fp16"`` wrapped in the
    static loss scale) on a small least-squares loss, fp32 math.

    Returns (gradients the inner optimizer computed, gradients returned, variables after the
    step by name, names of the variables the step created)."""
    g = tf.Graph()
    with g.as_default():
        rng = np.random.RandomState(0)
        x, y = tf.constant(rng.randn(5, 3), tf.float32), tf.constant(rng.randn(5, 2), tf.float32)
        w = tf1.get_variable("w", initializer=tf.constant(rng.randn(3, 2), tf.float32))
        b = tf1.get_variable("b", initializer=tf.zeros([2]))
        loss = tf.reduce_mean(tf.square(tf.matmul(x, w) + b - y))
        model = CAMModel(runrecord.ModelSettings(18, 2, [32, 40], mean_bgr=[0, 0, 0], std_bgr=[1, 1, 1]),
                         runrecord.TrainSettings(aug="cam", batch=8, lr=0.1, amp=amp))
        opt = model.get_optimizer()
        inner = opt._opt if amp else opt
        raw, compute = [], inner.compute_gradients
        inner.compute_gradients = lambda *a, **k: raw.extend(compute(*a, **k)) or list(raw)
        before = {v.op.name for v in tf1.global_variables()}
        grads = opt.compute_gradients(loss, var_list=[w, b])
        step = opt.apply_gradients(grads)
        created = sorted(v.op.name for v in tf1.global_variables() if v.op.name not in before)
        with tf1.Session(graph=g) as sess:
            sess.run(tf1.global_variables_initializer())
            raw_v, grad_v = sess.run([[gr for gr, _ in raw], [gr for gr, _ in grads]])
            sess.run(step)
            sess.run(step)   # twice: the momentum slots take part too
            after = sess.run({v.op.name: v.read_value() for v in tf1.global_variables()})
    return raw_v, grad_v, after, created


def test_fp16_loss_scale_changes_neither_gradients_nor_variables():
    scale = models.FP16_LOSS_SCALE
    raw_plain, plain, after_plain, created_plain = _one_step(False)
    raw_scaled, scaled, after_scaled, created_scaled = _one_step("fp16")
    assert scale > 1
    for r, p in zip(raw_scaled, raw_plain):        # differentiated: scale x the loss
        np.testing.assert_allclose(r, scale * p, rtol=1e-6)
    for s, p in zip(scaled, plain):                # returned: divided back
        np.testing.assert_allclose(s, p, rtol=1e-6)
    assert created_scaled == created_plain and "w/Momentum" in created_plain   # no variable of its own
    assert after_scaled.keys() == after_plain.keys() == {"w", "b", "w/Momentum", "b/Momentum", "learning_rate"}
    for name in after_plain:                       # the same update of the same variables
        np.testing.assert_allclose(after_scaled[name], after_plain[name], rtol=1e-6)
    assert np.abs(after_plain["b"]).min() > 0      # b started at 0: the steps did update


@pytest.mark.slow
def test_amp_on_this_cpu(tiny_data, tmp_path):
    """--amp is TF's oneDNN bf16 rewrite on a CPU with AVX512_BF16/AMX; elsewhere a clear error."""
    logdir = str(tmp_path / "amp")
    if not session.cpu_supports_bf16():   # e.g. AMD Zen 3 and older, Intel before Cooper Lake
        assert "AVX512_BF16" in refused(["--data", tiny_data, "--aug", "cam", "--amp", "--logdir", logdir])
        return
    args = ["train.py", "--data", tiny_data, "--depth", "18", "--aug", "cam", "--batch", "16",
            "--width-mult", "0.25", "--threads", "2", "--epochs", "8", "--lr-step-epochs", "8",
            "--val-every", "8", "--amp", "--logdir", logdir]
    run_py(*args)
    with open(os.path.join(logdir, "stats.json")) as f:
        stats = json.load(f)
    assert stats[-1]["xentropy-loss"] < 0.8 * stats[0]["xentropy-loss"]


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
    args = ["--data", tiny_data, *SMALL, "--batch", "8", "--epochs", "2", "--cluster", hosts]
    worker = subprocess.Popen([sys.executable, "train.py", *args, "--task", "1", "--logdir", worker_logdir],
                              cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        chief = run_py("-m", "tools.tower_probe", *args, "--task", "0", "--logdir", logdir)
        out, _ = worker.communicate(timeout=60)   # the chief's end releases it
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
    assert [d.split("/device")[0] for d in probe["devices"]] == ["/job:worker/task:0", "/job:worker/task:1"]
    assert any("/task:1/" in d for d in probe["ran_on"]), probe["ran_on"]   # not soft-placed on the chief
    assert all(s["images"] == [4, 4] and s["distinct_images"] for s in probe["steps"])
    assert max(max(s["bn_vs_own"]) for s in probe["steps"]) < 1e-4
    assert max(probe["mid_epoch_max_diff"].values()) == 0.0 and max(probe["final_max_diff"].values()) == 0.0
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
    assert [n for n in first if not np.array_equal(first[n], again[n])] == []   # issue 17


def test_cluster_flags_are_checked(tiny_data, tmp_path):
    base = ["--data", tiny_data, *SMALL, "--batch", "8", "--logdir", str(tmp_path / "x")]
    assert "not host:port" in refused(base + ["--cluster", "127.0.0.1"])
    assert "appears twice" in refused(base + ["--cluster", "127.0.0.1:1,127.0.0.1:1"])
    assert "--towers does not apply" in refused(base + ["--cluster", "127.0.0.1:1,127.0.0.1:2", "--towers", "2"])
    assert "divide by the number of towers (2)" in refused(
        ["--data", tiny_data, *SMALL, "--batch", "9", "--cluster", "127.0.0.1:1,127.0.0.1:2",
         "--logdir", str(tmp_path / "y")])
