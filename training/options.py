"""train.py's flags, their checks, and the RunSettings they resolve to.

:func:`parse_args` and :func:`validate` refuse every bad flag before any data is
read or any graph is built; :func:`make_settings` turns the flags into the
:class:`runrecord.RunSettings` that settings.json records and resume compares.
It needs no pixels, so the table scripts can build the same record cheaply.
"""
import tf_env

import argparse
import os
import subprocess

import tensorflow as tf
import tensorpack

import argtypes
import runrecord
from augment import METHODS
from errors import UserError
from models import DEPTHS, FINAL_STRIDES, IMAGENET_MEAN_BGR, IMAGENET_STD_BGR, param_count
from training import cluster, devices, session

# a finished run's logdir is accepted as it is (nothing is written there; it may be read-only)
LOGDIR = argtypes.writable_dir(create=False, unless_holds=runrecord.DONE)
MAX_EPOCHS = 10 ** 6     # ours: 650 times the paper's 1500; larger values only exhaust memory in the schedule
MIN_STEPS_CAP = 1000     # ours: --steps-per-epoch may exceed one pass up to this, for benchmarks on small data

TITLE = "Train a pre-activation ResNet with a CAM head on Tiny ImageNet (paper sec. 3)."


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="train.py", description=TITLE, allow_abbrev=False)
    p.add_argument("--data", required=True, type=argtypes.data_root,
                   help="Tiny ImageNet root (holds wnids.txt, train/, val/)")
    p.add_argument("--aug", required=True, choices=METHODS, help="augmentation (paper Table 1)")
    p.add_argument("--depth", type=int, default=18, choices=sorted(DEPTHS),
                   help="ResNet depth (default 18; paper sec. 3: 18 and 34)")
    p.add_argument("--batch", type=argtypes.positive_int, default=256,
                   help="the whole minibatch, split over GPUs/processes (default 256, paper Table 1)")
    p.add_argument("--logdir", type=LOGDIR, help="default train_log/r{depth}-{aug}-b{batch}")
    p.add_argument("--epochs", type=argtypes.int_in(1, MAX_EPOCHS), default=1500,
                   help=f"default 1500 (paper sec. 3), at most {MAX_EPOCHS}")
    p.add_argument("--lr", type=argtypes.positive_float, default=0.1,
                   help="initial learning rate (default 0.1, paper sec. 3)")
    p.add_argument("--lr-step-epochs", type=argtypes.positive_int, default=250,
                   help="multiply the rate by --lr-decay every this many epochs (default 250, paper sec. 3)")
    p.add_argument("--lr-decay", type=argtypes.positive_float, default=0.1,
                   help="default 0.1 (paper sec. 3: divided by 10)")
    p.add_argument("--momentum", type=argtypes.float_in(0, 1, high_open=True), default=0.9,
                   help="Nesterov momentum (default 0.9, paper sec. 3)")
    p.add_argument("--wd", type=argtypes.nonnegative_float, default=1e-4,
                   help="weight decay on conv and FC weights (default 1e-4, paper sec. 3)")
    p.add_argument("--seed", type=argtypes.seed, default=0,
                   help="seeds the initialisation and the data order (default 0, at most 2**31 - 2)")
    p.add_argument("--holdout", type=argtypes.nonnegative_int, default=0, metavar="N",
                   help="exclude the last N training images of each class from training, for choosing "
                        "evaluate.py's threshold (default 0, the paper's)")
    g = p.add_argument_group("recipe", "--recipe sets the four parts below; each flag overrides its part "
                                       "(docs/sources.md)")
    g.add_argument("--recipe", choices=sorted(runrecord.RECIPES), default="paper",
                   help="paper: only what the paper states (default); sn-resnet: the authors' later "
                        "code, = --jitter --flip --normalize imagenet --early-grad-scale 0.1")
    g.add_argument("--flip", action=argparse.BooleanOptionalAction, help="random horizontal flip")
    g.add_argument("--jitter", action=argparse.BooleanOptionalAction,
                   help="colour jitter in random order: brightness, contrast, saturation, PCA lighting")
    g.add_argument("--normalize", choices=runrecord.NORMALIZE,
                   help="dataset: the training split's mean/std; imagenet: /255 then ImageNet mean/std")
    g.add_argument("--early-grad-scale", type=argtypes.positive_float, metavar="F",
                   help="multiply the gradients of conv0 and groups 0-2 by F (1 = off)")
    p.add_argument("--width-mult", type=argtypes.positive_float, default=1.0,
                   help="scale all widths (default 1.0; other values are not the paper's: tests, demo)")
    p.add_argument("--final-stride", type=int, default=4, choices=sorted(FINAL_STRIDES),
                   help="4: a 16x16 map from 64x64 (default; paper, docs/sources.md); 8: an 8x8 map")
    p.add_argument("--adopt-settings", action="store_true",
                   help="the logdir holds checkpoints but its settings.json was lost: record this command's "
                        "settings there and continue (nothing checks they are the ones the run started with)")
    p.add_argument("--restart", action="store_true",
                   help="train from step 0 when the logdir holds checkpoints but none restores "
                        "(they are moved to <logdir>/discarded-<time>/)")
    p.add_argument("--val-every", type=argtypes.positive_int, default=10,
                   help="validation Top-1/Top-5 error every this many epochs and after the last (default 10)")
    p.add_argument("--val-batch", type=argtypes.positive_int, default=128,
                   help="batch size for validation (default 128)")
    p.add_argument("--keep-checkpoints", type=argtypes.positive_int, default=10,
                   help="how many of the newest checkpoints to keep (default 10)")
    p.add_argument("--steps-per-epoch", type=argtypes.positive_int,
                   help="default: training images // --batch; set it only for benchmarks and smoke runs "
                        f"(at most one pass or {MIN_STEPS_CAP} steps: checkpoints are written at epoch ends)")
    p.add_argument("--gpus", type=argtypes.nonnegative_int,
                   help="GPUs to train on in this process (default: all visible; 0 = the CPU)")
    p.add_argument("--towers", type=argtypes.positive_int,
                   help="a test and debugging aid, not a speed feature: this many replicated towers of "
                        "the multi-GPU trainer where no GPU is used (they run on the CPU)")
    p.add_argument("--cluster", metavar="HOST:PORT,...",
                   help="several machines over TensorFlow's gRPC runtime: every machine's address, the chief "
                        "(task 0) first; run the same command on each with its --task (training/cluster.py)")
    p.add_argument("--task", type=argtypes.nonnegative_int, default=0,
                   help="this machine's index in --cluster (default 0, the chief)")
    p.add_argument("--workers", type=argtypes.nonnegative_int,
                   help="dataflow worker processes (default 0 on the CPU, min(8, cores // 2) per machine with GPUs)")
    p.add_argument("--threads", type=argtypes.nonnegative_int, default=session.available_cores(),
                   help="intra-op threads for CPU kernels (default: all cores; tensorpack's 1 is ~20%% slower); "
                        "CPU results depend on it, so a resumed run must keep it")
    p.add_argument("--nondeterministic", action="store_true",
                   help="TensorFlow's op determinism off (on by default; docs/reproducibility.md): "
                        "faster on some GPUs, reruns differ")
    p.add_argument("--amp", action="store_true",
                   help="mixed precision: bf16 on a CPU with AVX512_BF16/AMX, fp16 on GPUs (changes numerics)")
    p.add_argument("--xla", action="store_true", help="XLA auto-clustering (GPUs only)")
    p.add_argument("--data-format", default="NHWC", choices=("NHWC", "NCHW"),
                   help="layout of the convolutions (default NHWC; NCHW may help on GPUs, is slower on CPUs)")
    p.add_argument("--verbose", action="store_true",
                   help="also print TensorFlow's and tensorpack's start-up lines (tf_env.py)")
    args = p.parse_args(argv)
    parts = runrecord.resolve_recipe(args.recipe, flip=args.flip, jitter=args.jitter,
                                     normalize=args.normalize, early_grad_scale=args.early_grad_scale)
    vars(args).update(parts)
    if args.logdir is None:
        try:
            args.logdir = LOGDIR(os.path.join("train_log", f"r{args.depth}-{args.aug}-b{args.batch}"))
        except argparse.ArgumentTypeError as e:
            p.error(f"argument --logdir (default): {e}")
    return args


def memory_estimate(depth, width_mult, num_classes):
    """Bytes the weights take in training, estimated: ``models.param_count`` x 4 bytes x 4
    (the weight, its gradient, its momentum, one more copy)."""
    return 16 * param_count(depth, width_mult, num_classes)


def physical_memory():
    """Bytes of RAM of this machine (None where unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def validate(args):
    """Check every flag before anything is built; return the resolved environment (a dict)."""
    need, have = memory_estimate(args.depth, args.width_mult, 1), physical_memory()
    if have and need > have:
        raise UserError(f"--width-mult {args.width_mult:g}: the weights alone would take about {need / 2**30:.0f} GiB "
                        f"in training, more than the {have / 2**30:.0f} GiB of this machine")
    env = {"rank": 0, "size": 1, "is_chief": True}
    visible = devices.visible_gpus()
    gpus = visible if args.gpus is None else args.gpus
    if gpus > visible:
        raise UserError(f"--gpus {gpus}: only {visible} GPU(s) visible")
    env["gpus"] = gpus
    env["towers"] = devices.towers(gpus, args.towers)
    if args.cluster:
        if args.towers:
            raise UserError("--towers does not apply with --cluster: each machine runs one tower per GPU")
        env.update(cluster=cluster.parse(args.cluster), size=len(cluster.parse(args.cluster)))
        env["towers"] *= env["size"]
    env["batch_per_tower"] = devices.split_batch(args.batch, env["towers"], "towers")
    env["amp"] = amp_mode(args.amp, env["gpus"])
    if args.data_format == "NCHW" and not env["gpus"] and not tf_env.onednn_enabled():
        # TF's own CPU kernels: "Conv2D op currently only supports the NHWC tensor format on the CPU"
        raise UserError("--data-format NCHW on the CPU needs TensorFlow's oneDNN kernels, which "
                        "TF_ENABLE_ONEDNN_OPTS=0 turns off (NCHW is meant for GPUs; on a CPU it is slower)")
    if args.xla and not env["gpus"]:
        raise UserError("--xla: XLA auto-clustering applies to GPU kernels only and no GPU is used")
    # GPUs: about half the cores feed the towers (one process feeds ~12k img/s at 64x64, README "Speed")
    env["workers"] = (args.workers if args.workers is not None else
                      min(8, session.available_cores() // 2) if env["gpus"] else 0)
    return env


def amp_mode(amp, gpus):
    if not amp:
        return False
    if gpus:
        return "fp16"   # TF's bf16 graph rewrite only covers CPU (oneDNN) kernels
    if session.cpu_supports_bf16():
        return "bf16"
    raise UserError("--amp on the CPU needs AVX512_BF16 or AMX-BF16 (see /proc/cpuinfo); "
                    "without them TF emulates bf16 and is slower, not faster")


def normalization(normalize, train):
    """``(mean_bgr, std_bgr)`` in pixel units for CAMModel, per --normalize."""
    if normalize == "imagenet":
        return list(IMAGENET_MEAN_BGR), list(IMAGENET_STD_BGR)
    return train.mean_bgr().tolist(), train.std_bgr().tolist()


def make_settings(args, env, fingerprint, num_classes, image_shape, mean_std=(None, None)):
    """The RunSettings of this command: what settings.json records and resume compares.

    Needs no pixels: ``fingerprint`` is :func:`runrecord.dataset_fingerprint` (of the
    annotations alone, if need be) and ``mean_std`` may stay unknown (None).
    """
    one_pass = fingerprint["train_used"] // args.batch
    spe = args.steps_per_epoch or one_pass
    if spe < 1:
        raise UserError(f"--batch {args.batch}: more than the {fingerprint['train_used']} training images "
                        f"in {args.data}")
    if spe > max(one_pass, MIN_STEPS_CAP):
        raise UserError(f"--steps-per-epoch {spe}: more than one pass over the data ({one_pass} steps) and more "
                        f"than {MIN_STEPS_CAP}; checkpoints are written at epoch ends only, so an interrupt "
                        "would lose the whole epoch")
    model = runrecord.ModelSettings(
        depth=args.depth, num_classes=num_classes, image_shape=list(image_shape), width_mult=args.width_mult,
        final_stride=args.final_stride, mean_bgr=mean_std[0], std_bgr=mean_std[1])
    train = runrecord.TrainSettings(
        aug=args.aug, batch=args.batch, epochs=args.epochs, lr=args.lr, lr_step_epochs=args.lr_step_epochs,
        lr_decay=args.lr_decay, momentum=args.momentum, weight_decay=args.wd, seed=args.seed,
        holdout=args.holdout, recipe=args.recipe, flip=args.flip, jitter=args.jitter,
        normalize=args.normalize, early_grad_scale=args.early_grad_scale, steps_per_epoch=spe,
        final_step=spe * args.epochs, amp=env["amp"], batch_per_tower=env["batch_per_tower"],
        threads=args.threads, xla=args.xla, data_format=args.data_format,
        deterministic=not args.nondeterministic)
    speed = runrecord.SpeedSettings(
        workers=env["workers"], val_every=args.val_every, val_batch=args.val_batch,
        keep_checkpoints=args.keep_checkpoints, gpus=env["gpus"], machines=env["size"])
    return runrecord.RunSettings(
        model, train, speed, data=os.path.abspath(args.data), dataset=fingerprint,
        git_commit=git_commit(),
        versions={"tensorflow": tf.__version__, "tensorpack": tensorpack.__version__})


def git_commit(repo_dir=None):
    """The commit of the code being run (``git rev-parse HEAD``), or None outside a git checkout."""
    repo_dir = repo_dir or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
