"""progress.json while a run trains: :class:`ProgressRecord` writes ``<logdir>/progress.json`` (the epoch
ends' wall times, :mod:`runrecord.cost`), which the table scripts read for their ETA.
"""

import tf_env  # noqa: F401 (before TensorFlow: sets its environment, tf_env.py)

import os
import time

from tensorpack.callbacks import Callback
from tensorpack.utils import logger

import fileio
from runrecord.cost import PROGRESS, RECENT_EPOCHS


class ProgressRecord(Callback):
    """Writes progress.json before the first step and at each epoch end: the time between two epoch ends
    includes every callback (validation, checkpoint) wherever it is placed.  A failed write only warns."""

    def __init__(self, logdir, epochs, steps_per_epoch, batch):
        self.path = os.path.join(logdir, PROGRESS)
        self.doc = {
            "epochs": epochs,
            "steps_per_epoch": steps_per_epoch,
            "batch": batch,
            "ends": [],
        }

    def _before_train(self):
        self.doc.update(
            start_epoch=self.trainer.loop.starting_epoch, started=time.time(), pid=os.getpid()
        )
        self._write()

    def _trigger_epoch(self):
        self.doc["ends"] = (self.doc["ends"] + [[self.epoch_num, time.time()]])[
            -2 * RECENT_EPOCHS :
        ]
        self._write()

    def _write(self):
        try:
            fileio.write_json(self.path, self.doc)
        except OSError as e:
            logger.warn(
                f"{self.path}: not written ({e}); the table scripts show no ETA for this run"
            )
