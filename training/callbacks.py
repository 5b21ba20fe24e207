"""The learning-rate schedule and the small tensorpack callbacks used by train.py."""

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)

import logging

import tensorflow as tf
from tensorpack.callbacks import Callback, ModelSaver, PeriodicTrigger
from tensorpack.tfutils.sessinit import SaverRestore
from tensorpack.utils import logger

from errors import UserError

tf1 = tf.compat.v1


def lr_schedule(lr, step_epochs, decay, epochs):
    """``[(epoch, value), ...]`` for tensorpack's ScheduledHyperParamSetter.

    A pair ``(e, v)`` sets the rate to ``v`` after epoch ``e`` has finished
    (``e = 0``: before the first). With the paper's values (lr 0.1, /10 every
    250 epochs, 1500 epochs; paper sec. 3) epochs 1-250 train at 0.1,
    251-500 at 0.01, and so on.
    """
    return [(e, lr * decay ** (e // step_epochs)) for e in range(0, epochs, step_epochs)]


class EveryKEpochsAndLast(PeriodicTrigger):
    """Trigger ``cb`` every ``k`` epochs and after the last epoch (validation at the end)."""

    def __init__(self, cb, k):
        super().__init__(cb, every_k_epochs=k)

    def _trigger_epoch(self):
        if self.epoch_num % self._epoch_k == 0 or self.epoch_num == self.trainer.loop.max_epoch:
            self.cb.trigger()


class ResumeCheck(Callback):
    """Stop before training if the restored global step does not match the starting epoch.

    Guards the resume rule (every checkpoint is at an epoch end) in every
    process of a ``--cluster`` run.
    """

    _chief_only = False

    def __init__(self, steps_per_epoch):
        self._spe = steps_per_epoch

    def _before_train(self):
        expected = (self.trainer.loop.starting_epoch - 1) * self._spe
        if self.global_step != expected:
            raise RuntimeError(
                f"restored global_step {self.global_step} but starting epoch "
                f"{self.trainer.loop.starting_epoch} expects {expected}: the logdir and the "
                "checkpoint disagree"
            )


# tensorpack's add_moving_summary keeps the moving averages of the training summaries (the
# xentropy-loss, train-error-top1... of stats.json) in local variables named EMA/..., which
# ModelSaver does not save: a resumed run would restart them (docs/reproducibility.md)
SUMMARY_AVERAGES = "summary_moving_averages"


def _summary_averages():
    # not the average size of the input queue (QueueInput/queue_size): a timing, not a result
    return [
        v
        for v in tf1.local_variables()
        if v.op.name.startswith("EMA/") and "/queue_size" not in v.op.name
    ]


class CheckedModelSaver(ModelSaver):
    """tensorpack's ModelSaver, except that a checkpoint (or the graph file before training)
    that cannot be written stops training at once, naming the path and the reason, and that the
    summaries' moving averages are saved too (:class:`ResumeRestore` restores them).

    tensorpack's own only logs the error and trains on with nothing saved.
    """

    def __init__(self, **kwargs):
        super().__init__(
            var_collections=[tf1.GraphKeys.GLOBAL_VARIABLES, SUMMARY_AVERAGES], **kwargs
        )

    def _setup_graph(self):
        for v in _summary_averages():
            tf1.add_to_collection(SUMMARY_AVERAGES, v)
        super()._setup_graph()

    def _before_train(self):
        try:
            super()._before_train()  # writes graph-<time>.meta into the logdir
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise UserError(
                f"{self.checkpoint_dir}: cannot write the graph file before training ({_reason(e)})"
            ) from None

    def _trigger(self):
        path = f"{self.path}-{self.global_step}"
        try:
            self.saver.save(
                tf1.get_default_session(),
                self.path,
                global_step=tf1.train.get_global_step(),
                write_meta_graph=False,
            )
        except (OSError, ValueError, tf.errors.OpError) as e:
            raise UserError(
                f"{path}: cannot write the checkpoint ({_reason(e)}); training stopped at "
                f"global step {self.global_step}, the checkpoints written before are kept"
            ) from None
        logger.info(f"Model saved to {path}.")


class ResumeRestore(SaverRestore):
    """tensorpack's SaverRestore, plus the summaries' moving averages that :class:`CheckedModelSaver`
    saved, so that stats.json continues as if the run had not stopped."""

    def _setup_graph(self):
        restore = self._get_restore_dict()
        reader = tf1.train.NewCheckpointReader(self.path)
        restore.update({v.op.name: v for v in _summary_averages() if reader.has_tensor(v.op.name)})
        self.saver = tf1.train.Saver(var_list=restore, name="resume_restore")


def _reason(error):
    """One line: an OSError's strerror and file, or the line of a TensorFlow OpError that names the
    failure (e.g. "... model-6.data-00000-of-00001.tempstate123: No space left on device"), not the
    node lines ("[[...]]") nor the OOM "Hint:" TensorFlow appends to every ResourceExhaustedError."""
    if isinstance(error, tf.errors.OpError):
        lines = [
            line.strip()
            for line in error.message.splitlines()
            if line.strip() and not line.strip().startswith(("[[", "Hint:", "This isn't available"))
        ]
        return lines[-1] if lines else type(error).__name__
    if getattr(error, "strerror", None):
        return error.strerror + (f": {error.filename}" if getattr(error, "filename", None) else "")
    return str(error).strip() or type(error).__name__


class FixFailureLog(logging.Filter):
    """tensorpack 0.11's main loop logs ``logger.error("Training failed at global_step=", step)``
    without a ``%s``, so logging prints a traceback of its own; this completes the format."""

    def filter(self, record):
        if record.msg == "Training failed at global_step=" and record.args:
            record.msg += " %s"
        return True
