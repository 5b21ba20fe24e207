"""This machine's record for settings.json (:mod:`runrecord.machine`), with the library builds
that TensorFlow and the installed packages report."""
import importlib.metadata

import tf_env

import cv2
import numpy as np
import tensorflow as tf
import tensorpack

from runrecord.machine import machine_record

# pip packages of TensorFlow's CUDA extra whose versions decide GPU kernels (absent on a CPU-only install)
NVIDIA_PACKAGES = ("nvidia-cudnn-cu12", "nvidia-cublas-cu12", "nvidia-cuda-runtime-cu12")


def libraries():
    """``{name: version}``: TensorFlow, tensorpack, NumPy, OpenCV, oneDNN on/off, TensorFlow's CUDA
    and cuDNN build versions, and the installed NVIDIA packages.  oneDNN is linked into TensorFlow's
    wheel and TensorFlow reports no oneDNN version: the TensorFlow version fixes it."""
    info = tf.sysconfig.get_build_info()
    libs = {"tensorflow": tf.__version__, "tensorpack": tensorpack.__version__, "numpy": np.__version__,
            "opencv": cv2.__version__, "onednn": "on" if tf_env.onednn_enabled() else "off",
            "cuda_build": info.get("cuda_version"), "cudnn_build": info.get("cudnn_version")}
    for name in NVIDIA_PACKAGES:
        try:
            libs[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return {k: v for k, v in libs.items() if v is not None}


def this_machine(from_step=0):
    """:func:`runrecord.machine.machine_record` of this process's machine."""
    return machine_record(libraries(), from_step)
