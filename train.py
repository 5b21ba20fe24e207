"""Train a pre-activation ResNet with a CAM head on Tiny ImageNet (paper sec. 3).

Examples::

    # the paper's setting for one cell of Table 1 (1500 epochs; days on one GPU)
    python train.py --data tiny-imagenet-200 --depth 18 --aug gr --batch 256 --logdir train_log/r18-gr-b256

    # the authors' later recipe (SN-ResNet): jitter, flip, ImageNet normalisation, early layers x0.1
    python train.py --data tiny-imagenet-200 --aug gr --recipe sn-resnet --logdir train_log/r18-gr-b256-sn

    # a short run: 2 epochs, lr /10 after epoch 1, a narrow net, validation every epoch
    python train.py --data demo_data --depth 18 --aug gr --batch 32 --epochs 2 --lr-step-epochs 1 \\
        --width-mult 0.125 --val-every 1 --logdir train_log/smoke

    # several machines, 4 GPUs each (the whole minibatch 256 is split over the 8 towers): the same
    # command on each, --task 1 on host2, which needs neither --data nor --logdir (training/cluster.py)
    python train.py --data tiny-imagenet-200 --depth 34 --aug gr --batch 256 --gpus 4 \\
        --logdir train_log/r34-gr-b256 --cluster host1:2222,host2:2222 --task 0

    # the multi-GPU trainer's code path on a machine without GPUs (a test aid, slower)
    python train.py --data demo_data --aug gr --batch 32 --width-mult 0.125 --towers 2 --logdir /tmp/t2

Re-running the same command continues from the newest checkpoint that restores
(damaged ones are skipped with a warning); a logdir that holds a run with other
settings is refused. The logdir receives tensorpack's checkpoints, log.log,
stats.json and TensorBoard events, plus settings.json (every resolved setting,
the git commit) and, after a run that ended well, done.json (runrecord/).

The flags are parsed without TensorFlow (runrecord/command.py), so ``--help`` and a bad flag
answer at once; the training itself is training/trainer.py.
"""

import sys

from errors import run_main
from runrecord.command import parse_args


def main(argv=None):
    args = parse_args(argv)  # no TensorFlow yet: --help and a bad flag end here
    import tf_env  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS)
    from evaluation.watch import LocalizationInferencer
    from training import trainer

    return trainer.main(args, localization=LocalizationInferencer)


if __name__ == "__main__":
    sys.exit(run_main(main))
