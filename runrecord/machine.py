"""This machine's facts that need no TensorFlow, and the machine record of settings.json.

The facts (:class:`Machine`) are what train.py's flags resolve against (``runrecord.command.make_env``):
GPUs, the NVIDIA device node, cores, RAM, native bf16.  Each is read here once: ``/proc/cpuinfo`` by
:func:`read_cpuinfo`, ``nvidia-smi`` by :func:`nvidia_smi`.  The GPUs TensorFlow sees and whether its
oneDNN kernels are on need TensorFlow: ``training.machine.facts`` adds them.

Training is bit-identical on one machine, not across machines (docs/reproducibility.md): oneDNN
and Eigen pick kernels and blocking by CPU model and cache sizes, cuDNN by GPU and driver, and a
different rounding order is enough for training to take another trajectory.  The record lets a
user tell why two runs of the same settings differ; it is never compared (a run resumed on another
machine is legitimate: :func:`add_segment` appends that machine with the step it resumed from).

Layout (``settings.json`` ``machine``, a list: the machine of the first segment, then one entry per
resume on another machine)::

    {"from_step": 0, "platform": "Linux-6.1-x86_64-with-glibc2.36", "python": "3.11.2",
     "cpu": {"model": "AMD EPYC 7B13", "vendor": "AuthenticAMD", "family": "25", "model_id": "1",
             "stepping": "0", "logical_cpus": 2, "flags": "fpu vme ... avx2 ..."},
     "gpus": [{"name": "NVIDIA H100 80GB HBM3", "driver": "550.54.15"}],   # [] without nvidia-smi
     "libraries": {"tensorflow": "2.21.0", "numpy": "2.1.3", "onednn": "on", "cuda_build": "12.5.1",
                   "cudnn_build": "9", "nvidia-cudnn-cu12": "9.3.0.75", ...}}

No TensorFlow here: the caller (training.machine) passes the libraries it has imported.
"""

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Optional

from procs import available_cores

# what makes two machines the same
SEGMENT_KEYS = ("platform", "python", "cpu", "gpus", "libraries")
CPUINFO_FIELDS = (
    ("model name", "model"),
    ("vendor_id", "vendor"),
    ("cpu family", "family"),
    ("model", "model_id"),
    ("stepping", "stepping"),
    ("flags", "flags"),
)


SMI_QUERY = ["--query-gpu=index,name,driver_version,compute_cap", "--format=csv,noheader"]


def read_cpuinfo(cpuinfo="/proc/cpuinfo"):
    """``[{field: value}, ...]``, one dict per processor of ``cpuinfo`` (Linux); [] where it cannot be read."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            blocks = f.read().split("\n\n")
    except OSError:
        return []
    return [
        dict(
            (k.strip(), v.strip())
            for k, _, v in (line.partition(":") for line in block.splitlines())
        )
        for block in blocks
        if block.strip()
    ]


def cpu_record(cpuinfo="/proc/cpuinfo"):
    """``{"model", "vendor", "family", "model_id", "stepping", "flags", "logical_cpus"}`` of the first
    processor in ``cpuinfo`` (they are alike); the model alone (``platform.processor()``) elsewhere."""
    first = (read_cpuinfo(cpuinfo) or [{}])[0]
    out = {field: first[name] for name, field in CPUINFO_FIELDS if name in first}
    if not first:
        out["model"] = platform.processor() or platform.machine()
    out["logical_cpus"] = os.cpu_count()
    return out


def has_bf16(cpu):
    """True when the CPU of ``cpu`` (a :func:`cpu_record`) has native bf16 arithmetic (AVX512_BF16 or
    AMX-BF16), which TF's oneDNN bf16 rewrite needs to be faster rather than slower
    (docs/measurements.md, "Speed")."""
    return bool(set(cpu.get("flags", "").split()) & {"avx512_bf16", "amx_bf16"})


def cpu_supports_bf16(cpuinfo="/proc/cpuinfo"):
    """:func:`has_bf16` of this machine's CPU."""
    return has_bf16(cpu_record(cpuinfo))


def nvidia_smi(smi="nvidia-smi", timeout=60):
    """``[{"index": "0", "name", "driver", "capability": (major, minor)}, ...]``, one per GPU that
    ``nvidia-smi`` lists (``--query-gpu``); [] without it, or if it fails."""
    try:
        out = subprocess.run([smi, *SMI_QUERY], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4 and "." in parts[3]:
            major, minor = parts[3].split(".")[:2]
            gpus.append(
                {
                    "index": parts[0],
                    "name": parts[1],
                    "driver": parts[2],
                    "capability": (int(major), int(minor)),
                }
            )
    return gpus


def gpu_record(smi="nvidia-smi"):
    """``[{"name", "driver"}]`` of every GPU :func:`nvidia_smi` lists; ``[]`` without it."""
    return [{"name": g["name"], "driver": g["driver"]} for g in nvidia_smi(smi)]


def nvidia_device():
    """Evidence of an NVIDIA device that ``CUDA_VISIBLE_DEVICES`` does not hide ("/dev/nvidiactl",
    "nvidia-smi on PATH"), or None.  Where TensorFlow then sees no GPU, its CUDA install is
    broken: train.py refuses to fall back to the CPU silently (``runrecord.command.make_env``)."""
    hidden = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hidden is not None and (not hidden.strip() or hidden.strip().startswith("-")):
        # hidden on purpose ("" or "-1": the table scripts' CPU runs, tools/gpu_check.py)
        return None
    if os.path.exists("/dev/nvidiactl"):
        return "/dev/nvidiactl"
    return "nvidia-smi on PATH" if shutil.which("nvidia-smi") else None


def physical_memory():
    """Bytes of RAM of this machine (None where unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


@dataclass(frozen=True)
class Machine:
    """The facts train.py's flags resolve against (``runrecord.command.make_env``).  The table scripts
    assume theirs (``Machine(gpus=...)``: the GPUs of one run); train.py's are ``training.machine.facts()``."""

    gpus: int  # GPUs TensorFlow sees
    # an NVIDIA device that CUDA_VISIBLE_DEVICES does not hide (:func:`nvidia_device`)
    nvidia: Optional[str] = None
    cores: int = field(default_factory=available_cores)  # --threads' default
    bf16: bool = field(default_factory=cpu_supports_bf16)  # --amp on the CPU needs it
    onednn: bool = True  # TensorFlow's oneDNN CPU kernels (tf_env.py)
    memory: Optional[int] = field(default_factory=physical_memory)  # bytes of RAM (None: unknown)
    # settings.json's machine record (:func:`machine_record`); None: not recorded
    record: Optional[dict] = None


def machine_record(libraries, from_step=0, cpuinfo="/proc/cpuinfo"):
    """The record of this machine (module docstring), for a training segment from ``from_step``."""
    return {
        "from_step": from_step,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_record(cpuinfo),
        "gpus": gpu_record(),
        "libraries": dict(libraries),
    }


def same_machine(a, b):
    """True when records ``a`` and ``b`` name the same CPU, GPUs, platform and library builds."""
    return all(a.get(k) == b.get(k) for k in SEGMENT_KEYS)


def add_segment(records, record):
    """``records`` (settings.json ``machine``) with ``record`` appended if it is another machine than
    the last one; a copy.  A resume on the same machine adds nothing."""
    records = list(records or [])
    return records if records and same_machine(records[-1], record) else records + [record]


def describe(record):
    """One line: ``AMD EPYC 7B13 (family 25 model 1, avx2), 2 CPUs; TF 2.21.0, oneDNN on`` (+ GPUs)."""
    cpu, libs = record.get("cpu") or {}, record.get("libraries") or {}
    flags = set(str(cpu.get("flags", "")).split())
    simd = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags][:1] or [
        "no avx2"
    ]
    text = (
        f"{cpu.get('model', 'unknown CPU')} (family {cpu.get('family', '?')} model {cpu.get('model_id', '?')}, "
        f"{simd[0]}), {cpu.get('logical_cpus', '?')} CPUs; TF {libs.get('tensorflow', '?')}, "
        f"NumPy {libs.get('numpy', '?')}, oneDNN {libs.get('onednn', '?')}"
    )
    gpus = record.get("gpus") or []
    if gpus:
        names = sorted({g["name"] for g in gpus})
        text += (
            f"; {len(gpus)} GPU(s) {', '.join(names)}, driver {gpus[0]['driver']}, "
            f"cuDNN {libs.get('cudnn_build', '?')}"
        )
    return text
