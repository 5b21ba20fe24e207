"""The command line behind run_table1.sh / run_table2.sh (docs/tables.md): train, evaluate and print
paper Table 1 or 2; everything after ``--`` goes to train.py, and a refused invocation writes nothing.

Examples::

    ./run_table2.sh --data tiny-imagenet-200 --dry-run        # each run's state and commands, and the cost
    ./run_table1.sh --data tiny-imagenet-200 --seeds 3        # train, evaluate, print the table
    ./run_table2.sh --data DIR --only '*-b32' --runs-per-gpu 3   # 3 batch-32 runs per GPU (start MPS first)
    ./run_table1.sh --data DIR --logroot train_log/short -- --epochs 2 --lr-step-epochs 1   # a short version
    ./run_table1.sh --demo                                    # the demo (make demo)
"""

import argparse
import contextlib
import os
import signal
import sys

import argtypes
import fileio
import runrecord
from augment.registry import names as augment_methods, paper_methods
from dataflow.synthetic import GENERATOR_VERSION, MARKER, generate
from errors import UserError, quiet_closed_stdout, raise_interrupt, run_main
from runrecord import cost
from reproduce import executor as ex, progress, report, runs as rs
from reproduce.executor import Executor, show
from reproduce.runs import Expectation

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The demo (--demo): a table on a generated dataset on a 2-core CPU, in the demo's own settings, not the
# paper's (docs/tables.md, "Demo"; its numbers and times: docs/measurements.md).
# 200 validation images per class (1,200): evaluation is cheap, and the claims' intervals resample the
# images (docs/claims.md, "The demo's design").
DEMO_DATA = dict(classes=6, train_per_class=250, val_per_class=200, seed=0, height=48, width=48)
# Narrow net, short schedule, passed to train.py before the user's extras: 12 epochs, the rate / 10 after
# 10, so that every seed's classifier converges (docs/claims.md, "The demo's design").
DEMO_TRAIN_ARGS = "--width-mult 0.125 --final-stride 4 --epochs 12 --lr-step-epochs 10".split()
# The paper's batch sizes (paper Table 2: 32, 128, 256) scaled down by 8 for the 1500-image training set.
DEMO_BATCH = {32: 4, 128: 16, 256: 32}
DEMO_PARALLEL = 2  # runs at once on a CPU-only machine, 1 thread each: a width-0.125 run keeps ~1.3 of 2 cores busy
DEMO_SEEDS = 5  # runs per cell (train.py --seed 0-4): 3 left GR > CAM inconclusive on 2 of 5 seed sets (docs/claims.md)
# sound IoU arithmetic: a corner box hits nothing (docs/claims.md)
DEMO_EVAL_ARGS = ["--protocol", "paper"]
DEMO_DEPTHS = (18,)  # ResNet-18 only: ResNet-34 doubles the time
# ours, like --epochs' bound: 100 seeds plan 1800 runs of Table 2 (10**9 made a 23 GB plan)
MAX_SEEDS = 100
# ours: runs at once on a machine without GPUs; 10**12 was a MemoryError in the slot list
MAX_PARALLEL = 1024
INCOMPLETE = 3  # exit status of a table with a selected run missing (1: a run failed; 2: refused)


def demo_tag():
    """Names the demo dataset (generator version and settings), so that a change makes a new one and new runs."""
    return "synthetic-g{}-c{classes}-t{train_per_class}-v{val_per_class}-{height}x{width}".format(
        GENERATOR_VERSION, **DEMO_DATA
    )


def build_parser(prog="python -m reproduce"):
    p = argparse.ArgumentParser(
        prog=prog,
        allow_abbrev=False,
        usage="%(prog)s (--data DIR | --demo) [options] [-- train.py options]",
        description="Train and evaluate every run of paper Table 1 or 2 and print the table "
        "(ours, the paper's, and the difference).",
        epilog="Everything after -- goes to train.py (e.g. -- --epochs 2 --lr-step-epochs 1 for a "
        "short version; use another --logroot for it).",
    )
    p.add_argument(
        "--table",
        type=int,
        choices=(1, 2),
        required=True,
        action=argtypes.Once,
        help="paper table to reproduce (set by run_table1.sh / run_table2.sh: run the other script "
        "for the other table)",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument(
        "--data",
        metavar="DIR",
        type=argtypes.data_root,
        help="Tiny ImageNet folder (wnids.txt, train/, val/)",
    )
    src.add_argument(
        "--demo",
        action="store_true",
        help="synthetic data (generated in demo_data/), narrow net, short schedule; "
        "numbers do not compare with the paper's",
    )
    p.add_argument(
        "--logroot",
        metavar="DIR",
        type=argtypes.folder_path,  # writable: checked by plan()
        help="one folder per run under it (default train_log; demo: train_log/demo/<data tag>)",
    )
    p.add_argument(
        "--results",
        metavar="DIR",
        type=argtypes.folder_path,
        help="where tableN.json/.csv/.md and tableN-figure2.png go (default results, or results/demo)",
    )
    p.add_argument(
        "--seeds",
        metavar="N|LIST",
        help=f"N seeds per cell (0..N-1) or a comma list (0,4,7); train.py --seed; "
        f"default 1 (the paper's single run), demo {DEMO_SEEDS}; at most {MAX_SEEDS} seeds",
    )
    p.add_argument(
        "--metrics",
        choices=report.METRIC_CHOICES,
        default="paper",
        help="paper: the paper's three metrics at CAM threshold 0.2 (default); wsol2020: "
        "MaxBoxAccV2 and Top-1 Loc at a held-out threshold; all: both",
    )
    p.add_argument(
        "--holdout",
        type=argtypes.nonnegative_int,
        default=0,
        metavar="N",
        help="train.py --holdout N: the last N training images per class are held out; "
        "evaluate.py chooses the CAM threshold on them (--metrics wsol2020); "
        "runs are named r18-gr-b256-hN; default 0 (the paper's)",
    )
    p.add_argument(
        "--methods",
        metavar="LIST",
        help=f"Table 1's columns, a comma list of augment/'s methods (train.py --aug: "
        f"{', '.join(augment_methods())}); default the paper's {','.join(paper_methods())}",
    )
    p.add_argument(
        "--recipe",
        choices=sorted(runrecord.RECIPES),
        help="train.py --recipe: paper (train.py's default) or sn-resnet (docs/sources.md)",
    )
    p.add_argument(
        "--gpu-ids",
        metavar="LIST",
        type=argtypes.gpu_list,
        help="GPU ids to use, e.g. 0,1,2,3, or 'none' for CPU "
        "(default: CUDA_VISIBLE_DEVICES, else all of nvidia-smi -L)",
    )
    p.add_argument(
        "--gpus-per-run",
        type=argtypes.positive_int,
        default=1,
        metavar="N",
        help="GPUs given to each run (train.py --gpus N); default 1",
    )
    p.add_argument(
        "--runs-per-gpu",
        type=argtypes.int_in(1, MAX_PARALLEL),
        default=1,
        metavar="K",
        help="runs trained at once on each GPU (group), e.g. 2-4 batch-32 runs; start NVIDIA MPS "
        "first (docs/tables.md); default 1",
    )
    p.add_argument(
        "--parallel",
        type=argtypes.int_in(1, MAX_PARALLEL),
        metavar="N",
        help=f"runs at once on a machine without GPUs (default 1, at most {MAX_PARALLEL})",
    )
    p.add_argument(
        "--allow-cpu",
        action="store_true",
        help="start runs of the paper's schedule (1500 epochs) on a machine without GPUs, "
        "which is refused otherwise: it states the CPU-hours first",
    )
    p.add_argument(
        "--progress-every",
        type=argtypes.nonnegative_int,
        default=60,
        metavar="SECONDS",
        help="print k/N runs done, each running run's epoch and ETA and the whole ETA this often "
        "(and after each run); 0: after each run only; default 60",
    )
    p.add_argument(
        "--only",
        metavar="PATTERNS",
        help="comma-separated run names, prefixes or globs: r18-cam,r34-gr-b32,'r34-*'",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="print each run's state and commands; run nothing"
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: print and save the table from the eval.json files present",
    )
    return p


def parse_args(argv):
    """(args, train_args): our options, and those after ``--`` for train.py."""
    argv = list(sys.argv[1:] if argv is None else argv)
    after = []
    if "--" in argv:
        i = argv.index("--")
        argv, after = argv[:i], argv[i + 1 :]
    table = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--table"), None)
    p = build_parser(f"run_table{table}.sh" if table in ("1", "2") else "python -m reproduce")
    args, unknown = p.parse_known_args(argv)
    if unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)} (options for train.py go after --)")
    if not (args.data or args.demo or args.report_only):
        p.error("give --data DIR (Tiny ImageNet) or --demo")
    return args, after


def parse_seeds(text):
    """``--seeds``: ``"3"`` -> [0, 1, 2] (a count); ``"0,4,7"`` -> those seeds (a list: ``"5,"`` is seed 5);
    at most MAX_SEEDS of them, each one train.py takes (argtypes.seed)."""
    text = str(text).strip()
    try:
        if "," not in text:
            n = int(text)
            if not 1 <= n <= MAX_SEEDS:
                raise UserError(f"--seeds {text}: the number of seeds must be in [1, {MAX_SEEDS}]")
            return list(range(n))
        seeds = [argtypes.seed(s) for s in text.split(",") if s.strip()]
    except (ValueError, argparse.ArgumentTypeError) as e:
        raise UserError(
            f"--seeds {text!r}: expected a count (3) or a comma list of seeds (0,4,7) ({e})"
        ) from None
    if not seeds or len(set(seeds)) != len(seeds) or len(seeds) > MAX_SEEDS:
        raise UserError(f"--seeds {text!r}: seeds must be distinct, at most {MAX_SEEDS} of them")
    return seeds


def parse_methods(text, table):
    """``--methods``: Table 1's columns, distinct names of ``augment.registry.names()``; None: the paper's."""
    if text is None:
        return None
    if table != 1:
        raise UserError(f"--methods sets Table 1's columns; Table {table} is the paper's")
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in augment_methods()]
    if not methods or unknown or len(set(methods)) != len(methods):
        raise UserError(
            f"--methods {text!r}: expected distinct methods of augment/ (docs/extending.md), "
            f"comma-separated: {', '.join(augment_methods())}"
        )
    return methods


def plan(args, extra):
    """Every setting of this invocation, checked; nothing is written."""
    rs.check_passthrough(extra)
    own = ["--recipe", args.recipe] if args.recipe else []
    if args.demo:
        p = dict(
            logroot=args.logroot or os.path.join(REPO, "train_log", "demo", demo_tag()),
            results=args.results or os.path.join(REPO, "results", "demo"),
            batch_map=DEMO_BATCH,
            train_args=DEMO_TRAIN_ARGS + own + extra,
            data=os.path.join(REPO, "demo_data", demo_tag()),
            parallel=DEMO_PARALLEL,
            seeds=args.seeds or DEMO_SEEDS,
            depths=DEMO_DEPTHS,
            eval_args=DEMO_EVAL_ARGS,
        )
    else:
        p = dict(
            logroot=args.logroot or os.path.join(REPO, "train_log"),
            results=args.results or os.path.join(REPO, "results"),
            batch_map={},
            train_args=own + extra,
            data=args.data,
            parallel=1,
            seeds=args.seeds or 1,
            depths=None,
            eval_args=[],
        )
    p["parallel"] = p["parallel"] if args.parallel is None else args.parallel
    p["seeds"] = parse_seeds(p["seeds"])
    p["logroot"], p["results"] = os.path.abspath(p["logroot"]), os.path.abspath(p["results"])
    # written to unless --dry-run (neither) or --report-only (only --results): a read-only one serves those
    checks = [
        ("--logroot", p["logroot"], not (args.dry_run or args.report_only)),
        ("--results", p["results"], not args.dry_run),
    ]
    if (
        args.demo
        and not (args.dry_run or args.report_only)
        and not os.path.isfile(os.path.join(p["data"], MARKER))
    ):
        checks.append(
            ("--demo: the demo dataset", p["data"], True)
        )  # in the checkout (read-only: a traceback)
    for flag, path, written in checks:
        try:
            (argtypes.writable_dir() if written else argtypes.folder_path)(path)
        except argparse.ArgumentTypeError as e:
            raise UserError(f"{flag} {e}") from None
    p["methods"] = parse_methods(args.methods, args.table)
    p["configs"] = rs.table_configs(
        args.table, p["batch_map"], p["depths"], p["seeds"], args.holdout, p["methods"]
    )
    p["selected"] = rs.select(p["configs"], args.only)
    p["info"] = {
        "data": os.path.abspath(p["data"]) if p["data"] else None,
        "logroot": p["logroot"],
        "train_args": p["train_args"],
        "only": args.only,
        "seeds": p["seeds"],
        "metrics": args.metrics,
        "holdout": args.holdout,
        "recipe": args.recipe,
        "methods": p["methods"],
    }
    return p


def main(argv=None):
    args, extra = parse_args(argv)
    p = plan(args, extra)
    if args.report_only:
        return finish(args, p, rs.make_runs(p["configs"], data=None, logroot=p["logroot"]), {})
    if args.demo:
        print("=" * 78 + f"\n{report.DEMO_BANNER}\n" + "=" * 78)
    gpus = args.gpu_ids if args.gpu_ids is not None else ex.detect_gpus()
    slots = ex.make_slots(gpus, args.gpus_per_run, p["parallel"], args.runs_per_gpu)
    train_args = p["train_args"]
    if (
        not gpus
        and p["parallel"] > 1
        and not any(a == "--threads" or a.startswith("--threads=") for a in train_args)
    ):
        # share the cores between the concurrent CPU runs (recorded and compared: CPU results depend on it)
        train_args = train_args + ["--threads", str(max(1, (os.cpu_count() or 1) // p["parallel"]))]
    if args.demo and not args.dry_run:  # generate checks the settings of a dataset already there
        if not os.path.exists(os.path.join(p["data"], MARKER)):
            print(f"generating the demo dataset in {p['data']} ...")
        previous = signal.signal(signal.SIGTERM, raise_interrupt)
        try:
            generate(
                p["data"], **DEMO_DATA
            )  # atomic: an interrupt leaves no half dataset to block the next demo
        except KeyboardInterrupt:
            print(
                "\ninterrupted while generating the demo dataset (nothing of it is kept); run the same "
                "command again",
                file=sys.stderr,
            )
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)
    gpus_per_run = args.gpus_per_run if gpus else 0
    # the dataset is checked here, annotations and all (dataflow.annotations.read_annotations), before any
    # training; a demo dry run before the demo data exists has nothing to check or compare with
    known = not (args.demo and not os.path.isdir(p["data"]))
    make = dict(
        data=p["data"],
        logroot=p["logroot"],
        train_args=train_args,
        repo=REPO,
        gpus_per_run=gpus_per_run,
        eval_args=p["eval_args"],
        expectation=Expectation(p["data"], gpus_per_run) if known else None,
    )
    todo = rs.make_runs(p["selected"], **make)
    states = {
        r.name: rs.run_state(r)[:2] for r in todo
    }  # (state, reason): the documents are not kept
    rs.refuse_conflicts(todo, states)
    device = p["device"] = cost.device_name(slots[0])
    works = {
        r.name: w
        for r in todo
        if (w := progress.work_of(r, states[r.name][0], device, gpus_per_run))
    }
    p["cost"] = progress.cost_lines(
        list(works.values()), device, len(slots), gpus_per_run, args.runs_per_gpu
    )
    unknown = [r.name for r in todo if r.expected is None and states[r.name][0] in rs.TO_TRAIN]
    if unknown:  # a demo dry run before its data is generated
        p["cost"] = (p["cost"] if works else []) + [
            f"Cost of {len(unknown)} run(s) to train: unknown until "
            "their dataset exists (it is generated at the start)"
        ]
    p["works"] = works
    if not gpus and any(w.full for w in works.values()) and not args.allow_cpu:
        stop = (
            "\n".join(p["cost"])
            + f"\nThis is the paper's schedule ({cost.PAPER_EPOCHS} epochs) on a machine "
            "without GPUs. Add --allow-cpu to start it anyway, or run a short version with another "
            "--logroot: -- --epochs 2 --lr-step-epochs 1"
        )
        if not args.dry_run:
            raise UserError(f"refusing to start: {stop}")
        p["cost"].append(
            "A real start would be refused: the paper's schedule on a machine without GPUs "
            "needs --allow-cpu"
        )
    with contextlib.ExitStack() as held:
        if (
            not args.dry_run
        ):  # one table script per log root: a second one is refused before any work
            os.makedirs(p["logroot"], exist_ok=True)
            lock = os.path.join(p["logroot"], ex.LOCK)
            held.enter_context(fileio.hold_lock(lock, f"--logroot {show(p['logroot'])}"))
        return execute(args, p, todo, states, slots, make)


def execute(args, p, todo, states, slots, make):
    """Print the plan; then print each run's commands (--dry-run), or carry the runs out and finish."""
    count = {s: sum(1 for st, _ in states.values() if st == s) for s in (rs.EVALUATED, rs.TRAINED)}
    print(
        f"Table {args.table}: {len(todo)} run(s) in {show(p['logroot'])}: {count[rs.EVALUATED]} finished, "
        f"{count[rs.TRAINED]} to evaluate, {len(todo) - sum(count.values())} to train; "
        f"{len(slots)} at a time on {', '.join(ex.slot_name(s) for s in slots)}",
        flush=True,
    )
    print("\n".join(p["cost"]), flush=True)
    if (
        args.dry_run
    ):  # and the whole of both tables on this device, for planning (docs/tables.md, "Cost")
        print(
            "The paper's tables at the paper's schedule on this device (runrecord/cost.py):\n  "
            + "\n  ".join(cost.cost_lines(p["device"]))
        )
        for i, r in enumerate(todo):
            state, reason = states[r.name]
            w = p["works"].get(r.name)
            cost_of = (
                f"; {w.images:.3g} images, {w.flops:.3g} FLOP, "
                f"{cost.fmt_hours(w.seconds / 3600 if w.seconds else None)}"
                f" ({w.precision}, {'measured rate' if w.rate.measured else 'estimated'})"
                if w
                else ""
            )
            print(f"\n# {r.name}: {state} ({reason}){cost_of}")
            for line in rs.describe(r, state, ex.env_prefix(slots[i % len(slots)])):
                print(line)
        return 0
    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        watch = progress.Watch(todo, len(slots), works=p["works"])
        outcomes = Executor(
            slots,
            log=lambda m: print(m, flush=True),
            watch=watch,
            progress_every=args.progress_every,
        ).run_all(todo)
    except KeyboardInterrupt:
        print(
            "\ninterrupted: the runs were stopped; run the same command again to resume them",
            file=sys.stderr,
        )
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    others = rs.make_runs([c for c in p["configs"] if c not in p["selected"]], strict=False, **make)
    every = {r.name: r for r in todo + others}
    return finish(args, p, [every[c.name] for c in p["configs"]], outcomes)


def finish(args, p, every, outcomes):
    """Print and save the table and its figures.  Exit status: 1 if a run failed in this invocation,
    else INCOMPLETE if a selected run (every run without --only) has no usable result, else 0."""
    result = rs.collect(
        args.table,
        every,
        batch_map=p["batch_map"],
        outcomes=outcomes,
        depths=p["depths"],
        holdout=args.holdout,
        demo=args.demo,
        info=p["info"],
        methods=p["methods"],
    )
    paths, kept = report.write(
        result, p["results"]
    )  # first: a closed stdout (| head) must not lose them
    print("\n" + report.render(result) + "\n")
    print("results: " + ", ".join(show(x) for x in paths))
    if kept:
        print(
            f"kept {show(kept)}: it has results that this table lacks; this table went to the files above",
            file=sys.stderr,
        )
    failed = [n for n, o in outcomes.items() if o.status == "failed"]
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)} (logs above)", file=sys.stderr)
        return 1
    missing = report.missing_runs(result, [c.name for c in p["selected"]])
    if missing:
        print(
            f"table incomplete: {len(missing)} of {len(p['selected'])} run(s) without a result:\n"
            + "\n".join(f"  {name}: {why}" for name, why in missing),
            file=sys.stderr,
        )
        return INCOMPLETE
    return 0


if __name__ == "__main__":
    quiet_closed_stdout()
    sys.exit(run_main(main))
