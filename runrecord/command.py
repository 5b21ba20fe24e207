"""A train.py command without TensorFlow: its flags, the environment they resolve to, its RunSettings.

train.py and the table scripts (``reproduce.runs.Expectation``) both go through here, so a run
is reused only when its settings.json equals what its command would record::

    flags = parse_args(argv)                          # the settings' flags from their fields; no TensorFlow
    env, settings = resolve(flags, machine, data)     # the flags on the machine's facts, then on the data's

``machine`` is a :class:`runrecord.machine.Machine`: train.py's are ``training.machine.facts()``
(TensorFlow's view: visible GPUs, oneDNN), the table scripts assume theirs (the GPUs of one run).
``data(flags)`` gives the :class:`DataFacts`; it is called once every flag has been checked.
"""

import argparse
import dataclasses
import os
from dataclasses import dataclass
from typing import Optional

import argtypes
from errors import UserError
from runrecord.settings import (
    MIN_STEPS_CAP,
    RECIPES,
    ModelSettings,
    RunSettings,
    SpeedSettings,
    TrainSettings,
    add_flags,
    flag_value,
    is_flag,
    resolve_recipe,
)
from runrecord.cost import default_workers
from runrecord.state import DONE, run_name

TITLE = "Train a pre-activation ResNet with a CAM head on Tiny ImageNet (paper sec. 3)."
# a finished run's logdir is accepted as it is (nothing is written there; it may be read-only)
LOGDIR = argtypes.writable_dir(create=False, unless_holds=DONE)
PEER_TIMEOUT = 600.0  # ours: seconds; long enough to start the other hosts' commands by hand


def parser():
    """train.py's parser: the settings' flags from their fields (:func:`runrecord.add_flags`),
    the rest (data, logdir, resume, devices) here."""
    p = argparse.ArgumentParser(prog="train.py", description=TITLE, allow_abbrev=False)
    # --data and --logdir are checked in parse_args: a --cluster task other than 0 needs neither
    p.add_argument(
        "--data",
        help="Tiny ImageNet root (holds wnids.txt, train/, val/); "
        "required, except on a --cluster task other than 0",
    )
    add_flags(p, TrainSettings, ["aug"])
    add_flags(p, ModelSettings, ["depth"])
    add_flags(p, TrainSettings, ["batch"])
    p.add_argument(
        "--logdir", help="default train_log/r{depth}-{aug}-b{batch}[-h{holdout}][-s{seed}]"
    )
    add_flags(
        p,
        TrainSettings,
        [
            "epochs",
            "lr",
            "lr_step_epochs",
            "lr_decay",
            "momentum",
            "weight_decay",
            "seed",
            "holdout",
        ],
    )
    add_flags(
        p.add_argument_group(
            "recipe",
            "--recipe sets the four parts below; each flag overrides its part (docs/sources.md)",
        ),
        TrainSettings,
        ["recipe", *RECIPES["paper"]],
    )
    add_flags(p, ModelSettings, ["width_mult", "final_stride"])
    p.add_argument(
        "--adopt-settings",
        action="store_true",
        help="the logdir holds checkpoints but its settings.json was lost: record this command's "
        "settings there and continue (nothing checks they are the ones the run started with)",
    )
    p.add_argument(
        "--restart",
        action="store_true",
        help="train from step 0 when the logdir holds checkpoints but none restores "
        "(they are moved to <logdir>/discarded-<time>/)",
    )
    add_flags(
        p,
        SpeedSettings,
        ["val_every", "val_batch", "loc_images", "keep_checkpoints", "checkpoint_every"],
    )
    add_flags(p, TrainSettings, ["steps_per_epoch"])
    add_flags(p, SpeedSettings, ["gpus"])
    p.add_argument(
        "--towers",
        type=argtypes.positive_int,
        help="a test and debugging aid, not a speed feature: this many replicated towers of "
        "the multi-GPU trainer where no GPU is used (they run on the CPU)",
    )
    p.add_argument(
        "--cluster",
        metavar="HOST:PORT,...",
        help="several machines over TensorFlow's gRPC runtime: every machine's address, the chief "
        "(task 0) first; run the same command on each with its --task (training/cluster.py)",
    )
    p.add_argument(
        "--task",
        type=argtypes.nonnegative_int,
        default=0,
        help="this machine's index in --cluster (default 0, the chief)",
    )
    p.add_argument(
        "--peer-timeout",
        type=argtypes.positive_float,
        default=PEER_TIMEOUT,
        metavar="SECONDS",
        help="--cluster: how long a task waits for another to answer before it stops with a message "
        f"(default {PEER_TIMEOUT:g}; ours)",
    )
    add_flags(p, SpeedSettings, ["workers"])
    add_flags(p, TrainSettings, ["threads", "deterministic", "amp", "tf32", "xla", "data_format"])
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also print TensorFlow's and tensorpack's start-up lines (tf_env.py)",
    )
    return p


def parse_args(argv=None):
    """train.py's flags, the recipe's parts resolved (each given flag overrides its part) and
    the default logdir named; unknown and abbreviated flags exit 2 with argparse's message.
    A ``--cluster`` task other than 0 reads no data and writes no logdir: neither is checked there."""
    p = parser()
    args = p.parse_args(argv)
    vars(args).update(
        resolve_recipe(
            args.recipe,
            flip=args.flip,
            jitter=args.jitter,
            normalize=args.normalize,
            early_grad_scale=args.early_grad_scale,
        )
    )
    if args.cluster and args.task:
        return args
    if args.data is None:
        p.error("the following arguments are required: --data")
    default = args.logdir is None
    if default:
        args.logdir = os.path.join(
            "train_log", run_name(args.depth, args.aug, args.batch, args.holdout, args.seed)
        )
    for name, check in (("data", argtypes.data_root), ("logdir", LOGDIR)):
        try:
            setattr(args, name, check(getattr(args, name)))
        except argparse.ArgumentTypeError as e:
            p.error(f"argument --{name}{' (default)' if name == 'logdir' and default else ''}: {e}")
    return args


# --------------------------------------------------------------------------- the machine, the environment


@dataclass(frozen=True)
class Env:
    """train.py's flags resolved on one machine: devices, towers, precision, workers, threads."""

    gpus: int  # towers of this process on GPUs (0: the CPU)
    towers: int  # of the whole run (every machine of --cluster)
    batch_per_tower: int  # the whole minibatch // towers
    amp: object  # False, "bf16" or "fp16"
    workers: int  # dataflow processes
    threads: int  # intra-op CPU threads
    size: int = 1  # machines (tasks of --cluster)
    cluster: Optional[tuple] = None  # every task's host:port, the chief first
    peer_timeout: float = 0  # --cluster: seconds to wait for another task (0: no cluster)


def parse_cluster(text):
    """``"host:port,host:port"`` -> tuple of addresses (task 0 first), or a UserError."""
    hosts = tuple(h.strip() for h in text.split(","))
    for h in hosts:
        host, _, port = h.rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"--cluster {text}: {h!r} is not host:port")
    if len(set(hosts)) != len(hosts):
        raise UserError(f"--cluster {text}: an address appears twice")
    return hosts


def split_batch(batch, parts, what):
    """``batch // parts``, or a UserError when the whole minibatch does not divide evenly."""
    if parts < 1:
        raise ValueError(f"parts must be >= 1, got {parts}")
    if batch % parts:
        raise UserError(
            f"--batch {batch} is the whole minibatch and must divide by the number of "
            f"{what} ({parts}); e.g. --batch {batch - batch % parts or parts}"
        )
    return batch // parts


def towers(gpus, requested=None):
    """Number of training towers: one per GPU (one on the CPU), or ``requested`` (``--towers``)
    where no GPU is used.

    ``--towers N`` is a test and debugging aid: the multi-GPU trainer puts tower i on
    ``/gpu:i``, which soft placement moves to the CPU when there is no GPU, so the
    replicated code path (batch split, per-tower BatchNorm, gradient all-reduce,
    variable sync) runs on any machine, slower than one tower.
    """
    if requested is None:
        return max(gpus, 1)
    if gpus:
        raise UserError(
            f"--towers {requested}: a CPU test aid; with GPUs choose the towers with --gpus"
        )
    return requested


def amp_mode(amp, gpus, bf16):
    """--amp: "fp16" with GPUs, "bf16" on a CPU that has it, else a UserError; False without it."""
    if not amp:
        return False
    if gpus:
        return "fp16"  # TF's bf16 graph rewrite only covers CPU (oneDNN) kernels
    if bf16:
        return "bf16"
    raise UserError(
        "--amp on the CPU needs AVX512_BF16 or AMX-BF16 (see /proc/cpuinfo); "
        "without them TF emulates bf16 and is slower, not faster"
    )


def make_env(flags, machine):
    """The :class:`Env` of train.py's parsed ``flags`` on ``machine``, or a UserError naming the flag.

    One GPU unless ``--gpus`` says otherwise: the per-tower batch (BatchNorm's batch) never changes
    with the number of GPUs a machine happens to have (docs/training.md, "GPUs")."""
    if machine.nvidia and not machine.gpus and flags.gpus is None:
        raise UserError(
            f"an NVIDIA device is present ({machine.nvidia}) but TensorFlow sees no GPU: its CUDA "
            "libraries are missing (install with `make gpu-venv`), the driver is too old, or "
            "CUDA_VISIBLE_DEVICES names no usable GPU; `make gpu-check` prints the reason. "
            "To train on the CPU anyway, pass --gpus 0"
        )
    gpus = min(machine.gpus, 1) if flags.gpus is None else flags.gpus
    if gpus > machine.gpus:
        raise UserError(f"--gpus {gpus}: only {machine.gpus} GPU(s) visible")
    count, hosts = towers(gpus, flags.towers), None
    if flags.cluster:
        if flags.towers:
            raise UserError(
                "--towers does not apply with --cluster: each machine runs one tower per GPU"
            )
        hosts = parse_cluster(flags.cluster)
        count *= len(hosts)
    batch_per_tower = split_batch(flags.batch, count, "towers")
    amp = amp_mode(flags.amp, gpus, machine.bf16)
    if flags.data_format == "NCHW" and not gpus and not machine.onednn:
        # TF's own CPU kernels: "Conv2D op currently only supports the NHWC tensor format on the CPU"
        raise UserError(
            "--data-format NCHW on the CPU needs TensorFlow's oneDNN kernels, which "
            "TF_ENABLE_ONEDNN_OPTS=0 turns off (NCHW is meant for GPUs; on a CPU it is slower)"
        )
    if flags.xla and not gpus:
        raise UserError("--xla: XLA auto-clustering applies to GPU kernels only and no GPU is used")
    # GPUs: enough workers for them and the recipe's augmentations, within the cores (runrecord/cost.py)
    workers = (
        flags.workers
        if flags.workers is not None
        else default_workers(gpus, machine.cores, flags.jitter)
    )
    return Env(
        gpus=gpus,
        towers=count,
        batch_per_tower=batch_per_tower,
        amp=amp,
        workers=workers,
        threads=machine.cores if flags.threads is None else flags.threads,
        size=len(hosts) if hosts else 1,
        cluster=hosts,
        peer_timeout=flags.peer_timeout if hosts else 0,
    )


# --------------------------------------------------------------------------- the settings


@dataclass(frozen=True)
class DataFacts:
    """What the settings record of a run's data: ``fingerprint`` (:func:`runrecord.dataset_fingerprint`;
    of the annotations alone, if need be), ``num_classes``, ``image_shape`` ``(H, W)`` and ``mean_std``
    (``(mean, std)`` per BGR channel for ``--normalize dataset``; ``(None, None)``: the pixels are not read)."""

    fingerprint: dict
    num_classes: int
    image_shape: tuple
    mean_std: tuple = (None, None)


def _section(cls, flags, **resolved):
    """``cls`` from every flag of its fields, then the ``resolved`` values."""
    values = {
        f.name: flag_value(cls, f.name, flags)
        for f in dataclasses.fields(cls)
        if is_flag(cls, f.name)
    }
    return cls(**{**values, **resolved})


def make_settings(flags, env, data, *, git_commit=None, versions=None, machine=None):
    """The RunSettings of this command: what settings.json records and resume compares.

    ``data``: the :class:`DataFacts` (no pixels needed); ``git_commit``, ``versions`` (``{library:
    version}``) and ``machine`` (the record of :mod:`runrecord.machine`) are recorded, never compared.
    """
    fingerprint, mean_std = data.fingerprint, data.mean_std
    images = fingerprint["train_used"]
    if flags.batch > images:
        raise UserError(
            f"--batch {flags.batch}: more than the {images} training images in {flags.data}"
        )
    one_pass = images // flags.batch
    spe = flags.steps_per_epoch or one_pass
    if spe > max(one_pass, MIN_STEPS_CAP):
        raise UserError(
            f"--steps-per-epoch {spe}: more than one pass over the data ({one_pass} steps) and more "
            f"than {MIN_STEPS_CAP}; checkpoints are written at epoch ends only, so an interrupt "
            "would lose the whole epoch"
        )
    model = _section(
        ModelSettings,
        flags,
        num_classes=data.num_classes,
        image_shape=list(data.image_shape),
        mean_bgr=mean_std[0],
        std_bgr=mean_std[1],
    )
    # the CPU's thread count changes CPU kernels' sums only: with GPUs it is not compared (docs/reproducibility.md)
    train = _section(
        TrainSettings,
        flags,
        steps_per_epoch=spe,
        final_step=spe * flags.epochs,
        amp=env.amp,
        batch_per_tower=env.batch_per_tower,
        threads=0 if env.gpus else env.threads,
    )
    speed = _section(SpeedSettings, flags, workers=env.workers, gpus=env.gpus, machines=env.size)
    return RunSettings(
        model,
        train,
        speed,
        data=os.path.abspath(flags.data),
        dataset=fingerprint,
        git_commit=git_commit,
        versions=dict(versions or {}),
        machine=[machine] if machine else [],
    )


def resolve(flags, machine, data, *, git_commit=None, versions=None):
    """``(env, settings)``: train.py's parsed ``flags`` on ``machine`` (a :class:`runrecord.machine.Machine`),
    then on ``data(flags)`` (the :class:`DataFacts`).  ``data`` is called only once the environment
    is resolved, so a bad flag is refused (a UserError naming it) before any data is read."""
    env = make_env(flags, machine)
    return env, make_settings(
        flags, env, data(flags), git_commit=git_commit, versions=versions, machine=machine.record
    )


def command_settings(argv, machine, fingerprint, num_classes, image_shape):
    """The RunSettings ``train.py <argv>`` would record on ``machine`` (mean/std unknown), for the
    table scripts: ``fingerprint(holdout)`` of the annotations.  Refuses what train.py refuses:
    argparse's exit 2 (unknown, abbreviated or bad flags) or a UserError."""
    return resolve(
        parse_args(argv),
        machine,
        lambda flags: DataFacts(fingerprint(flags.holdout), num_classes, image_shape),
    )[1]
