"""Several machines over TensorFlow's own distributed runtime (gRPC), without Horovod.

In-graph replication: every machine starts a ``tf.distribute.Server`` of one
cluster; the chief (task 0) builds tensorpack's replicated multi-GPU trainer with
``machines x GPUs`` towers and places tower ``i`` on task ``i // G``, GPU ``i % G``
(CPU when a machine has none), so the whole minibatch is split over all towers,
BatchNorm is per tower and the gradients are all-reduced, as with ``--gpus`` on one
machine. Only the chief reads the data, writes the logdir and resumes; the other
tasks only serve their devices and exit when the chief has finished. Launch::

    # on each machine, the same command with its own --task (0 = the chief, which reads --data
    # and writes --logdir; the others need neither)
    python train.py --data tiny-imagenet-200 --aug gr --batch 256 --logdir train_log/r18-gr-b256 \\
        --cluster host1:2222,host2:2222 --task 0

Why not tensorpack's DistributedTrainerReplicated/ParameterServer: tensorpack 0.11's
graph_builder/distributed.py calls TF 1 names (``tf.train.replica_device_setter``,
``tf.get_variable``, ``tf.FIFOQueue``, ``tf.contrib``) that TF 2.21 no longer has at
``tf.*``; their constructors fail with "module 'tensorflow._api.v2.train' has no
attribute 'replica_device_setter'" (README "Several machines").
"""
import tf_env  # noqa: F401

import tensorflow as tf

from errors import UserError

tf1 = tf.compat.v1
JOB = "worker"
DONE_QUEUE = "train_py_done"   # shared name of the queue on which a task waits for the chief


def server(hosts, task, config):
    """Start this process's server of the cluster (task ``task``)."""
    if not 0 <= task < len(hosts):
        raise UserError(f"--task {task}: the cluster has tasks 0..{len(hosts) - 1}")
    spec = tf.train.ClusterSpec({JOB: hosts})
    return tf.distribute.Server(spec, job_name=JOB, task_index=task, config=config, start=True)


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


def serve(hosts, task, config):
    """A non-chief task: serve the chief's towers until it says training is over."""
    srv = server(hosts, task, config)
    print(f"task {task} of {len(hosts)}: serving {hosts[task]} until the chief ({hosts[0]}) has finished",
          flush=True)
    with tf.Graph().as_default():
        done = _done_queue(task).dequeue()
        with tf1.Session(srv.target, config=config) as sess:
            sess.run(done)
    print(f"task {task}: the chief has finished", flush=True)
    return 0


def release(target, tasks):
    """The chief: let tasks 1..tasks-1 exit."""
    with tf.Graph().as_default():
        ops = [_done_queue(k).enqueue(0) for k in range(1, tasks)]
        with tf1.Session(target) as sess:
            sess.run(ops)
