"""A table invocation's cost before it starts, and its progress while it runs (docs/tables.md, "Cost and
progress"): images, FLOPs and device-hours per run (:mod:`runrecord.cost`: a measured rate or an estimate
from the device's peak), and k/N runs done, each running run's epoch and ETA, the invocation's ETA, from
the epoch times the runs measure (``<logdir>/progress.json``)."""

import statistics
import time
from dataclasses import dataclass, field
from typing import Optional

import runrecord
from runrecord import cost
from runrecord.cost import fmt_hours
from reproduce.runs import TO_TRAIN, Run


@dataclass
class Work:
    """What is left of one run to train: ``images`` still to train, their ``flops``, the ``rate`` it is
    costed at and ``seconds`` of its device(s) at that rate (None: unknown)."""

    run: Run
    images: int
    flops: float
    precision: str
    rate: cost.Rate
    seconds: Optional[float]
    full: bool  # the paper's schedule (1500 epochs)


def paper_shaped(settings):
    """True when the run trains the network the rates are measured on: width 1, 64x64, final stride 4."""
    m = settings.model
    return (
        m.width_mult == 1
        and list(m.image_shape) == list(cost.PAPER_IMAGE_SHAPE)
        and m.final_stride == 4
    )


def flops_per_image(settings):
    m = settings.model
    return cost.train_flops(
        m.depth,
        width_mult=m.width_mult,
        final_stride=m.final_stride,
        image_shape=tuple(m.image_shape),
        num_classes=m.num_classes,
    )


def work_of(run, state, device, gpus_per_run, rates=None):
    """The :class:`Work` left in ``run`` (None: nothing to train, or its settings are unknown)."""
    s = run.expected
    if s is None or state not in TO_TRAIN:
        return None
    done = max(runrecord.checkpoint_files(run.logdir), default=0)  # the step a resume starts from
    images = max(0, s.train.final_step - done) * s.train.batch
    per = flops_per_image(s)
    prec = cost.precision(s.train.amp, gpus_per_run, device, s.train.tf32)
    rate = cost.rate_for(
        device, s.model.depth, s.train.batch, prec, per, rates, paper_model=paper_shaped(s)
    )
    return Work(
        run,
        images,
        images * per,
        prec,
        rate,
        images / rate.img_per_s if rate.img_per_s else None,
        s.train.epochs >= cost.PAPER_EPOCHS,
    )


def finish_time(durations, slots, busy=()):
    """Seconds until ``durations`` (in order) are done on ``slots`` slots, each run taking the first slot
    that comes free; ``busy``: seconds left on slots already at work."""
    free = sorted(list(busy) + [0.0] * max(0, slots - len(busy)))[: max(slots, len(busy))]
    for d in durations:
        free[free.index(min(free))] += d
    return max(free, default=0.0)


def cost_lines(works, device, slots, gpus_per_run, runs_per_gpu=1):
    """What the invocation will cost: images, FLOPs, device-hours, and the wall time on ``slots``."""
    if not works:
        return ["Cost: nothing to train"]
    unit = "GPU-hours" if gpus_per_run else "CPU-hours"
    known = [w.seconds for w in works if w.seconds is not None]
    hows = sorted(
        {("measured " if w.rate.measured else "") + w.rate.how.split(" (")[0] for w in works}
    )
    total = sum(known) / 3600 if len(known) == len(works) else None
    wall = (
        finish_time([s / max(1, gpus_per_run) for s in known], slots) / 3600
        if total is not None
        else None
    )
    packed = (
        f"; with {runs_per_gpu} runs per GPU the estimate counts no packing gain (docs/tables.md)"
        if runs_per_gpu > 1
        else ""
    )
    return [
        f"Cost: {len(works)} run(s) to train, {sum(w.images for w in works):.3g} images, "
        f"{sum(w.flops for w in works):.3g} FLOP (training; evaluation adds one forward pass of the val split a run)",
        f"  {fmt_hours(total, unit)} on {device} ({', '.join(sorted({w.precision for w in works}))}); "
        f"ETA about {fmt_hours(wall)} of wall time on {slots} slot(s){packed}",
        "  rates: " + "; ".join(hows),
    ]


@dataclass
class Watch:
    """The table console's progress: call :meth:`started` / :meth:`phase` / :meth:`finished` from the
    executor, :meth:`line` for one line of k/N, running runs' epochs and ETAs, and the invocation's ETA."""

    runs: list  # every run of the invocation, in order
    slots: int
    works: dict = field(default_factory=dict)  # {name: Work}: the up-front estimate
    running: dict = field(default_factory=dict)  # {name: (run, phase, since)}
    done: dict = field(default_factory=dict)  # {name: Outcome}
    eval_seconds: list = field(default_factory=list)

    def started(self, run, phase, now=None):
        self.running[run.name] = (run, phase, time.time() if now is None else now)

    def finished(self, run, outcome):
        self.running.pop(run.name, None)
        self.done[run.name] = outcome
        if outcome.status == "ok" and outcome.eval_seconds:
            self.eval_seconds.append(outcome.eval_seconds)

    def _measured(self, run, since, now):
        """``(epoch, epochs, seconds left, seconds per image per FLOP)`` of a run training since ``since``."""
        p = cost.read_progress(run.logdir)
        if not p or p.get("started", 0) < since - 1 or run.expected is None:
            return None
        epoch, epochs, left = cost.run_eta(p, now)
        per = cost.epoch_seconds(p)
        unit = (
            per / (p["steps_per_epoch"] * p["batch"] * flops_per_image(run.expected))
            if per
            else None
        )
        return epoch, epochs, left, unit

    def line(self, now=None):
        now = time.time() if now is None else now
        failed = sum(o.status == "failed" for o in self.done.values())
        parts, busy, units, guessed = [], [], [], False
        evals = statistics.median(self.eval_seconds) if self.eval_seconds else 0.0
        for run, phase, since in self.running.values():
            m = self._measured(run, since, now) if phase == "train" else None
            w = self.works.get(run.name)
            if m and m[2] is not None:
                epoch, epochs, left, unit = m
                units.append(unit)
                parts.append(f"{run.name} epoch {epoch}/{epochs}, ETA {fmt_hours(left / 3600)}")
                busy.append(left + evals)
                continue
            if phase == "evaluate":
                parts.append(f"{run.name} evaluating")
            else:
                parts.append(
                    f"{run.name} epoch {m[0]}/{m[1]}, no epoch timed yet"
                    if m
                    else f"{run.name} starting"
                )
            left = (
                max(0.0, w.seconds - (now - since))
                if phase == "train" and w and w.seconds is not None
                else 0.0
            )
            guessed = guessed or left > 0
            busy.append(left + (evals if phase == "train" else 0.0))
        queued = [r for r in self.runs if r.name not in self.done and r.name not in self.running]
        rest = []
        for r in queued:
            w = self.works.get(r.name)
            if w is not None and units:
                rest.append(w.flops * statistics.median(units) + evals)
            elif w is not None and w.seconds is not None:
                rest.append(w.seconds + evals)
                guessed = True
        eta = finish_time(rest, self.slots, busy)
        how = "estimated where no epoch is timed yet" if guessed else "from measured epoch times"
        head = f"progress: {len(self.done)}/{len(self.runs)} runs done" + (
            f" ({failed} failed)" if failed else ""
        )
        tail = (
            f"; all: ETA {fmt_hours(eta / 3600)} ({time.strftime('%H:%M', time.localtime(now + eta))}, {how})"
            if self.running or queued
            else ""
        )
        return head + ("; " + "; ".join(parts) if parts else "") + tail
