"""Several machines over TensorFlow's own distributed runtime (gRPC), without Horovod.

In-graph replication: every machine starts a ``tf.distribute.Server`` of one
cluster; the chief (task 0) builds tensorpack's replicated multi-GPU trainer with
``machines x GPUs`` towers and places tower ``i`` on task ``i // G``, GPU ``i % G``
(CPU when a machine has none), so the whole minibatch is split over all towers,
BatchNorm is per tower and the gradients are all-reduced, as with ``--gpus`` on one
machine. Only the chief reads the data, writes the logdir and resumes; the other
tasks only serve their devices and exit when the chief has finished. Before training, the
chief checks that every task answers and has the GPUs it will place towers on (``--gpus``,
the same on every task). A task that waits longer than ``--peer-timeout`` for another (the
chief for a task at the start and at the end, a task for a chief that died) stops with an
``error:`` line naming it: TensorFlow's runtime itself waits for a dead peer forever
(``tensorflow/core/distributed_runtime/master.cc``, ``DeviceFinder::Wait``: "TODO(mrry):
Propagate a timeout here"). Launch::

    # on each machine, the same command with its own --task (0 = the chief, which reads --data
    # and writes --logdir; the others need neither)
    python train.py --data tiny-imagenet-200 --aug gr --batch 256 --gpus 4 --logdir train_log/r18-gr-b256 \\
        --cluster host1:2222,host2:2222 --task 0
    python train.py --aug gr --batch 256 --gpus 4 --cluster host1:2222,host2:2222 --task 1   # on host2

Why not tensorpack's DistributedTrainerReplicated/ParameterServer: tensorpack 0.11's
graph_builder/distributed.py calls TF 1 names (``tf.train.replica_device_setter``,
``tf.get_variable``, ``tf.FIFOQueue``, ``tf.contrib``) that TF 2.21 no longer has at
``tf.*``; their constructors fail with "module 'tensorflow._api.v2.train' has no
attribute 'replica_device_setter'" (docs/training.md, "Several machines").
"""

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)

import os
import sys
import threading

import tensorflow as tf

from errors import UserError

tf1 = tf.compat.v1
JOB = "worker"
DONE_QUEUE = "train_py_done"  # shared name of the queue on which a task waits for the chief
POLL_SECONDS = 60  # ours: how often a waiting task checks that the chief still answers


def server(hosts, task, config):
    """Start this process's server of the cluster (task ``task``)."""
    if not 0 <= task < len(hosts):
        raise UserError(f"--task {task}: the cluster has tasks 0..{len(hosts) - 1}")
    spec = tf.train.ClusterSpec({JOB: hosts})
    try:
        return tf.distribute.Server(spec, job_name=JOB, task_index=task, config=config, start=True)
    except tf.errors.UnknownError as e:  # "Could not start gRPC server"
        raise UserError(
            f"--cluster: task {task} cannot listen on {hosts[task]} ({e.message}); is the port "
            "in use, or is this not that host?"
        ) from None


def bounded(seconds, peer, call, after=""):
    """``call()``; if it has not returned within ``seconds``, print an ``error:`` line naming ``peer``
    and end this process with exit code 2.  The call cannot be interrupted (it waits inside
    TensorFlow's runtime), so the process ends without unwinding; checkpoints already written stay."""

    def give_up():
        print(
            f"error: --cluster: {peer} did not answer within {seconds:g} s (--peer-timeout); is it running, "
            f"and is its port open?{after}",
            file=sys.stderr,
            flush=True,
        )
        os._exit(2)

    timer = threading.Timer(seconds, give_up)
    timer.daemon = True
    timer.start()
    try:
        return call()
    finally:
        timer.cancel()


def _filtered(config, task):
    """``config`` for a session that talks to task ``task`` alone (the others may be down)."""
    out = tf1.ConfigProto()
    out.CopyFrom(config)
    del out.device_filters[:]
    out.device_filters.append(f"/job:{JOB}/task:{task}")
    return out


def task_gpus(target, task, config, timeout, peer):
    """Number of GPUs task ``task`` (``peer``, for the message) has, asked through the server at
    ``target`` once it answers within ``timeout`` seconds (:func:`bounded`); an UnavailableError
    if it refuses.  It is first pinged with a ``sess.run``, which leaves Python's GIL to the
    timer; ``list_devices`` holds it, so it is asked only of a task that answers."""
    with tf.Graph().as_default():
        with tf1.device(f"/job:{JOB}/task:{task}/device:CPU:0"):
            ping = tf.identity(tf1.placeholder_with_default(0, ()))
        with tf1.Session(target, config=_filtered(config, task)) as sess:
            bounded(timeout, peer, lambda: sess.run(ping))
            return sum(
                d.device_type == "GPU" and f"/task:{task}/" in d.name for d in sess.list_devices()
            )


def chief(hosts, env, config):
    """Task 0: start its server; every other task must answer within ``env.peer_timeout`` and have
    the ``env.gpus`` GPUs the chief places towers on (else soft placement would put them on its CPU)."""
    srv = server(hosts, 0, config)
    for task in range(1, len(hosts)):
        peer = f"task {task} ({hosts[task]})"
        try:
            found = task_gpus(srv.target, task, config, env.peer_timeout, peer)
        except tf.errors.UnavailableError:
            raise UserError(f"--cluster: {peer} does not answer; start it first") from None
        if found < env.gpus:
            raise UserError(
                f"--cluster: {peer} has {found} GPU(s); the chief places {env.gpus} tower(s) on every "
                f"task (--gpus {env.gpus}): give every task the same --gpus and GPUs"
            )
    return srv


def placement(towers_per_task):
    """A device function: tower ``i``'s ``/gpu:i`` -> task ``i // towers_per_task``'s device
    ``i % towers_per_task`` (soft placement takes its CPU where it has no GPU); the rest
    (input queue, saver, validation) -> the chief, task 0."""

    def place(op):
        spec = tf.DeviceSpec.from_string(op.device or "")
        if spec.job is not None:
            return op.device
        if spec.device_type == "GPU":
            task, index = divmod(spec.device_index or 0, towers_per_task)
            return spec.replace(job=JOB, task=task, device_index=index).to_string()
        return spec.replace(job=JOB, task=0).to_string()

    return place


def _done_queue(task):
    with tf1.device(f"/job:{JOB}/task:{task}/device:CPU:0"):
        return tf1.FIFOQueue(1, tf.int32, shapes=[()], shared_name=DONE_QUEUE, name=f"done_{task}")


def serve(hosts, task, config, timeout):
    """A non-chief task: serve the chief's towers until it says training is over; if the chief stops
    answering for ``timeout`` seconds, an ``error:`` line and exit code 2."""
    srv = server(hosts, task, config)
    print(
        f"task {task} of {len(hosts)}: serving {hosts[task]} until the chief ({hosts[0]}) has finished",
        flush=True,
    )
    chief_peer = f"the chief ({hosts[0]})"
    with tf.Graph().as_default():
        done = _done_queue(task).dequeue()
        with tf1.Session(srv.target, config=_filtered(config, task)) as sess:
            wait = tf1.RunOptions(timeout_in_ms=int(1000 * min(POLL_SECONDS, timeout)))
            while True:
                try:
                    sess.run(done, options=wait)
                    break
                except tf.errors.DeadlineExceededError:
                    try:
                        task_gpus(srv.target, 0, config, timeout, chief_peer)
                    except tf.errors.UnavailableError:
                        print(
                            f"error: --cluster: {chief_peer} stopped answering; this task ends",
                            file=sys.stderr,
                            flush=True,
                        )
                        return 2
    print(f"task {task}: the chief has finished", flush=True)
    return 0


def _release(target, task):
    with tf.Graph().as_default():
        op = _done_queue(task).enqueue(0)
        with tf1.Session(target, config=_filtered(tf1.ConfigProto(), task)) as sess:
            sess.run(op)


def release(target, hosts, timeout):
    """The chief: let tasks 1..n-1 exit; a task that does not take the message within ``timeout``
    seconds ends the chief with an ``error:`` line (its checkpoints are written)."""
    for task in range(1, len(hosts)):
        peer = f"task {task} ({hosts[task]})"
        try:
            bounded(
                timeout,
                peer,
                lambda: _release(target, task),
                " Training itself has ended; re-running the command records a finished run (done.json)",
            )
        except tf.errors.UnavailableError:
            print(
                f"warning: --cluster: {peer} no longer answers; it was not told that training ended",
                file=sys.stderr,
                flush=True,
            )
