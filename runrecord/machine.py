"""The machine record of settings.json: which CPU, GPUs and library builds computed a run.

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

No TensorFlow here: the caller (training.options) passes the libraries it has imported.
"""
import os
import platform
import shutil
import subprocess

SEGMENT_KEYS = ("platform", "python", "cpu", "gpus", "libraries")   # what makes two machines the same
CPUINFO_FIELDS = (("model name", "model"), ("vendor_id", "vendor"), ("cpu family", "family"),
                  ("model", "model_id"), ("stepping", "stepping"), ("flags", "flags"))


def cpu_record(cpuinfo="/proc/cpuinfo"):
    """``{"model", "vendor", "family", "model_id", "stepping", "flags", "logical_cpus"}`` of the first
    processor in ``cpuinfo`` (Linux); the model alone (``platform.processor()``) elsewhere."""
    out = {}
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip():
                    break   # the first processor only: they are alike
                key, _, value = line.partition(":")
                for name, field in CPUINFO_FIELDS:
                    if key.strip() == name:
                        out[field] = value.strip()
    except OSError:
        out["model"] = platform.processor() or platform.machine()
    out["logical_cpus"] = os.cpu_count()
    return out


def gpu_record(timeout=20):
    """``[{"name", "driver"}]`` of every GPU ``nvidia-smi`` lists; ``[]`` without it (or if it fails)."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        p = subprocess.run([exe, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return []
    rows = [line.rsplit(",", 1) for line in p.stdout.splitlines() if "," in line] if p.returncode == 0 else []
    return [{"name": name.strip(), "driver": driver.strip()} for name, driver in rows]


def machine_record(libraries, from_step=0, cpuinfo="/proc/cpuinfo"):
    """The record of this machine (module docstring), for a training segment from ``from_step``."""
    return {"from_step": from_step, "platform": platform.platform(), "python": platform.python_version(),
            "cpu": cpu_record(cpuinfo), "gpus": gpu_record(), "libraries": dict(libraries)}


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
    simd = [f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2") if f in flags][:1] or ["no avx2"]
    text = (f"{cpu.get('model', 'unknown CPU')} (family {cpu.get('family', '?')} model {cpu.get('model_id', '?')}, "
            f"{simd[0]}), {cpu.get('logical_cpus', '?')} CPUs; TF {libs.get('tensorflow', '?')}, "
            f"NumPy {libs.get('numpy', '?')}, oneDNN {libs.get('onednn', '?')}")
    gpus = record.get("gpus") or []
    if gpus:
        names = sorted({g["name"] for g in gpus})
        text += f"; {len(gpus)} GPU(s) {', '.join(names)}, driver {gpus[0]['driver']}, cuDNN {libs.get('cudnn_build', '?')}"
    return text
