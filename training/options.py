"""train.py's checks that need TensorFlow's view of this machine, and the RunSettings with the code's version.

The flags, the environment they resolve to and the settings are :mod:`runrecord.command`'s
(no TensorFlow there, so the table scripts build the same record): :func:`validate` adds the
memory bound and this machine's facts (visible GPUs, cores, bf16, oneDNN), :func:`make_settings`
the git commit and the library versions.  Every bad flag is refused before any data is read or
any graph is built.
"""
import tf_env

import os
import subprocess

import tensorflow as tf
import tensorpack

from errors import UserError
from models import param_count
from runrecord import command
from runrecord.command import parse_args  # noqa: F401 (train.parse_args)
from training import devices, session
from training.machine import this_machine


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


def machine():
    """This machine's facts, as TensorFlow sees them."""
    return command.Machine(gpus=devices.visible_gpus(), nvidia=devices.nvidia_device(), cores=session.available_cores(),
                           bf16=session.cpu_supports_bf16(), onednn=tf_env.onednn_enabled())


def validate(args):
    """Check every flag before anything is built; return the resolved :class:`runrecord.command.Env`."""
    need, have = memory_estimate(args.depth, args.width_mult, 1), physical_memory()
    if have and need > have:
        raise UserError(f"--width-mult {args.width_mult:g}: the weights alone would take about {need / 2**30:.0f} GiB "
                        f"in training, more than the {have / 2**30:.0f} GiB of this machine")
    return command.make_env(args, machine())


def make_settings(args, env, fingerprint, num_classes, image_shape, mean_std=(None, None)):
    """:func:`runrecord.command.make_settings` with the git commit, the library versions and the machine."""
    settings = command.make_settings(args, env, fingerprint, num_classes, image_shape, mean_std, git_commit=git_commit(),
                                     versions={"tensorflow": tf.__version__, "tensorpack": tensorpack.__version__})
    settings.machine = [this_machine()]   # where it trains (runrecord.machine; never compared)
    return settings


def git_commit(repo_dir=None):
    """The commit of the code being run (``git rev-parse HEAD``), or None outside a git checkout."""
    repo_dir = repo_dir or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo_dir, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None
