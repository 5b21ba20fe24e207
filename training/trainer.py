"""train.py's body: check the flags on this machine, load the data, resolve the settings, prepare the
logdir, build tensorpack's config and train (paper sec. 3).  train.py parses the flags without
TensorFlow (``runrecord.command.parse_args``) and calls :func:`main`::

    flags = runrecord.command.parse_args(argv)
    trainer.main(flags, localization=evaluation.watch.LocalizationInferencer)

The logdir receives tensorpack's checkpoints, log.log, stats.json and TensorBoard events, plus
settings.json (every resolved setting, the git commit, the machine) and, after a run that ended well,
done.json (runrecord/).
"""

import tf_env  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS)

import contextlib
import errno
import logging
import os
import resource
import signal
import subprocess
import sys

import tensorflow as tf
import tensorpack
from tensorpack.callbacks import (
    ClassificationError,
    EstimatedTimeLeft,
    InferenceRunner,
    MergeAllSummaries,
    MovingAverageSummary,
    ProgressBar,
    RunUpdateOps,
    ScheduledHyperParamSetter,
)
from tensorpack.dataflow import MapData
from tensorpack.train import AutoResumeTrainConfig, launch_train_with_config
from tensorpack.utils import logger

from dataflow import builders, tinyimagenet
import fileio
import runrecord
from errors import UserError, raise_interrupt
from runrecord import command
from models.loss import FP16_LOSS_SCALE, NONFINITE_GRADIENT, NONFINITE_LOSS
from models.resnet import WRONG_TOP1, WRONG_TOP5, CAMModel, normalization, param_count
from training import callbacks as cbs
from training import cluster, devices, resume, session, watch
from training.machine import facts as machine_facts

tf1 = tf.compat.v1
LOSS = "xentropy-loss"  # the progress bar's loss: models.resnet's cross-entropy of the step (before weight decay)
LOCK = ".train.lock"  # one train.py per logdir: holds the PID of the process training there


def check_memory(args, machine):
    """A UserError where the weights alone would not fit in ``machine.memory`` (bytes of RAM) in training:
    ``models.param_count`` x 4 bytes x 4 (the weight, its gradient, its momentum, one more copy)."""
    need, have = 16 * param_count(args.depth, args.width_mult, 1), machine.memory
    if have and need > have:
        raise UserError(
            f"--width-mult {args.width_mult:g}: the weights alone would take about {need / 2**30:.0f} GiB "
            f"in training, more than the {have / 2**30:.0f} GiB of this machine"
        )


def git_commit(repo_dir=None):
    """The commit of the code being run (``git rev-parse HEAD``), or None outside a git checkout."""
    repo_dir = repo_dir or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def load_data(args):
    """``(train, used, val)``: the training split, the part trained on (without --holdout), val."""
    train = tinyimagenet.load_split(args.data, "train")
    used = tinyimagenet.split_holdout(train, args.holdout)[0] if args.holdout else train
    if not len(used):
        raise UserError(f"--holdout {args.holdout}: leaves no training image in {args.data}")
    val = tinyimagenet.load_split(args.data, "val")
    if (
        val.image_shape != train.image_shape
    ):  # else the first validation dies, every rerun at the same point
        (vh, vw), (th, tw) = val.image_shape, train.image_shape
        raise UserError(
            f"--data {args.data}: the val images are {vh}x{vw} (HxW) but the train images are "
            f"{th}x{tw}; the network validates on the size it trains on"
        )
    return train, used, val


def checked_normalization(args, train):
    """``normalization(--normalize, train)``; a UserError for a channel whose training pixels are all
    equal (std 0): dividing by it makes the first loss NaN, which no --lr cures."""
    mean, std = normalization(args.normalize, train)
    flat = [c for c, s in zip("BGR", std) if s == 0]
    if flat:
        raise UserError(
            f"--data {args.data}: every training pixel has the same {'/'.join(flat)} value "
            f"(standard deviation 0), so --normalize dataset would divide by zero; use images "
            "that vary, or --normalize imagenet"
        )
    return mean, std


class Data:
    """A run's data, read when :func:`runrecord.command.resolve` asks for its facts (after every flag is
    checked on the machine): ``train``, ``used`` (``train`` without ``--holdout``) and ``val``, the loaded
    splits (:class:`dataflow.tinyimagenet.Split`)."""

    train = used = val = None

    def __call__(self, args):
        """:func:`load_data`, and the :class:`runrecord.command.DataFacts` of what it read."""
        self.train, self.used, self.val = load_data(args)
        return command.DataFacts(
            runrecord.dataset_fingerprint(self.train, self.val, args.holdout),
            self.train.num_classes,
            self.train.image_shape,
            checked_normalization(args, self.train),
        )


def make_callbacks(settings, val, localization=None):
    """tensorpack's callbacks of a run; ``val``: the loaded validation split (its images, labels, boxes);
    ``localization``: the validation's Inferencer class of ``(split, images)`` that measures GT-known and
    Top-1 Loc (``evaluation.watch.LocalizationInferencer``), None: not measured."""
    t, speed = settings.train, settings.speed
    val_flow = MapData(
        builders.build_eval_dataflow(val, speed.val_batch), lambda dp: dp[:2]
    )  # [images, labels]; the boxes come from ``val`` in the same order
    # one forward pass: the validation error and the CAMs' GT-known / Top-1 Loc (evaluation/watch.py)
    measure = localization and speed.loc_images
    validation = InferenceRunner(
        val_flow,
        [
            ClassificationError(WRONG_TOP1, "val-error-top1"),
            ClassificationError(WRONG_TOP5, "val-error-top5"),
        ]
        + ([localization(val, speed.loc_images)] if measure else []),
    )
    schedule = cbs.lr_schedule(t.lr, t.lr_step_epochs, t.lr_decay, t.epochs)
    # Order matters at each epoch end: summaries (the lr of the epoch just trained) are
    # taken before the lr setter runs, and the checkpoint after it, so that a resumed run
    # starts from the rate its next epoch uses. progress.json before the checkpoint, whose write stays
    # next to stats.json's (tensorpack's monitors come last); its epoch times include every callback.
    # the chief's logdir
    progress = (
        [watch.ProgressRecord(logger.get_logger_dir(), t.epochs, t.steps_per_epoch, t.batch)]
        if logger.get_logger_dir()
        else []
    )
    return [
        MovingAverageSummary(),
        ProgressBar([LOSS]),
        MergeAllSummaries(),
        RunUpdateOps(),
        cbs.EveryKEpochsAndLast(validation, speed.val_every),
        EstimatedTimeLeft(),
        *progress,
        ScheduledHyperParamSetter("learning_rate", schedule),
        # every --checkpoint-every epochs and after the last; keep_checkpoint_every_n_hours off,
        # or a 1500-epoch run keeps hundreds
        cbs.EveryKEpochsAndLast(
            cbs.CheckedModelSaver(
                max_to_keep=speed.keep_checkpoints, keep_checkpoint_every_n_hours=1e9
            ),
            speed.checkpoint_every,
        ),
    ]


def prepare_logdir(settings, env, logdir, *, restart=False, adopt_settings=False):
    """Refuse a conflicting logdir, find the resume point, write settings.json.

    Returns ``(checkpoint prefix or None, global step, starting epoch)``, or None when
    the run is already finished.
    """
    t = settings.train
    state, reason = runrecord.run_state(logdir, settings)
    lost = not os.path.isfile(os.path.join(logdir, runrecord.SETTINGS))
    if state == runrecord.CONFLICT and lost and adopt_settings:
        logger.warn(f"--adopt-settings: writing this command's {runrecord.SETTINGS} into {logdir}")
        state = runrecord.NEW
    elif state == runrecord.CONFLICT:
        raise UserError(
            f"{reason}\n"
            + (
                f"If this command started that run, re-run it with --adopt-settings to record its "
                f"{runrecord.SETTINGS} and continue from the newest checkpoint; else choose another --logdir"
                if lost
                else "Re-run it with its own settings, or choose another --logdir"
            )
        )
    elif adopt_settings:
        raise UserError(
            f"--adopt-settings: {logdir} is not a run without {runrecord.SETTINGS} ({reason})"
        )
    prefix, step, start_epoch = resume.resume_point(
        logdir, t.steps_per_epoch, restart=restart, warn=logger.warn
    )
    if step > t.final_step:
        raise UserError(
            f"{prefix}: global step {step} is past the planned final step {t.final_step}"
        )
    done = os.path.join(logdir, runrecord.DONE)
    if state == runrecord.NEW:
        runrecord.write_json(os.path.join(logdir, runrecord.SETTINGS), settings.to_json())
    if step == t.final_step:
        if not os.path.exists(done):
            runrecord.write_json(done, {"global_step": step, "epoch": t.epochs})
        print(f"{logdir}: training finished (global step {step}, epoch {t.epochs}); nothing to do")
        return None
    if settings.machine:  # resumed on another machine: settings.json names both (runrecord.machine)
        runrecord.note_machine(logdir, dict(settings.machine[-1], from_step=step))
    if os.path.exists(done):  # its final checkpoint was damaged: training continues
        os.remove(done)
    resume.trim_stats(logdir, step, start_epoch - 1)
    logger.set_logger_dir(logdir, action="k")
    logger.info(
        f"Resuming from {prefix}: global step {step}, epoch {start_epoch} of {t.epochs}"
        if prefix
        else f"Starting at global step 0: no checkpoint in {logdir}"
    )
    return prefix, step, start_epoch


def build_config(settings, env, used, val, prefix, start_epoch, extra_callbacks, localization=None):
    """tensorpack's AutoResumeTrainConfig of the run, from ``prefix`` (a checkpoint, or None) at ``start_epoch``."""
    t = settings.train
    tf1.disable_eager_execution()  # before seeding: the seed belongs to the graph
    session.use_op_determinism(t.deterministic)  # before the graph: ops pick kernels when built
    session.use_tf32(t.tf32)
    logger.info(
        f"TF32 {'on' if t.tf32 else 'off'} (--tf32): float32 convolutions and matmuls on GPUs round their "
        f"inputs to {'10' if t.tf32 else '23'} mantissa bits"
    )
    tf1.set_random_seed(t.seed)
    # the data stream is a function of --seed and the batch index alone (dataflow.builders): a resumed
    # run continues it where the checkpoint's steps ended; one whole minibatch a step, split over the towers
    flow = builders.build_train_dataflow(
        used,
        t.aug,
        t.batch,
        seed=t.seed,
        start=(start_epoch - 1) * t.steps_per_epoch,
        num_workers=env.workers,
        flip=t.flip,
        jitter=t.jitter,
    )
    reasons = session.not_bit_identical(t)
    if reasons:
        logger.warn(
            f"reruns of this command may not be bit-identical: {'; '.join(reasons)} "
            "(docs/reproducibility.md)"
        )
    model = CAMModel(settings.model, t)
    return AutoResumeTrainConfig(
        # explicit session_init/starting_epoch: resume from the checkpoint's own global step,
        # which stays right even if a kill fell between ModelSaver and the stats.json write
        always_resume=False,
        session_init=cbs.ResumeRestore(prefix) if prefix else None,
        starting_epoch=start_epoch,
        model=model,
        data=devices.train_input(flow, env.towers),
        callbacks=[cbs.ResumeCheck(t.steps_per_epoch)]
        + make_callbacks(settings, val, localization)
        + list(extra_callbacks),
        extra_callbacks=[],
        session_creator=session.SessionCreator(
            session.session_config(threads=env.threads, amp=t.amp, xla=t.xla),
            deterministic=t.deterministic,
        ),
        steps_per_epoch=t.steps_per_epoch,
        max_epoch=t.epochs,
    )


def train_steps(env, config, logdir):
    """Run tensorpack's loop; a NaN/inf loss stops it with an error. Returns the trainer."""
    trainer = devices.make_trainer(env.towers)
    logging.getLogger("tensorpack").addFilter(cbs.FixFailureLog())
    hosts, place = env.cluster, contextlib.nullcontext()
    if hosts:  # the chief of --cluster: its towers on the other tasks too (training/cluster.py)
        config.session_creator.target = cluster.chief(
            hosts, env, config.session_creator.config
        ).target
        place = tf1.device(cluster.placement(env.towers // len(hosts)))
    try:
        with place:
            launch_train_with_config(config, trainer)
    except tf.errors.InvalidArgumentError as e:
        if NONFINITE_LOSS not in str(e) and NONFINITE_GRADIENT not in str(e):
            raise
        kept = runrecord.latest_checkpoint(logdir, warn=logger.warn)
        kept = (
            f"the last good checkpoint {kept[0]} is kept"
            if kept
            else "no checkpoint had been written"
        )
        what, hint = (
            ("the training loss became NaN or infinite", "a lower --lr may help")
            if NONFINITE_LOSS in str(e)
            else (
                "an fp16 gradient overflowed (NaN or infinite under --amp's static loss scale "
                f"{FP16_LOSS_SCALE:g})",
                "train without --amp, or with a lower --lr",
            )
        )
        raise UserError(
            f"{what} after global step {trainer.loop.global_step}; training stopped, {kept}, "
            f"done.json is not written ({hint})"
        ) from None
    finally:
        if hosts:
            cluster.release(config.session_creator.target, hosts, env.peer_timeout)
        # QueueInput's feeding thread is a daemon that may be inside an augmentor (OpenCV) when the
        # loop ends; left running into interpreter shutdown, Python ends it with pthread_exit inside
        # C++ code, and the process aborts ("terminate called without an active exception") after
        # training finished. The session is closed now, so the thread stops at its next enqueue.
        # Not started (an interrupt or an error during the setup): nothing to join, and join() would
        # raise "cannot join thread before it is started" in place of the interrupt or the error.
        feeder = getattr(config.data, "thread", None)
        if feeder is not None and feeder.ident is not None:
            feeder.join(timeout=60)
    return trainer


def finish(settings, logdir, trainer):
    """Write done.json after a run that ended well: the final checkpoint is on disk and restores."""
    final, epochs = settings.train.final_step, settings.train.epochs
    found = runrecord.latest_checkpoint(logdir, warn=logger.warn)
    saved = found[1] if found else 0
    if saved != final:
        raise UserError(
            f"training stopped at global step {trainer.loop.global_step} before the planned "
            f"{final}; the newest checkpoint that restores is at step {saved}; re-run the same "
            "command to continue from it"
        )
    runrecord.write_json(
        os.path.join(logdir, runrecord.DONE), {"global_step": final, "epoch": epochs}
    )
    print(f"{logdir}: training finished (global step {final}, epoch {epochs})")


def run(args, machine, extra_callbacks=(), localization=None):
    """Train (or resume, or report a finished run) ``args`` (``runrecord.command.parse_args``'s) on
    ``machine`` (:func:`training.machine.facts`); ``localization``: as :func:`make_callbacks`.
    Returns the final global step.  Past the settings, only they, the environment and the logdir are read."""
    check_memory(args, machine)
    data = Data()  # read by resolve once the flags are checked on the machine
    env, settings = command.resolve(
        args,
        machine,
        data,
        git_commit=git_commit(),
        versions={"tensorflow": tf.__version__, "tensorpack": tensorpack.__version__},
    )
    logdir = args.logdir
    lock = lock_logdir(logdir)  # noqa: F841 (held while the name lives: until training ends, or the process dies)
    start = prepare_logdir(
        settings, env, logdir, restart=args.restart, adopt_settings=args.adopt_settings
    )
    if start is not None:
        prefix, _, start_epoch = start
        config = build_config(
            settings, env, data.used, data.val, prefix, start_epoch, extra_callbacks, localization
        )
        finish(settings, logdir, train_steps(env, config, logdir))
    return settings.train.final_step


def lock_logdir(logdir):
    """Hold the lock of one train.py per logdir (fileio.hold_lock; the OS drops it when this
    process dies, even by kill -9).  None for a finished run on read-only storage."""
    if os.path.exists(os.path.join(logdir, runrecord.DONE)) and not os.access(logdir, os.W_OK):
        return None
    try:
        os.makedirs(logdir, exist_ok=True)
    except OSError as e:
        raise UserError(f"--logdir {logdir}: cannot create the folder ({e.strerror})") from None
    return fileio.hold_lock(os.path.join(logdir, LOCK), f"--logdir {logdir}")


def interrupted(logdir, checkpoint_every=1):
    """The Ctrl-C / SIGTERM message: what is kept, what is lost (every step since the newest checkpoint)."""
    found = runrecord.latest_checkpoint(logdir, warn=lambda _: None)
    kept = (
        f"the newest checkpoint is {found[0]} (global step {found[1]}); re-run the same command to continue "
        "from it"
        if found
        else "no checkpoint was written yet; re-run the same command to start again"
    )
    if checkpoint_every == 1:
        return (
            "interrupted: the steps since the last epoch end are lost (checkpoints are written at "
            f"epoch ends); {kept}"
        )
    return (
        f"interrupted: the steps since the newest checkpoint are lost, up to {checkpoint_every} epochs "
        f"(--checkpoint-every {checkpoint_every}: checkpoints every {checkpoint_every} epochs and "
        f"after the last); {kept}"
    )


def main(args, localization=None):
    """train.py after its flags are parsed (``runrecord.command.parse_args``): a ``--cluster`` task other than 0
    serves its towers; else :func:`run` on this machine, with the interrupt and too-many-files messages.
    Returns the exit status."""
    if args.cluster and args.task:  # not the chief: serve its towers, no data, no logdir
        session.use_op_determinism(
            not args.nondeterministic
        )  # the kernels of the chief's towers placed here
        session.use_tf32(args.tf32)
        return cluster.serve(
            command.parse_cluster(args.cluster),
            args.task,
            session.session_config(threads=args.threads),
            args.peer_timeout,
        )
    signal.signal(
        signal.SIGTERM, raise_interrupt
    )  # a kill (the table scripts' stop) ends as Ctrl-C does
    try:
        run(args, machine_facts(), localization=localization)
    except KeyboardInterrupt:
        print(interrupted(args.logdir, args.checkpoint_every), file=sys.stderr)
        return 130
    except Exception as e:  # OSError, ZMQError: the data workers' pipes and sockets are files too
        if getattr(e, "errno", None) != errno.EMFILE:
            raise
        raise UserError(
            f"too many open files ({e}; ulimit -n is {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}): "
            f"raise it (ulimit -n) or lower --workers"
        ) from None
    return 0
