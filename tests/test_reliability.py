"""Issue 19: one trainer per logdir, children that die with the table script, bounded values,
messages that say what is lost.  Most tests build nothing; one starts a real train.py."""

import argparse
import os
import signal
import subprocess
import sys
import time

import pytest

import argtypes
import fileio
import runrecord
from errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# conftest's tiny data: 48 training images, 6 steps per epoch
SMALL = "--depth 18 --aug gr --batch 8 --width-mult 0.125 --threads 2 --val-every 100".split()


def wait_for(predicate, seconds, what):
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()
    except OSError:
        return False


def test_a_second_trainer_is_refused_and_sigterm_says_what_is_lost(tiny_data, tmp_path):
    """Item 1: two train.py on one logdir both ran and exited 0; item 9: the Ctrl-C message promised
    the last checkpoint even when none had been written (SIGTERM was a plain death)."""
    logdir = str(tmp_path / "run")
    args = ["--data", tiny_data, *SMALL, "--epochs", "200", "--logdir", logdir]
    cmd = [sys.executable, "train.py", *args]
    first = subprocess.Popen(
        cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        lock = os.path.join(logdir, ".train.lock")
        checkpoint = os.path.join(logdir, "model-6.index")
        wait_for(lambda: os.path.isfile(checkpoint), 240, "the first checkpoint")
        with open(lock) as f:
            assert f.read().strip() == str(first.pid)
        second = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=240)
        errors = [x for x in second.stderr.splitlines() if x.startswith("error: ")]
        refused = second.returncode == 2 and len(errors) == 1 and "Traceback" not in second.stderr
        assert refused, second.stderr
        assert f"--logdir {logdir}: in use by another process (PID {first.pid}" in errors[0]
        first.send_signal(signal.SIGTERM)
        err = first.communicate(timeout=120)[1]
        assert first.returncode == 130, err[-2000:]
        assert "interrupted: the steps since the last epoch end are lost" in err
        assert "the newest checkpoint is " + os.path.join(logdir, "model-") in err
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path):
    path = str(tmp_path / "lock")
    code = f"import fileio, time; f = fileio.hold_lock({path!r}, 'x'); print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match=f"x: in use by another process \\(PID {holder.pid}"):
            fileio.hold_lock(path, "x")
    finally:
        holder.kill()
        holder.wait()
    fileio.hold_lock(path, "x").close()  # kill -9 released it


def test_table_script_children_die_with_it(tmp_path):
    """Item 1: a kill -9 of a table script left its train.py running as an orphan."""
    pidfile = str(tmp_path / "child.pid")
    child = ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 120"]
    code = (
        "import os, sys; from reproduce.executor import Executor; "
        f"Executor([None]).call({child!r}, dict(os.environ), {str(tmp_path / 'log')!r})"
    )
    script = subprocess.Popen([sys.executable, "-c", code], cwd=REPO)
    pid = None
    try:
        wait_for(lambda: os.path.isfile(pidfile) and open(pidfile).read().strip(), 120, "the child")
        pid = int(open(pidfile).read())
        script.kill()
        script.wait()
        wait_for(lambda: not alive(pid), 10, "the child to die with its parent")
    finally:
        if script.poll() is None:
            script.kill()
        if pid and alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_seeds_are_bounded_below_the_collision():
    """Item 6: seeds 0 and 2**31 - 1 gave identical weights."""
    assert argtypes.seed("2147483646") == 2**31 - 2
    for bad in ("2147483647", "-1", "x"):
        with pytest.raises(argparse.ArgumentTypeError, match="a seed in"):
            argtypes.seed(bad)


def train_refuses(argv, capsys):
    """train.main in-process; the one error message (parser or UserError)."""
    import train

    with pytest.raises((SystemExit, UserError)) as e:
        train.main(argv)
    return str(e.value) if e.type is UserError else capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, value, message",
    [
        (
            "--epochs",
            "99999999999999999999999",
            "argument --epochs: expected an integer in [1, 1000000]",
        ),
        ("--width-mult", "1e6", "--width-mult 1e+06: the weights alone would take about"),
        ("--steps-per-epoch", "999999999999", "--steps-per-epoch 999999999999: more than one pass"),
        ("--seed", "2147483647", "argument --seed: expected a seed in"),
    ],
)
def test_huge_values_are_refused_before_training(tiny_data, tmp_path, capsys, flag, value, message):
    """Item 9: --epochs 1e23 and --width-mult 1e6 grew to 20 GB; --steps-per-epoch 1e12 trained on."""
    argv = ["--data", tiny_data, *SMALL, "--logdir", str(tmp_path / "r"), flag, value]
    assert message in train_refuses(argv, capsys)


def test_the_disk_full_reason_keeps_the_os_error_and_the_file():
    """Item 8: the message showed TensorFlow's OOM hint instead of "No space left on device"."""
    import tensorflow as tf
    from training.callbacks import _reason

    message = (
        "/run/model-6.data-00000-of-00001.tempstate123; No space left on device\n"
        "\t [[{{node save/SaveV2}}]]\n"
        "Hint: If you want to see a list of allocated tensors when OOM happens, add "
        "report_tensor_allocations_upon_oom to RunOptions for current allocation info.\n"
    )
    reason = _reason(tf.errors.ResourceExhaustedError(None, None, message))
    assert "No space left on device" in reason and "/run/model-6.data" in reason
    assert "Hint" not in reason
    full = OSError(28, "No space left on device", "/run/x")
    assert _reason(full) == "No space left on device: /run/x"


def test_a_failed_write_names_the_path_and_the_os_error(tmp_path):
    """Issue 16: one writer; a write into a missing folder is one message, still an OSError."""
    path = str(tmp_path / "no" / "eval.json")
    message = f"{path}: cannot write \\(No such file or directory\\)"
    with pytest.raises(fileio.WriteError, match=message) as e:
        runrecord.write_json(path, {})
    assert isinstance(e.value, OSError) and isinstance(e.value, UserError)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_text("x")  # the temporary file is written, the rename fails
    with pytest.raises(
        fileio.WriteError, match=f"{tmp_path / 'd'}: cannot write \\(Is a directory\\)"
    ):
        fileio.write_text(str(tmp_path / "d"), "{}")
    assert os.listdir(tmp_path) == ["d"] and os.listdir(tmp_path / "d") == [
        "x"
    ]  # no temporary file left


def test_path_types_refuse_before_any_work(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder"):
        argtypes.writable_file(str(tmp_path))
    with pytest.raises(argparse.ArgumentTypeError, match="does not exist"):
        argtypes.writable_file(str(tmp_path / "no" / "x.json"))
    with pytest.raises(argparse.ArgumentTypeError, match="is a file"):
        argtypes.writable_dir()(str(a_file))
    with pytest.raises(argparse.ArgumentTypeError, match="cannot be created"):
        argtypes.writable_dir()(str(a_file / "sub"))
    assert argtypes.writable_dir()(str(tmp_path / "a" / "b")) and not os.path.exists(tmp_path / "a")
    assert argtypes.writable_dir(create=True)(str(tmp_path / "c")) and os.path.isdir(tmp_path / "c")
    with pytest.raises(argparse.ArgumentTypeError, match="no wnids.txt"):
        argtypes.data_root(str(tmp_path))


def test_table_gpus_must_be_ids(capsys):
    """Item 10: --gpu-ids abc (then --gpus) was accepted and every run failed without naming abc."""
    from reproduce import __main__ as cli

    assert argtypes.gpu_list("0, 2") == ["0", "2"] and argtypes.gpu_list("none") == []
    with pytest.raises(SystemExit):
        cli.parse_args(["--table", "1", "--demo", "--gpu-ids", "abc"])
    assert (
        "argument --gpu-ids: expected GPU ids like 0,1,3 or 'none', got 'abc'"
        in capsys.readouterr().err
    )


def test_a_truncated_stats_json_names_the_way_out(tmp_path):
    """Item 10: a truncated stats.json blocked resume with no recovery hint."""
    from training import resume

    (tmp_path / "stats.json").write_text('[{"epoch_num": 1, "global_st')
    with pytest.raises(UserError, match=r"stats.json: cannot read JSON .* move it aside \(mv "):
        resume.trim_stats(str(tmp_path), 6, 1)


def test_a_checkpoint_removed_while_read_is_not_called_damaged(tmp_path):
    """Item 10: evaluating while train.py rotates checkpoints called the rotated one damaged."""
    from runrecord.checkpoints import check_checkpoint

    with pytest.raises(UserError, match="removed while it was being read") as e:
        check_checkpoint({}, str(tmp_path / "model-6"))
    assert "damaged" not in str(e.value)


def test_vis_scale_is_bounded(tiny_data, capsys):
    """Item 10: --vis-scale 100000 was a MemoryError traceback."""
    import evaluate

    with pytest.raises(SystemExit):
        evaluate.parse_args(["--load", "x", "--data", tiny_data, "--vis-scale", "100000"])
    assert "argument --vis-scale: expected an integer in [1, 32]" in capsys.readouterr().err
