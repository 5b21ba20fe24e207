"""The settings each table run will train with, built as train.py builds them (before any training).

The table scripts decide reuse and refusal on these :class:`runrecord.RunSettings`, not on
argv strings: a finished run is reused only when ``runrecord.run_state`` finds its
settings.json equal to them (speed settings such as ``--workers`` are not compared; ``--threads``
is, since CPU results depend on it).
They come from train.py's own parser (``training.options.parse_args``, which refuses
unknown and abbreviated flags) and ``training.options.make_settings``, with the dataset
fingerprint of the annotations (no pixels are decoded).
"""
import os

import cv2

import runrecord
from errors import UserError


class Expectation:
    """Builds the expected RunSettings of train.py commands on one dataset and GPU count."""

    def __init__(self, data, gpus_per_run):
        from dataflow import read_annotations
        self.data, self.gpus = os.path.abspath(data), gpus_per_run
        self.train, self.val = read_annotations(self.data, "train"), read_annotations(self.data, "val")
        first = os.path.join(self.data, self.train.files[0])
        image = cv2.imread(first, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise UserError(f"{first}: cannot be decoded as an image ({self.train.lines[0]})")
        self.image_shape = list(image.shape[:2])
        self._fingerprints = {}

    def fingerprint(self, holdout):
        if holdout not in self._fingerprints:
            self._fingerprints[holdout] = runrecord.dataset_fingerprint(self.train, self.val, holdout)
        return self._fingerprints[holdout]

    def settings(self, train_argv):
        """RunSettings of ``train.py <train_argv>``; a bad flag exits 2 with train.py's usage error."""
        from training import devices, options
        try:
            args = options.parse_args(train_argv)
        except SystemExit as e:
            if e.code:
                raise UserError("train.py refuses the options after -- (its message is above); "
                                "nothing was run") from None
            raise
        env = {"amp": options.amp_mode(args.amp, self.gpus), "workers": 0, "gpus": self.gpus, "size": 1,
               # as train.py splits the whole minibatch over the GPUs of its process
               "batch_per_tower": devices.split_batch(args.batch, max(self.gpus, 1), "GPUs")}
        return options.make_settings(args, env, self.fingerprint(args.holdout), len(self.train.wnids),
                                     self.image_shape)
