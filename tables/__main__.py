"""The command line behind run_table1.sh / run_table2.sh (docs/tables.md): train, evaluate and print
paper Table 1 or 2; everything after ``--`` goes to train.py, and a refused invocation writes nothing."""
import argparse
import contextlib
import os
import signal
import sys

import argtypes
import fileio
import runrecord
from dataflow.synthetic import GENERATOR_VERSION, generate
from errors import UserError, raise_interrupt, run_main
from tables import executor as ex, report, runs as rs
from tables.executor import Executor, show
from tables.runs import Expectation

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The demo (--demo): a table on a generated dataset on a 2-core CPU, in the demo's own settings, not the
# paper's (docs/tables.md, "Demo"; its numbers and times: docs/measurements.md).
# 200 validation images per class (1,200): evaluation is cheap, and the claims' intervals resample the
# images (docs/claims.md, "The demo's design").
DEMO_DATA = dict(classes=6, train_per_class=250, val_per_class=200, seed=0, height=48, width=48)
# Narrow net, short schedule, passed to train.py before the user's extras: 12 epochs, the rate / 10 after
# 10, so that every seed's classifier converges (docs/claims.md, "The demo's design").
DEMO_TRAIN_ARGS = ["--width-mult", "0.125", "--final-stride", "4", "--epochs", "12", "--lr-step-epochs", "10"]
# The paper's batch sizes (paper Table 2: 32, 128, 256) scaled down by 8 for the 1500-image training set.
DEMO_BATCH = {32: 4, 128: 16, 256: 32}
DEMO_PARALLEL = 2  # runs at once on a CPU-only machine, 1 thread each: a width-0.125 run keeps ~1.3 of 2 cores busy
DEMO_SEEDS = 3  # runs per cell by default (train.py --seed 0, 1, 2): a seed spread for the claims, within 15 minutes
DEMO_EVAL_ARGS = ["--protocol", "paper"]   # sound IoU arithmetic: a corner box hits nothing (docs/claims.md)
DEMO_DEPTHS = (18,)  # ResNet-18 only: ResNet-34 doubles the time
INCOMPLETE = 3   # exit status of a table with a selected run missing (1: a run failed; 2: refused)


def demo_tag():
    """Names the demo dataset (generator version and settings), so that a change makes a new one and new runs."""
    return "synthetic-g{}-c{classes}-t{train_per_class}-v{val_per_class}-{height}x{width}".format(
        GENERATOR_VERSION, **DEMO_DATA)


def build_parser(prog="python -m tables"):
    p = argparse.ArgumentParser(
        prog=prog, allow_abbrev=False,
        usage="%(prog)s (--data DIR | --demo) [options] [-- train.py options]",
        description="Train and evaluate every run of paper Table 1 or 2 and print the table "
                    "(ours, the paper's, and the difference).",
        epilog="Everything after -- goes to train.py (e.g. -- --epochs 2 --lr-step-epochs 1 for a "
               "short version; use another --logroot for it).")
    p.add_argument("--table", type=int, choices=(1, 2), required=True, help="paper table to reproduce")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="DIR", type=argtypes.data_root, help="Tiny ImageNet folder (wnids.txt, train/, val/)")
    src.add_argument("--demo", action="store_true",
                     help="synthetic data (generated in demo_data/), narrow net, short schedule; "
                          "numbers do not compare with the paper's")
    p.add_argument("--logroot", metavar="DIR", type=argtypes.writable_dir(),
                   help="one folder per run under it (default train_log; demo: train_log/demo/<data tag>)")
    p.add_argument("--results", metavar="DIR", type=argtypes.writable_dir(),
                   help="where tableN.json/.csv/.md and tableN-figure2.png go (default results, or results/demo)")
    p.add_argument("--seeds", metavar="N|LIST",
                   help=f"N seeds per cell (0..N-1) or a comma list (0,4,7); train.py --seed; "
                        f"default 1 (the paper's single run), demo {DEMO_SEEDS}")
    p.add_argument("--metrics", choices=report.METRIC_CHOICES, default="paper",
                   help="paper: the paper's three metrics at CAM threshold 0.2 (default); wsol2020: "
                        "MaxBoxAccV2 and Top-1 Loc at a held-out threshold; all: both")
    p.add_argument("--holdout", type=argtypes.nonnegative_int, default=0, metavar="N",
                   help="train.py --holdout N: the last N training images per class are held out; "
                        "evaluate.py chooses the CAM threshold on them (--metrics wsol2020); "
                        "runs are named r18-gr-b256-hN; default 0 (the paper's)")
    p.add_argument("--recipe", choices=sorted(runrecord.RECIPES),
                   help="train.py --recipe: paper (train.py's default) or sn-resnet (docs/sources.md)")
    p.add_argument("--gpus", metavar="LIST", type=argtypes.gpu_list,
                   help="GPU ids to use, e.g. 0,1,2,3, or 'none' for CPU "
                        "(default: CUDA_VISIBLE_DEVICES, else all of nvidia-smi -L)")
    p.add_argument("--gpus-per-run", type=argtypes.positive_int, default=1, metavar="N",
                   help="GPUs given to each run (train.py --gpus N); default 1")
    p.add_argument("--parallel", type=argtypes.positive_int, metavar="N", help="runs at once on a machine without GPUs (default 1)")
    p.add_argument("--only", metavar="PATTERNS",
                   help="comma-separated run names, prefixes or globs: r18-cam,r34-gr-b32,'r34-*'")
    p.add_argument("--dry-run", action="store_true", help="print each run's state and commands; run nothing")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: print and save the table from the eval.json files present")
    return p


def parse_args(argv):
    """(args, train_args): our options, and those after ``--`` for train.py."""
    argv = list(sys.argv[1:] if argv is None else argv)
    after = []
    if "--" in argv:
        i = argv.index("--")
        argv, after = argv[:i], argv[i + 1:]
    table = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--table"), None)
    p = build_parser(f"run_table{table}.sh" if table in ("1", "2") else "python -m tables")
    args, unknown = p.parse_known_args(argv)
    if unknown:
        p.error(f"unrecognized arguments: {' '.join(unknown)} (options for train.py go after --)")
    if not (args.data or args.demo or args.report_only):
        p.error("give --data DIR (Tiny ImageNet) or --demo")
    return args, after


def parse_seeds(text):
    """``--seeds``: ``"3"`` -> [0, 1, 2] (a count); ``"0,4,7"`` -> those seeds (a list: ``"5,"`` is seed 5)."""
    text = str(text).strip()
    try:
        if "," not in text:
            n = int(text)
            if n < 1:
                raise UserError(f"--seeds {text}: the number of seeds must be at least 1")
            return list(range(n))
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds {text!r}: expected a count (3) or a comma list of seeds (0,4,7)") from None
    if not seeds or any(s < 0 for s in seeds) or len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds {text!r}: seeds must be distinct non-negative integers")
    return seeds


def plan(args, extra):
    """Every setting of this invocation, checked; nothing is written."""
    rs.check_passthrough(extra)
    own = ["--recipe", args.recipe] if args.recipe else []
    if args.demo:
        p = dict(logroot=args.logroot or os.path.join(REPO, "train_log", "demo", demo_tag()),
                 results=args.results or os.path.join(REPO, "results", "demo"), batch_map=DEMO_BATCH,
                 train_args=DEMO_TRAIN_ARGS + own + extra, data=os.path.join(REPO, "demo_data", demo_tag()),
                 parallel=DEMO_PARALLEL, seeds=args.seeds or DEMO_SEEDS, depths=DEMO_DEPTHS, eval_args=DEMO_EVAL_ARGS)
    else:
        p = dict(logroot=args.logroot or os.path.join(REPO, "train_log"),
                 results=args.results or os.path.join(REPO, "results"), batch_map={}, train_args=own + extra,
                 data=args.data, parallel=1, seeds=args.seeds or 1, depths=None, eval_args=[])
    p["parallel"] = p["parallel"] if args.parallel is None else args.parallel
    p["seeds"] = parse_seeds(p["seeds"])
    p["logroot"], p["results"] = os.path.abspath(p["logroot"]), os.path.abspath(p["results"])
    for flag in ("--logroot", "--results"):   # the defaults: given ones were checked by the parser
        try:
            argtypes.writable_dir()(p[flag[2:]])
        except argparse.ArgumentTypeError as e:
            raise UserError(f"{flag} {e}") from None
    p["configs"] = rs.table_configs(args.table, p["batch_map"], p["depths"], p["seeds"], args.holdout)
    p["selected"] = rs.select(p["configs"], args.only)
    p["info"] = {"data": os.path.abspath(p["data"]) if p["data"] else None, "logroot": p["logroot"],
                 "train_args": p["train_args"], "only": args.only, "seeds": p["seeds"], "metrics": args.metrics,
                 "holdout": args.holdout, "recipe": args.recipe}
    return p


def main(argv=None):
    args, extra = parse_args(argv)
    p = plan(args, extra)
    if args.report_only:
        return finish(args, p, rs.make_runs(p["configs"], data=None, logroot=p["logroot"]), {})
    if args.demo:
        print("=" * 78 + f"\n{report.DEMO_BANNER}\n" + "=" * 78)
    gpus = args.gpus if args.gpus is not None else ex.detect_gpus()
    slots = ex.make_slots(gpus, args.gpus_per_run, p["parallel"])
    train_args = p["train_args"]
    if not gpus and p["parallel"] > 1 and not any(a == "--threads" or a.startswith("--threads=") for a in train_args):
        # share the cores between the concurrent CPU runs (recorded and compared: CPU results depend on it)
        train_args = train_args + ["--threads", str(max(1, (os.cpu_count() or 1) // p["parallel"]))]
    if args.demo and not args.dry_run:   # generate checks the settings of a dataset already there
        if not os.path.exists(os.path.join(p["data"], "synthetic.json")):
            print(f"generating the demo dataset in {p['data']} ...")
        generate(p["data"], **DEMO_DATA)
    gpus_per_run = args.gpus_per_run if gpus else 0
    # the dataset is checked here, annotations and all (dataflow.read_annotations), before any
    # training; a demo dry run before the demo data exists has nothing to check or compare with
    known = not (args.demo and not os.path.isdir(p["data"]))
    make = dict(data=p["data"], logroot=p["logroot"], train_args=train_args, repo=REPO, gpus_per_run=gpus_per_run,
                eval_args=p["eval_args"], expectation=Expectation(p["data"], gpus_per_run) if known else None)
    todo = rs.make_runs(p["selected"], **make)
    states = {r.name: rs.run_state(r) for r in todo}
    rs.refuse_conflicts(todo, states)
    with contextlib.ExitStack() as held:
        if not args.dry_run:   # one table script per log root: a second one is refused before any work
            os.makedirs(p["logroot"], exist_ok=True)
            lock = os.path.join(p["logroot"], ex.LOCK)
            held.enter_context(fileio.hold_lock(lock, f"--logroot {show(p['logroot'])}"))
        return execute(args, p, todo, states, slots, make)


def execute(args, p, todo, states, slots, make):
    """Print the plan; then print each run's commands (--dry-run), or carry the runs out and finish."""
    count = {s: sum(1 for st, _ in states.values() if st == s) for s in (rs.EVALUATED, rs.TRAINED)}
    print(f"Table {args.table}: {len(todo)} run(s) in {show(p['logroot'])}: {count[rs.EVALUATED]} finished, "
          f"{count[rs.TRAINED]} to evaluate, {len(todo) - sum(count.values())} to train; "
          f"{len(slots)} at a time on {', '.join(ex.slot_name(s) for s in slots)}", flush=True)
    if args.dry_run:
        for i, r in enumerate(todo):
            state, reason = states[r.name]
            print(f"\n# {r.name}: {state} ({reason})")
            for line in rs.describe(r, state, ex.env_prefix(slots[i % len(slots)])):
                print(line)
        return 0
    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        outcomes = Executor(slots, log=lambda m: print(m, flush=True)).run_all(todo)
    except KeyboardInterrupt:
        print("\ninterrupted: the runs were stopped; run the same command again to resume them",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    others = rs.make_runs([c for c in p["configs"] if c not in p["selected"]], strict=False, **make)
    every = {r.name: r for r in todo + others}
    return finish(args, p, [every[c.name] for c in p["configs"]], outcomes)



def finish(args, p, every, outcomes):
    """Print and save the table and its figures.  Exit status: 1 if a run failed in this invocation,
    else INCOMPLETE if a selected run (every run without --only) has no usable result, else 0."""
    result = rs.collect(args.table, every, batch_map=p["batch_map"], outcomes=outcomes,
                        depths=p["depths"], holdout=args.holdout, demo=args.demo, info=p["info"])
    print("\n" + report.render(result) + "\n")
    paths, kept = report.write(result, p["results"])
    print("results: " + ", ".join(show(x) for x in paths))
    if kept:
        print(f"kept {show(kept)}: it has results that this table lacks; this table went to the files above",
              file=sys.stderr)
    failed = [n for n, o in outcomes.items() if o.status == "failed"]
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)} (logs above)", file=sys.stderr)
        return 1
    missing = report.missing_runs(result, [c.name for c in p["selected"]])
    if missing:
        print(f"table incomplete: {len(missing)} of {len(p['selected'])} run(s) without a result:\n"
              + "\n".join(f"  {name}: {why}" for name, why in missing), file=sys.stderr)
        return INCOMPLETE
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
