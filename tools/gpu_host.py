"""What ``make gpu-check`` says first about a GPU host: the NVIDIA driver, each GPU's compute
capability, TensorFlow's CUDA build, and the reasons TensorFlow cannot use the GPUs, if it cannot.

    python -m tools.gpu_host        # the lines gpu-check starts with; exits 1 on a problem

TensorFlow 2.21's wheel holds machine code (SASS) for ``sm_60, sm_70, sm_80, sm_89`` and PTX for
``compute_90`` (``tf.sysconfig.get_build_info()["cuda_compute_capabilities"]``), built with CUDA
12.5.1. A GPU of another major version (an H100/H200 is sm_90) runs TensorFlow's kernels only after
the driver JIT-compiles that PTX (ISA 8.5, CUDA 12.5), which needs an R555 driver or newer
(docs/sources.md, "GPU hosts: driver and TF32").
"""

import tf_env  # noqa: F401  (first: sets TF_USE_LEGACY_KERAS)

import importlib.util
import sys

import tensorflow as tf

from runrecord.machine import nvidia_device, nvidia_smi
from training import machine

# CUDA 12.5 release notes: PTX ISA 8.5 needs driver >= 555 (docs/sources.md)
PTX_MIN_DRIVER = (555, 0)


def version(text):
    """``"550.54.15"`` -> ``(550, 54)``."""
    return tuple(int(p) for p in (text.split(".") + ["0"])[:2] if p.isdigit())


def kernels(build):
    """``(sass, ptx)``: the compute capabilities (major, minor) of the wheel's machine code and of its PTX."""
    caps = build.get("cuda_compute_capabilities") or []

    def parse(c):  # "sm_89" -> (8, 9)
        return int(c.split("_")[1][:-1]), int(c.split("_")[1][-1])

    return (
        [parse(c) for c in caps if c.startswith("sm_")],
        [parse(c) for c in caps if c.startswith("compute_")],
    )


def driver_problem(driver, capability, build):
    """Why TensorFlow's kernels cannot run on a GPU of ``capability`` with ``driver`` (None: they can).
    Machine code for ``(major, m)`` runs on ``(major, n)``, n >= m; otherwise the driver compiles PTX."""
    sass, ptx = kernels(build)
    if any(s[0] == capability[0] and s[1] <= capability[1] for s in sass):
        return None
    sm = f"sm_{capability[0]}{capability[1]}"
    if not any(p <= capability for p in ptx):
        built = ", ".join(build["cuda_compute_capabilities"])
        return f"TensorFlow {tf.__version__} has no kernel for {sm} (built for {built})"
    if version(driver) < PTX_MIN_DRIVER:
        return (
            f"driver {driver} is older than R{PTX_MIN_DRIVER[0]}: it cannot JIT-compile TensorFlow "
            f"{tf.__version__}'s PTX for {sm} (the wheel has machine code up to sm_89 only); "
            f"install an R{PTX_MIN_DRIVER[0]} driver or newer"
        )
    return None


def no_gpu_reason(build, smi):
    """Why TensorFlow sees no GPU where an NVIDIA device exists, as far as can be told from outside."""
    if not build.get("is_cuda_build"):
        return "this TensorFlow is not a CUDA build"
    if (
        importlib.util.find_spec("nvidia") is None
        or importlib.util.find_spec("nvidia.cudnn") is None
    ):
        return (
            "TensorFlow's CUDA libraries (the nvidia-* wheels of tensorflow[and-cuda]) are not installed: "
            "run `make gpu-venv`"
        )
    for gpu in smi:
        problem = driver_problem(gpu["driver"], gpu["capability"], build)
        if problem:
            return problem
    return "unknown: run `python -c 'import tensorflow'` with TF_CPP_MIN_LOG_LEVEL=0 and read its CUDA errors"


def report(smi=None, build=None, visible=None):
    """``(lines, problems)``: what to print about this host, and each reason it cannot train on its GPUs."""
    smi = nvidia_smi() if smi is None else smi
    build = tf.sysconfig.get_build_info() if build is None else build
    visible = machine.visible_gpus() if visible is None else visible
    caps = " ".join(build.get("cuda_compute_capabilities") or ["none"])
    lines = [
        f"TensorFlow {tf.__version__}: CUDA {build.get('cuda_version', 'none')}, cuDNN "
        f"{build.get('cudnn_version', 'none')}, kernels for {caps}"
    ]
    lines += [
        f"GPU {i}: {g['name']}, compute capability {'.'.join(map(str, g['capability']))}, driver {g['driver']}"
        for i, g in enumerate(smi)
    ]
    problems = [p for p in (driver_problem(g["driver"], g["capability"], build) for g in smi) if p]
    evidence = nvidia_device()
    if evidence and not visible:
        problems.insert(
            0,
            f"an NVIDIA device is present ({evidence}) but TensorFlow sees no GPU: "
            f"{no_gpu_reason(build, smi)}",
        )
    lines.append(f"TensorFlow sees {visible} GPU(s)")
    return lines, sorted(set(problems), key=problems.index)


def main():
    lines, problems = report()
    print("\n".join(lines + [f"FAIL  {p}" for p in problems]))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
