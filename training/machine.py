"""This machine as TensorFlow sees it: the GPUs it can use, oneDNN on or off, the library builds.

The facts that need no TensorFlow (cores, RAM, bf16, the NVIDIA device node, ``nvidia-smi``,
``/proc/cpuinfo``) and the machine record are :mod:`runrecord.machine`'s; :func:`facts` adds what
only TensorFlow can tell, for ``runrecord.command.resolve``.
"""

import importlib.metadata
import os
import sys

import tf_env

import cv2
import numpy as np
import tensorflow as tf
import tensorpack

from runrecord.machine import Machine, has_bf16, machine_record, nvidia_device

# pip packages of TensorFlow's CUDA extra whose versions decide GPU kernels (absent on a CPU-only install)
NVIDIA_PACKAGES = ("nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12")


def visible_gpus():
    """Number of GPUs TensorFlow can see, without creating a CUDA context.

    On Linux without an NVIDIA driver (no /dev/nvidiactl) the answer is 0 without
    asking TensorFlow, whose CUDA probe would print a "failed call to cuInit" error line.

    Not ``tensorpack.utils.gpu.get_num_gpu`` (0.11): it counts the entries of
    ``CUDA_VISIBLE_DEVICES`` as GPUs (1 for the usual ``-1`` that hides them all), raises a
    TypeError when that variable is set and NVML is absent (a CPU machine), and on a CPU
    machine falls back to the same TensorFlow probe, printing the cuInit error.
    """
    if sys.platform.startswith("linux") and not os.path.exists("/dev/nvidiactl"):
        return 0
    return len(tf.config.list_physical_devices("GPU"))


def libraries():
    """``{name: version}``: TensorFlow, tensorpack, NumPy, OpenCV, oneDNN on/off, TensorFlow's CUDA
    and cuDNN build versions, and the installed NVIDIA packages.  oneDNN is linked into TensorFlow's
    wheel and TensorFlow reports no oneDNN version: the TensorFlow version fixes it."""
    info = tf.sysconfig.get_build_info()
    libs = {
        "tensorflow": tf.__version__,
        "tensorpack": tensorpack.__version__,
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "onednn": "on" if tf_env.onednn_enabled() else "off",
        "cuda_build": info.get("cuda_version"),
        "cudnn_build": info.get("cudnn_version"),
    }
    for name in NVIDIA_PACKAGES:
        try:
            libs[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {k: v for k, v in libs.items() if v is not None}


def facts():
    """This machine's :class:`runrecord.machine.Machine`, with its record for settings.json (whose CPU
    flags also give bf16: /proc/cpuinfo is read once)."""
    record = machine_record(libraries())
    return Machine(
        gpus=visible_gpus(),
        nvidia=nvidia_device(),
        bf16=has_bf16(record["cpu"]),
        onednn=tf_env.onednn_enabled(),
        record=record,
    )
