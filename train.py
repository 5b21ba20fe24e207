"""Train a pre-activation ResNet with a CAM head on Tiny ImageNet (paper sec. 3).

Examples::

    # the paper's setting for one cell of Table 1 (1500 epochs; days on one GPU)
    python train.py --data tiny-imagenet-200 --depth 18 --aug gr --batch 256 --logdir train_log/r18-gr-b256

    # a short run: 2 epochs, lr /10 after epoch 1, a narrow net, validation every epoch
    python train.py --data demo_data --depth 18 --aug gr --batch 32 --epochs 2 --lr-step-epochs 1 \\
        --width-mult 0.125 --val-every 1 --logdir train_log/smoke

    # several machines, 4 GPUs each (the whole minibatch 256 is split over the 8 processes)
    horovodrun -np 8 -H host1:4,host2:4 python train.py --horovod --data tiny-imagenet-200 \\
        --depth 34 --aug gr --batch 256 --logdir /shared/train_log/r34-gr-b256

Re-running the same command continues from the last checkpoint; a logdir that
holds a run with other settings is refused. The logdir receives tensorpack's
checkpoints, log.log, stats.json and TensorBoard events, plus settings.json
(every resolved setting, the git commit) and, at the end, done.json.
"""
import tf_env  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS)

import argparse
import os
import sys

import numpy as np
import tensorflow as tf
import tensorpack
from tensorpack import QueueInput
from tensorpack.callbacks import (
    ClassificationError, EstimatedTimeLeft, InferenceRunner, MergeAllSummaries, ModelSaver,
    MovingAverageSummary, ProgressBar, RunUpdateOps, ScheduledHyperParamSetter)
from tensorpack.dataflow import MapData
from tensorpack.tfutils.sessinit import SaverRestore
from tensorpack.train import AutoResumeTrainConfig, launch_train_with_config
from tensorpack.utils import logger

from augment import METHODS
from dataflow import build_eval_dataflow, build_train_dataflow, load_split
from errors import UserError, run_main
from models import DEPTHS, FINAL_STRIDES, WRONG_TOP1, WRONG_TOP5, CAMModel
from training import callbacks as cbs
from training import devices, rundir, session

tf1 = tf.compat.v1


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def nonnegative_int(text):
    return positive_int(text) if text.strip() != "0" else 0


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="Tiny ImageNet root (holds wnids.txt, train/, val/)")
    p.add_argument("--aug", required=True, choices=METHODS, help="augmentation (paper Table 1)")
    p.add_argument("--depth", type=int, default=18, choices=sorted(DEPTHS),
                   help="ResNet depth (default 18; paper sec. 3: 18 and 34)")
    p.add_argument("--batch", type=positive_int, default=256,
                   help="the whole minibatch, split over GPUs/processes (default 256, paper Table 1)")
    p.add_argument("--logdir", help="default train_log/r{depth}-{aug}-b{batch}")
    p.add_argument("--epochs", type=positive_int, default=1500, help="default 1500 (paper sec. 3)")
    p.add_argument("--lr", type=positive_float, default=0.1, help="initial learning rate (default 0.1, paper sec. 3)")
    p.add_argument("--lr-step-epochs", type=positive_int, default=250,
                   help="multiply the rate by --lr-decay every this many epochs (default 250, paper sec. 3)")
    p.add_argument("--lr-decay", type=positive_float, default=0.1,
                   help="default 0.1 (paper sec. 3: divided by 10)")
    p.add_argument("--momentum", type=float, default=0.9, help="Nesterov momentum (default 0.9, paper sec. 3)")
    p.add_argument("--wd", type=float, default=1e-4,
                   help="weight decay on conv and FC weights (default 1e-4, paper sec. 3)")
    p.add_argument("--seed", type=int, default=0, help="seeds the initialisation and the data order (default 0)")
    p.add_argument("--flip", action="store_true",
                   help="random horizontal flip (not the paper's; the authors' code had one, facts.md)")
    p.add_argument("--width-mult", type=positive_float, default=1.0,
                   help="scale all widths (default 1.0; other values are not the paper's: tests, demo)")
    p.add_argument("--final-stride", type=int, default=4, choices=sorted(FINAL_STRIDES),
                   help="4: a 16x16 map from 64x64 (default; paper, facts.md); 8: an 8x8 map (not the paper's)")
    p.add_argument("--val-every", type=positive_int, default=10,
                   help="validation Top-1/Top-5 error every this many epochs and after the last (default 10)")
    p.add_argument("--val-batch", type=positive_int, default=128, help="batch size for validation (default 128)")
    p.add_argument("--keep-checkpoints", type=positive_int, default=10,
                   help="how many of the newest checkpoints to keep (default 10)")
    p.add_argument("--steps-per-epoch", type=positive_int,
                   help="default: training images // --batch; set it only for benchmarks and smoke runs")
    p.add_argument("--gpus", type=nonnegative_int,
                   help="GPUs to train on in this process (default: all visible; 0 = the CPU)")
    p.add_argument("--horovod", action="store_true",
                   help="one process per GPU under horovodrun (tensorpack's HorovodTrainer)")
    p.add_argument("--workers", type=nonnegative_int,
                   help="dataflow worker processes (default 0 on the CPU, min(8, cores // 2) per machine with GPUs)")
    p.add_argument("--threads", type=nonnegative_int, default=session.available_cores(),
                   help="intra-op threads for CPU kernels (default: all cores; tensorpack's 1 is ~20%% slower)")
    p.add_argument("--amp", action="store_true",
                   help="mixed precision: bf16 on a CPU with AVX512_BF16/AMX, fp16 on GPUs (changes numerics)")
    p.add_argument("--xla", action="store_true", help="XLA auto-clustering (GPUs only)")
    p.add_argument("--data-format", default="NHWC", choices=("NHWC", "NCHW"),
                   help="layout of the convolutions (default NHWC; NCHW may help on GPUs, is slower on CPUs)")
    args = p.parse_args(argv)
    if args.logdir is None:
        args.logdir = os.path.join("train_log", f"r{args.depth}-{args.aug}-b{args.batch}")
    return args


def _check_writable(logdir):
    try:
        os.makedirs(logdir, exist_ok=True)
        probe = os.path.join(logdir, f".write-test-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as e:
        raise UserError(f"--logdir {logdir}: not a writable directory ({e.strerror or e})") from None


def validate(args):
    """Check every flag before anything is built; return the resolved environment (a dict)."""
    if not os.path.isdir(args.data):
        raise UserError(f"--data {args.data}: no such directory")
    if not os.path.isfile(os.path.join(args.data, "wnids.txt")):
        raise UserError(f"--data {args.data}: no wnids.txt there (expected the Tiny ImageNet root)")
    if not 0 <= args.momentum < 1:
        raise UserError(f"--momentum {args.momentum}: must be in [0, 1)")
    if args.wd < 0:
        raise UserError(f"--wd {args.wd}: must be >= 0")
    env = {"rank": 0, "size": 1, "is_chief": True, "local_size": 1}
    if args.horovod:
        if args.gpus is not None:
            raise UserError("--gpus does not apply with --horovod: each process drives one GPU; "
                            "choose the number of processes with horovodrun -np")
        hvd = devices.import_horovod()
        hvd.init()
        env.update(rank=hvd.rank(), size=hvd.size(), is_chief=hvd.rank() == 0, local_size=hvd.local_size())
        env["gpus"] = 1 if devices.visible_gpus() else 0
        env["batch_per_tower"] = devices.horovod_plan(args.batch, env["size"], env["rank"],
                                                      args.logdir)["batch_per_rank"]
    else:
        visible = devices.visible_gpus()
        gpus = visible if args.gpus is None else args.gpus
        if gpus > visible:
            raise UserError(f"--gpus {gpus}: only {visible} GPU(s) visible")
        env["gpus"] = gpus
        env["batch_per_tower"] = devices.split_batch(args.batch, max(gpus, 1), "GPUs")
    if args.amp:
        if env["gpus"]:
            env["amp"] = "fp16"   # TF's bf16 graph rewrite only covers CPU (oneDNN) kernels
        elif session.cpu_supports_bf16():
            env["amp"] = "bf16"
        else:
            raise UserError("--amp on the CPU needs AVX512_BF16 or AMX-BF16 (see /proc/cpuinfo); "
                            "without them TF emulates bf16 and is slower, not faster")
    else:
        env["amp"] = False
    if args.xla and not env["gpus"]:
        raise UserError("--xla: XLA auto-clustering applies to GPU kernels only and no GPU is used")
    # GPUs: about half the cores feed the towers (one process feeds ~12k img/s at 64x64,
    # tensorpack-notes.md), shared by the Horovod processes of one machine
    env["workers"] = (args.workers if args.workers is not None else
                      min(8, session.available_cores() // (2 * env["local_size"])) if env["gpus"] else 0)
    if env["is_chief"]:
        _check_writable(args.logdir)
    return env


def load_data(args):
    return load_split(args.data, "train"), load_split(args.data, "val")


def make_settings(args, env, model, train, val, steps_per_epoch):
    """The resolved settings written to settings.json and compared on resume."""
    return {
        "model": model.arch_settings(),
        "train": {
            "aug": args.aug, "batch": args.batch, "epochs": args.epochs, "lr": args.lr,
            "lr_step_epochs": args.lr_step_epochs, "lr_decay": args.lr_decay,
            "momentum": args.momentum, "weight_decay": args.wd, "seed": args.seed, "flip": args.flip,
            "amp": env["amp"], "batch_per_tower": env["batch_per_tower"], "gpus": env["gpus"],
            "horovod_size": env["size"], "steps_per_epoch": steps_per_epoch,
            "final_step": steps_per_epoch * args.epochs,
            # not compared on resume (rundir.NOT_COMPARED):
            "workers": env["workers"], "threads": args.threads, "val_every": args.val_every,
            "val_batch": args.val_batch, "keep_checkpoints": args.keep_checkpoints,
            "xla": args.xla, "data_format": args.data_format,
        },
        "data": os.path.abspath(args.data),
        "dataset": rundir.dataset_fingerprint(train, val),
        "git_commit": rundir.git_commit(),
        "versions": {"tensorflow": tf.__version__, "tensorpack": tensorpack.__version__},
    }


def make_callbacks(args, val, steps_per_epoch):
    val_flow = MapData(build_eval_dataflow(val, args.val_batch),
                       lambda dp: dp[:2])   # [images, labels]; the boxes are for evaluate.py
    validation = InferenceRunner(val_flow, [ClassificationError(WRONG_TOP1, "val-error-top1"),
                                            ClassificationError(WRONG_TOP5, "val-error-top5")])
    schedule = cbs.lr_schedule(args.lr, args.lr_step_epochs, args.lr_decay, args.epochs)
    # Order matters at each epoch end: summaries (the lr of the epoch just trained) are
    # taken before the lr setter runs, and the checkpoint after it, so that a resumed run
    # starts from the rate its next epoch uses.
    return [
        MovingAverageSummary(), ProgressBar(), MergeAllSummaries(), RunUpdateOps(),
        cbs.ResumeCheck(steps_per_epoch),
        cbs.EveryKEpochsAndLast(validation, args.val_every),
        EstimatedTimeLeft(),
        ScheduledHyperParamSetter("learning_rate", schedule),
        # every epoch; keep_checkpoint_every_n_hours off, or a 1500-epoch run keeps hundreds
        ModelSaver(max_to_keep=args.keep_checkpoints, keep_checkpoint_every_n_hours=1e9),
    ]


def run(args, env, extra_callbacks=()):
    """Train (or resume, or report a finished run). Returns the final global step."""
    train, val = load_data(args)
    if env["batch_per_tower"] > len(train):
        raise UserError(f"--batch {args.batch}: more than the {len(train)} training images in {args.data}")
    steps_per_epoch = args.steps_per_epoch or len(train) // args.batch
    final_step = steps_per_epoch * args.epochs
    model = CAMModel(args.depth, train.num_classes, train.image_shape, width_mult=args.width_mult,
                     final_stride=args.final_stride, mean_bgr=train.mean_bgr(), std_bgr=train.std_bgr(),
                     weight_decay=args.wd, momentum=args.momentum, lr=args.lr, amp=env["amp"],
                     data_format=args.data_format)
    settings = make_settings(args, env, model, train, val, steps_per_epoch)
    chief = env["is_chief"]
    state = rundir.check_logdir(args.logdir, settings) if chief else "resume"
    prefix, step, start_epoch = rundir.resume_point(args.logdir, steps_per_epoch)
    if step > final_step:
        raise UserError(f"{prefix}: global step {step} is past the planned final step {final_step}")
    if state == "new":
        rundir.write_json(os.path.join(args.logdir, rundir.SETTINGS), settings)
    if step == final_step:
        done = {"global_step": step, "epoch": args.epochs}
        if chief and state != "done":
            rundir.write_json(os.path.join(args.logdir, rundir.DONE), done)
        print(f"{args.logdir}: training finished (global step {step}, epoch {args.epochs}); nothing to do")
        return step
    if chief:
        rundir.trim_stats(args.logdir, step, start_epoch - 1)
        logger.set_logger_dir(args.logdir, action="k")
    if prefix:
        logger.info(f"Resuming from {prefix}: global step {step}, epoch {start_epoch} of {args.epochs}")

    tf1.disable_eager_execution()   # before seeding: the seed belongs to the graph
    tf1.set_random_seed(args.seed)
    # a different data order after each resume point and per Horovod rank, reproducible from --seed
    data_seed = int(np.random.SeedSequence([args.seed, start_epoch, env["rank"]]).generate_state(1)[0])
    flow = build_train_dataflow(
        train, args.aug, env["batch_per_tower"], fill=train.mean_bgr(), seed=data_seed,
        num_workers=env["workers"], flip=args.flip)
    config = AutoResumeTrainConfig(
        # explicit session_init/starting_epoch: resume from the checkpoint's own global step,
        # which stays right even if a kill fell between ModelSaver and the stats.json write
        always_resume=False, session_init=SaverRestore(prefix) if prefix else None,
        starting_epoch=start_epoch,
        model=model, data=QueueInput(flow),
        callbacks=make_callbacks(args, val, steps_per_epoch) + list(extra_callbacks),
        extra_callbacks=[],
        session_creator=session.SessionCreator(session.session_config(
            threads=args.threads, amp=env["amp"], xla=args.xla)),
        steps_per_epoch=steps_per_epoch, max_epoch=args.epochs)
    launch_train_with_config(config, devices.make_trainer(env["gpus"], horovod=args.horovod))

    if chief:
        found = rundir.latest_checkpoint(args.logdir)
        step = found[1] if found else 0
        if step != final_step:
            raise UserError(f"training stopped at global step {step} before the planned {final_step}; "
                            "re-run the same command to continue")
        rundir.write_json(os.path.join(args.logdir, rundir.DONE), {"global_step": step, "epoch": args.epochs})
        print(f"{args.logdir}: training finished (global step {step}, epoch {args.epochs})")
    return final_step


def main(argv=None):
    args = parse_args(argv)
    env = validate(args)
    try:
        run(args, env)
    except KeyboardInterrupt:
        print(f"interrupted; re-run the same command to continue from the last checkpoint in {args.logdir}",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
