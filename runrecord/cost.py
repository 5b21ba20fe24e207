"""What training costs, without TensorFlow: FLOPs per image, measured rates, hours (docs/tables.md, "Cost").

``results/rates.json`` (under the repository root) holds the training rates this project measured,
one entry per (device, depth, batch, precision)::

    record_rate("NVIDIA H100 80GB HBM3", 18, 256, "tf32", 5210.0, "make gpu-check")   # gpu-check, a benchmark
    rate_for(device, depth, batch, precision, flops)    # the measured rate, else an estimate from the peak
    cost_lines(device)                                  # Tables 1 and 2 per seed at the paper's schedule

A device is the name ``nvidia-smi`` gives for a GPU ("NVIDIA H100 80GB HBM3"), or
``"CPU <model name>, <N> cores"`` (:func:`device_name`).  Precision is one of :data:`PRECISIONS`.
FLOPs are counted, not measured (:func:`forward_macs`); an hour figure is either measured
(a recorded rate: where and when) or estimated (FLOPs over the device's peak: a lower bound).
"""

import os
import re
import time
from dataclasses import dataclass

import fileio
from models.plan import BASE_WIDTHS, DEPTHS, FINAL_STRIDES, STEM_KERNEL
from procs import available_cores
from runrecord.machine import cpu_record, nvidia_smi, read_cpuinfo
from runrecord.settings import TrainSettings, field_default
from runrecord.state import read_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATES = os.path.join("results", "rates.json")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
PAPER_EPOCHS = field_default(TrainSettings, "epochs")  # paper sec. 3: 1500 epochs
# Tiny ImageNet: 200 classes x 500 training images (README "Tiny ImageNet")
PAPER_TRAIN_IMAGES = 200 * 500
PAPER_IMAGE_SHAPE = (64, 64)  # Tiny ImageNet images are 64x64
PAPER_CLASSES = 200
# models.plan is the layer plan of models.resnet.backbone, without TensorFlow. tests/test_cost.py checks
# forward_macs against the Conv2D/MatMul ops of the built graph (benchmarks.bench_train.forward_flops).
# Training = forward + backward, the backward about twice the forward (a gradient for the inputs
# and one for the weights, each as many multiply-adds as the forward): OpenAI, "AI and Compute"
# (2018), appendix; Kaplan et al. 2020, "Scaling Laws for Neural Language Models", sec. 2.1.
TRAIN_PER_FORWARD = 3
# Dense (no sparsity) peak FLOP/s per precision, from NVIDIA's datasheets (H100 Tensor Core GPU,
# H200 Tensor Core GPU, A100 Tensor Core GPU, V100); first match on the nvidia-smi name wins.
# Pre-Ampere GPUs have no TF32: TensorFlow runs float32 there.
GPU_PEAKS = (
    ("H100 PCIe", {"fp32": 51e12, "tf32": 378e12, "fp16": 756e12, "bf16": 756e12}),
    ("H100", {"fp32": 67e12, "tf32": 494.7e12, "fp16": 989.4e12, "bf16": 989.4e12}),  # SXM5
    ("H200", {"fp32": 67e12, "tf32": 494.7e12, "fp16": 989.4e12, "bf16": 989.4e12}),  # SXM
    ("A100", {"fp32": 19.5e12, "tf32": 156e12, "fp16": 312e12, "bf16": 312e12}),
    ("V100", {"fp32": 15.7e12, "tf32": 15.7e12, "fp16": 125e12}),  # SXM2
)
# A CPU's estimated peak: cores x clock x 32 float32 FLOP a cycle (two 256-bit FMA units, or one
# 512-bit: 2 x 8 lanes x 2 FLOP; x86 since Haswell / Zen 2). An estimate, never a measurement.
CPU_FLOP_PER_CYCLE = 32


# ---- the default --workers on a GPU host: enough for the GPUs, within the host's cores

# Images a GPU consumes a second, assumed from issue 25's estimate of the 28 runs in fp16 on an H100
# (150 GPU-hours for 28 x 1.5e8 images). Not measured; make gpu-check measures it.
FEED_PER_GPU = 8000
# Images a data worker makes per CPU-second at 64x64, the slowest stream of each kind, rounded down from
# the figures measured on the 2-core development machine (docs/measurements.md, "Speed"): the paper's
# augmentations (GR then HnS in either order) and with --recipe sn-resnet's colour jitter.
WORKER_RATE = {"plain": 6000, "jitter": 1300}
# ours: left to the training process (its step dispatch and the one batch consumer)
TRAINER_CORES = 2


def default_workers(gpus, cores, jitter=False):
    """train.py's default ``--workers``: 0 without GPUs (the CPU trains), else enough workers to feed
    ``gpus`` GPUs at :data:`FEED_PER_GPU` with the recipe's per-worker rate, at most the cores less
    :data:`TRAINER_CORES` (at least 1)."""
    if not gpus:
        return 0
    need = -(-gpus * FEED_PER_GPU // WORKER_RATE["jitter" if jitter else "plain"])
    return max(1, min(need, cores - TRAINER_CORES))


def rates_path(repo=REPO):
    return os.path.join(repo, RATES)


def read_rates(path=None):
    """The entries of rates.json (a list of dicts); [] when there is none. The one reader."""
    path = path or rates_path()
    if not os.path.exists(path):
        return []
    doc = read_json(path)
    return [e for e in doc.get("rates", []) if isinstance(e, dict)] if isinstance(doc, dict) else []


def record_rate(device, depth, batch, precision, img_per_s, command, *, path=None, host=None):
    """Store a measured training rate (images/s) in rates.json, replacing the entry with the same
    (device, depth, batch, precision); the file is written atomically (fileio)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if not (img_per_s > 0):
        raise ValueError(f"img_per_s must be positive, got {img_per_s!r}")
    path = path or rates_path()
    key = (device, int(depth), int(batch), precision)
    kept = [
        e
        for e in read_rates(path)
        if (e.get("device"), e.get("depth"), e.get("batch"), e.get("precision")) != key
    ]
    kept.append(
        {
            "device": device,
            "depth": int(depth),
            "batch": int(batch),
            "precision": precision,
            "img_per_s": float(img_per_s),
            "command": command,
            "host": host or os.uname().nodename,
            "measured": time.strftime("%Y-%m-%d %H:%M"),
        }
    )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fileio.write_json(
        path,
        {
            "rates": sorted(
                kept, key=lambda e: (e["device"], e["depth"], e["batch"], e["precision"])
            )
        },
    )


def forward_macs(
    depth, width_mult=1.0, final_stride=4, image_shape=PAPER_IMAGE_SHAPE, num_classes=PAPER_CLASSES
):
    """Multiply-adds of one image's forward pass: every convolution (SAME padding) and the FC layer;
    BatchNorm, ReLU, the sums and the pooling (under 1% here) are not counted."""
    widths = [
        max(1, int(round(w * width_mult))) for w in BASE_WIDTHS
    ]  # models.resnet.scaled_widths
    h, w = image_shape
    macs = h * w * STEM_KERNEL**2 * 3 * widths[0]
    c_in = widths[0]
    for blocks, c, s in zip(DEPTHS[depth], widths, FINAL_STRIDES[final_stride]):
        h, w = -(-h // s), -(-w // s)
        macs += h * w * 9 * (c_in * c + c * c) + (h * w * c_in * c if c_in != c or s != 1 else 0)
        macs += (blocks - 1) * 2 * h * w * 9 * c * c
        c_in = c
    return macs + c_in * num_classes


def train_flops(depth, **model):
    """FLOPs of one training image: :data:`TRAIN_PER_FORWARD` x 2 x :func:`forward_macs`."""
    return TRAIN_PER_FORWARD * 2 * forward_macs(depth, **model)


def device_name(gpus=(), cores=None, smi="nvidia-smi"):
    """The device a run in a slot of ``gpus`` (ids) trains on: the first GPU's name, else the CPU."""
    if gpus:
        names = {g["index"]: g["name"] for g in nvidia_smi(smi)}
        return names.get(str(gpus[0]), f"GPU {gpus[0]} (unknown model)")
    return f"CPU {cpu_record().get('model', 'unknown model')}, {cores or available_cores()} cores"


def peak(device):
    """``{precision: FLOP/s}`` of ``device`` at its peak, {} when unknown."""
    if device.startswith("CPU "):
        cores = re.search(r", (\d+) cores$", device)
        mhz = _cpu_mhz()
        return (
            {"fp32": int(cores.group(1)) * mhz * 1e6 * CPU_FLOP_PER_CYCLE} if cores and mhz else {}
        )
    return next((dict(p) for name, p in GPU_PEAKS if name in device), {})


def _cpu_mhz(cpuinfo="/proc/cpuinfo"):
    try:
        return max(float(p["cpu MHz"]) for p in read_cpuinfo(cpuinfo) if "cpu MHz" in p)
    except ValueError:  # none listed, or not a number
        return None


def precision(amp, gpus, device="", tf32=False):
    """The arithmetic of a run: ``amp`` ("fp16"/"bf16"/False, train.py's), else float32, as TF32 where
    train.py's ``--tf32`` asks for it on a GPU that has it (Ampere and newer), else "fp32"."""
    if amp:
        return amp
    return (
        "tf32"
        if tf32 and gpus and peak(device).get("tf32", 0) > peak(device).get("fp32", 0)
        else "fp32"
    )


@dataclass
class Rate:
    img_per_s: float  # None: neither measured nor estimable
    how: str  # "measured on <device> <date> (<command>)" or "estimated: ..."
    measured: bool


def rate_for(device, depth, batch, prec, flops_per_image, rates=None, paper_model=True):
    """The training rate of a run: the recorded one for (device, depth, batch, precision) when the run
    has the paper's network shape (``paper_model``), else an estimate at ``device``'s peak."""
    rates = read_rates() if rates is None else rates
    hit = (
        next(
            (
                e
                for e in rates
                if (e.get("device"), e.get("depth"), e.get("batch"), e.get("precision"))
                == (device, depth, batch, prec)
            ),
            None,
        )
        if paper_model
        else None
    )
    if hit:
        return Rate(
            hit["img_per_s"],
            f"measured on {hit.get('host', '?')} {hit.get('measured', '')} "
            f"({hit.get('command', '?')})",
            True,
        )
    top = peak(device).get(prec)
    if not top:
        return Rate(None, f"no rate measured and no known peak for {prec} on {device}", False)
    bound = (
        "an assumed CPU peak"
        if device.startswith("CPU ")
        else "the datasheet peak, a lower bound on the time"
    )
    return Rate(
        top / flops_per_image,
        f"estimated: FLOPs at the {prec} peak of {device} ({top / 1e12:.3g} TFLOP/s, {bound})",
        False,
    )


def fmt_hours(hours, unit="h"):
    """``"25 min"``, ``"14.0 h"``, ``"371 GPU-hours (15 days)"``; "unknown" for None."""
    if hours is None:
        return "unknown"
    if hours < 1:
        return f"{hours * 60:.0f} min" if hours >= 1 / 60 else "under 1 min"
    return f"{hours:.1f} {unit}" if hours < 48 else f"{hours:,.0f} {unit} ({hours / 24:,.1f} days)"


def paper_runs(table):
    """``[(depth, batch)]`` of one seed of paper Table ``table`` (reproduce.paper's layouts); ``"both"``: the
    distinct runs of the two (Table 2 reuses Table 1's batch-256 CAM, HnS and GR runs)."""
    one = [(d, 256) for d in (34, 18) for _ in range(5)]  # paper Table 1: 5 methods at batch 256
    # Table 2: CAM/HnS/GR x 3
    two = [(d, b) for d in (34, 18) for _ in range(3) for b in (32, 128, 256)]
    return {1: one, 2: two, "both": one + [r for r in two if r[1] != 256]}[table]


def cost_lines(device, precisions=None, rates=None):
    """Per seed, the device-hours of paper Tables 1 and 2 at the paper's schedule (1500 epochs of
    100,000 images), per precision; each line says whether its rates were measured or estimated."""
    unit = "CPU-hours" if device.startswith("CPU ") else "GPU-hours"
    # train.py's precisions: float32 (TF32 where the GPU has it), --amp = fp16 on GPUs, bf16 on CPUs
    precisions = (
        precisions or [p for p in ("fp32", "tf32", "fp16") if p in peak(device)] or ["fp32"]
    )
    images = PAPER_EPOCHS * PAPER_TRAIN_IMAGES
    lines = []
    for table in (1, 2, "both"):
        runs = paper_runs(table)
        for prec in precisions:
            total, measured, estimated = 0.0, [], 0
            for depth, batch in runs:
                r = rate_for(device, depth, batch, prec, train_flops(depth), rates)
                total = (
                    None
                    if total is None or r.img_per_s is None
                    else total + images / r.img_per_s / 3600
                )
                if r.measured:
                    measured.append(r.how)
                elif r.img_per_s is not None:
                    estimated += 1
            label = "; ".join(
                (
                    [
                        f"{len(measured)} run(s) at rates {sorted(set(measured))[0]}"
                        + (" and others" if len(set(measured)) > 1 else "")
                    ]
                    if measured
                    else []
                )
                + (
                    [
                        f"{estimated} run(s) estimated: FLOPs at the peak"
                        + ("" if device.startswith("CPU ") else ", a lower bound")
                    ]
                    if estimated
                    else []
                )
                + (
                    [
                        f"no rate measured and no known peak for {prec} on this device: record one with "
                        "make gpu-check"
                    ]
                    if total is None
                    else []
                )
            )
            flops = sum(images * train_flops(d) for d, _ in runs)
            lines.append(
                f"{'Tables 1 and 2' if table == 'both' else f'Table {table}'}, one seed "
                f"({len(runs)} runs, {flops:.3g} FLOP), {prec} on {device}: "
                f"{fmt_hours(total, unit)} ({label})"
            )
    return lines


# ---- a run's measured epoch times: <logdir>/progress.json, written by training.watch.ProgressRecord

PROGRESS = "progress.json"  # {"epochs", "steps_per_epoch", "batch", "start_epoch", "started", "ends": [[e, t]]}
RECENT_EPOCHS = 10  # ours: the epoch time is the median of this many newest epoch ends


def read_progress(logdir):
    """The progress.json of a run being trained (a dict), or None when absent or unreadable (a
    reader racing the atomic writer still sees a whole file, fileio)."""
    try:
        doc = read_json(os.path.join(logdir, PROGRESS))
    except Exception:  # absent, unreadable, half-copied: no progress to show
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("ends"), list) else None


def epoch_seconds(progress):
    """Measured seconds of one epoch (training, validation and checkpoint) in this process: the median
    over the newest epoch ends (from the loop's start while only one has ended); None before that."""
    ends = progress["ends"]
    if len(ends) == 1:
        return (ends[0][1] - progress["started"]) / max(1, ends[0][0] - progress["start_epoch"] + 1)
    gaps = sorted(
        [(tb - ta) / max(1, eb - ea) for (ea, ta), (eb, tb) in zip(ends, ends[1:])][-RECENT_EPOCHS:]
    )
    return gaps[len(gaps) // 2] if gaps else None


def run_eta(progress, now=None):
    """``(epoch done, epochs, seconds left)`` of a run from its progress.json; seconds None before the
    first epoch ends."""
    now = time.time() if now is None else now
    ends = progress["ends"]
    done = ends[-1][0] if ends else progress["start_epoch"] - 1
    per = epoch_seconds(progress)
    if per is None:
        return done, progress["epochs"], None
    since = now - (ends[-1][1] if ends else progress["started"])
    return done, progress["epochs"], max(0.0, (progress["epochs"] - done) * per - since)
