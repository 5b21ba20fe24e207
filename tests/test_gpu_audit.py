"""What a GPU would refuse, seen on the CPU (issue 23): the graphs train.py and evaluate.py build hold no
op whose GPU kernel refuses to run, or is not deterministic, under TensorFlow's op determinism.

CI has no GPU, and such an op only fails at its first GPU step (``UnimplementedError``), so the
graphs are built here exactly as train.py builds them (its own parse_args, resolve,
prepare_logdir and build_config, then tensorpack's ``launch_train_with_config`` up to the session:
the trainer's graph, the validation tower and every callback's ops) and every node is checked
against :data:`REFUSED`.  The fp16 graph is built with the fp16 settings (StaticLossScale) on a
machine that claims one GPU, then put through grappler's fp16 pass alone, which a GPU session runs
when it starts and which TensorFlow can run on the CPU as if on a GPU.  The other session-time
rewrites (layout, remapper fusions, XLA) are not seen here (docs/reproducibility.md, "What the CPU
checks for the GPU").
"""

import os

import pytest

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)
import tensorflow as tf
from tensorpack.train import launch_train_with_config
from tensorpack.train.base import Trainer

from models.resnet import normalization
import runrecord
from runrecord import command
from runrecord.machine import Machine
from tests.conftest import SMALL
from training import devices, machine as this, session, trainer

tf1 = tf.compat.v1

# Op types whose GPU kernel refuses to run under op determinism in TensorFlow 2.21 (UnimplementedError).
# Each message is in the installed libtensorflow_cc.so.2; the file is the kernel's source in
# github.com/tensorflow/tensorflow (docs/sources.md, "GPU kernels refused under op determinism").
REFUSED = {
    "SparseSoftmaxCrossEntropyWithLogits": "tensorflow/core/kernels/sparse_xent_op.cc",
    "SoftmaxCrossEntropyWithLogits": "tensorflow/core/kernels/xent_op.cc",
    # ResizeBilinearGrad has a deterministic GPU kernel (image/resize_bilinear_op_gpu.cu.cc) and
    # ResizeBicubicGrad only a CPU kernel (image/resize_bicubic_op.cc): neither is refused
    "ResizeNearestNeighborGrad": "tensorflow/core/kernels/image/resize_nearest_neighbor_op.cc",
    "CropAndResizeGradImage": "tensorflow/core/kernels/image/crop_and_resize_op.cc",
    "CropAndResizeGradBoxes": "tensorflow/core/kernels/image/crop_and_resize_op.cc",
    "Bincount": "tensorflow/core/kernels/bincount_op.cc",
    "DenseBincount": "tensorflow/core/kernels/bincount_op.cc",
    "MaxPoolGradWithArgmax": "tensorflow/core/kernels/maxpooling_op.cc",
    # refused when --xla compiles them ("GPU MaxPool gradient ops do not yet have a deterministic XLA
    # implementation"); the 64x64 stem has no max-pool (docs/sources.md)
    "MaxPoolGrad": "tensorflow/compiler/tf2xla/kernels/pooling_ops.cc",
    "MaxPoolGradV2": "tensorflow/compiler/tf2xla/kernels/pooling_ops.cc",
    "SparseTensorDenseMatMul": "tensorflow/core/kernels/sparse_tensor_dense_matmul_op.cc",
    "AdjustContrast": "tensorflow/core/kernels/image/adjust_contrast_op.cc",
    "AdjustContrastv2": "tensorflow/core/kernels/image/adjust_contrast_op.cc",
    "Dilation2DBackpropInput": "tensorflow/core/kernels/dilation_ops.cc",
    "Dilation2DBackpropFilter": "tensorflow/core/kernels/dilation_ops.cc",
    "FakeQuantWithMinMaxVarsGradient": "tensorflow/core/kernels/fake_quant_ops.cc",
    "FakeQuantWithMinMaxVarsPerChannelGradient": "tensorflow/core/kernels/fake_quant_ops.cc",
    # "Scatter ops with ref inputs" (resource variables' ResourceScatter* are deterministic)
    **{
        f"Scatter{kind}": "tensorflow/core/kernels/scatter_op.cc"
        for kind in ("Add", "Sub", "Mul", "Div", "Min", "Max")
    },
}
# Not refused, though non-associative on floats: the segment reductions (Segment*, UnsortedSegment*)
# switch to deterministic kernels under op determinism (tensorflow/core/kernels/segment_reduction_ops_impl.h,
# segment_reduction_ops_gpu.cu.h: use_deterministic_kernels); UnsortedSegmentSum is the gradient of the
# deterministic loss's GatherV2.
# Refused by attribute: the fused batch-norm gradient in inference mode ("A deterministic GPU implementation
# of fused batch-norm backprop, when training is disabled, is not currently available").
BN_GRADS = {
    "FusedBatchNormGrad",
    "FusedBatchNormGradV2",
    "FusedBatchNormGradV3",
}  # fused_batch_norm_op.cc
# and, on every device, a random op without a seed ("When determinism is enabled, random ops must have a
# seed specified": tensorflow/core/util/guarded_philox_random.cc).


def refused_nodes(graph):
    """``["node (type): why", ...]`` for each node of ``graph`` (a Graph or GraphDef, and its function
    library) that op determinism refuses on a GPU; empty when there is none."""
    out = []
    graph_def = graph if isinstance(graph, tf1.GraphDef) else graph.as_graph_def()
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    for node in nodes:
        attr = node.attr
        if node.op in REFUSED:
            out.append(f"{node.name} ({node.op}): {REFUSED[node.op]}")
        elif node.op in BN_GRADS and not attr["is_training"].b:
            out.append(
                f"{node.name} ({node.op}, is_training=False): tensorflow/core/kernels/fused_batch_norm_op.cc"
            )
        elif "seed" in attr and "seed2" in attr and attr["seed"].i == 0 and attr["seed2"].i == 0:
            out.append(
                f"{node.name} ({node.op}, no seed): tensorflow/core/util/guarded_philox_random.cc"
            )
    return out


# ops of the graph that run on the CPU even with GPUs (no GPU or device-independent kernel): they write
# files and summaries; no arithmetic of the training step is among them (docs/reproducibility.md, --threads)
CPU_ONLY = {"SaveV2", "RestoreV2", "ScalarSummary", "MergeSummary"}


def cpu_only_types(graph):
    """The op types of ``graph`` that TensorFlow 2.21 (a CUDA build) has no GPU kernel for."""
    from tensorflow.python.framework import kernels

    return {
        t
        for t in {op.type for op in graph.get_operations()}
        if not any(
            k.device_type in ("GPU", "DEFAULT")
            for k in kernels.get_registered_kernels_for_op(t).kernel
        )
    }


def fp16_rewritten(graph, monkeypatch):
    """``graph`` after grappler's fp16 pass (``--amp``'s ``auto_mixed_precision``), run on the CPU as on a
    GPU (TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_SIMULATE_GPU, tensorflow/core/grappler/optimizers/
    auto_mixed_precision.cc), with the other passes off: a GraphDef."""
    from tensorflow.python.grappler import tf_optimizer

    monkeypatch.setenv("TF_AUTO_MIXED_PRECISION_GRAPH_REWRITE_SIMULATE_GPU", "1")
    with graph.as_default():
        meta = tf1.train.export_meta_graph(graph=graph)
    meta.collection_def["train_op"].node_list.value.extend(
        op.name for op in graph.get_operations() if op.type == "NoOp" and "train_op" in op.name
    )
    config = tf1.ConfigProto()
    config.graph_options.rewrite_options.optimizers.append("auto_mixed_precision")
    config.graph_options.rewrite_options.min_graph_nodes = -1
    return tf_optimizer.OptimizeGraph(config, meta)


class Built(Exception):
    """Raised where tensorpack would create the session: the graph is complete."""


def training_graph(data, logdir, flags, monkeypatch, machine=None):
    """The graph train.py builds for ``flags`` (``machine``: the machine it resolves them on; None:
    this one, as train.py does), up to the session; no step runs."""
    args = command.parse_args(["--data", str(data), "--logdir", str(logdir), *flags])
    split, used, val = trainer.load_data(args)
    facts = command.DataFacts(
        runrecord.dataset_fingerprint(split, val, args.holdout),
        split.num_classes,
        split.image_shape,
        normalization(args.normalize, split),
    )
    env, settings = command.resolve(
        args, this.facts() if machine is None else machine, lambda _: facts
    )
    os.makedirs(args.logdir)  # trainer.lock_logdir's part
    prefix, _, start_epoch = trainer.prepare_logdir(settings, env, args.logdir)

    def stop(*_, **__):
        raise Built

    monkeypatch.setattr(Trainer, "initialize", stop)
    graph = tf.Graph()
    with graph.as_default():
        config = trainer.build_config(settings, env, used, val, prefix, start_epoch, ())
        with pytest.raises(Built):
            launch_train_with_config(config, devices.make_trainer(env.towers))
    return graph, settings


CASES = {
    "default": ([], None),
    "2 towers": (["--towers", "2"], None),
    "NCHW": (["--data-format", "NCHW"], None),
    "sn-resnet recipe": (["--recipe", "sn-resnet"], None),
    # the fp16 graph (StaticLossScale) as train.py builds it where one GPU is visible
    "fp16 --amp": (
        ["--amp", "--gpus", "1", "--workers", "0"],
        Machine(gpus=1, cores=2, bf16=False),
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_training_graph_holds_no_op_a_gpu_refuses(case, tiny_data, tmp_path, monkeypatch):
    flags, machine = CASES[case]
    graph, settings = training_graph(
        tiny_data, tmp_path / "run", SMALL + flags, monkeypatch, machine
    )
    types = {op.type for op in graph.get_operations()}
    assert (
        "Conv2DBackpropFilter" in types and "FusedBatchNormGradV3" in types
    )  # the whole training graph
    assert refused_nodes(graph) == []
    if case == "fp16 --amp":
        assert settings.train.amp == "fp16"
        rewritten = fp16_rewritten(graph, monkeypatch)
        half = {n.op for n in rewritten.node if n.attr["T"].type == tf.float16.as_datatype_enum}
        assert {
            "Conv2D",
            "Conv2DBackpropFilter",
            "FusedBatchNormGradV3",
            "IsFinite",
        } <= half  # rewritten
        assert refused_nodes(rewritten) == []
    assert tf.sysconfig.get_build_info()["is_cuda_build"] and cpu_only_types(graph) <= CPU_ONLY


@pytest.mark.parametrize("data_format", ["NHWC", "NCHW"])
def test_evaluation_graph_holds_no_op_a_gpu_refuses(data_format):
    from evaluation.runner import build_predictor
    from tests.conftest import run_settings

    s = run_settings(**{"train.data_format": data_format})
    predictor = build_predictor(s.model, None, train=s.train)
    assert "FusedBatchNormV3" in {op.type for op in predictor.sess.graph.get_operations()}
    assert refused_nodes(predictor.sess.graph) == []


def test_the_audit_sees_the_fused_loss_of_a_graph_built_before_determinism(
    tiny_data, tmp_path, monkeypatch
):
    """The code before the fix (determinism turned on after the graph): the fused loss, which a GPU refuses."""
    monkeypatch.setattr(session, "use_op_determinism", lambda on=True: None)
    graph, _ = training_graph(tiny_data, tmp_path / "run", SMALL, monkeypatch)
    assert [n for n in refused_nodes(graph) if "(SparseSoftmaxCrossEntropyWithLogits)" in n]


def test_the_audit_reads_attributes():
    """Inference-mode fused batch-norm gradients and unseeded random ops are refused; training mode is not."""
    with tf.Graph().as_default() as g:
        x = tf1.placeholder(tf.float32, (2, 4, 4, 3))
        for training in (True, False):
            y, *_ = tf1.nn.fused_batch_norm(
                x,
                tf.ones(3),
                tf.zeros(3),
                mean=None if training else tf.zeros(3),
                variance=None if training else tf.ones(3),
                is_training=training,
                name=f"bn_{training}",
            )
            tf1.gradients(y, x)
        tf1.random_uniform((2,), name="unseeded")
        tf1.random_uniform((2,), seed=1, name="seeded")
    found = refused_nodes(g)
    assert len(found) == 2, found
    assert "is_training=False" in found[0] and found[1].startswith("unseeded")
