"""Train, evaluate and print paper Table 1 or Table 2 (the command behind run_table1.sh / run_table2.sh).

Examples::

    ./run_table1.sh --data /data/tiny-imagenet-200               # the 10 runs of Table 1, all GPUs
    ./run_table2.sh --data /data/tiny-imagenet-200 --gpus-per-run 2
    ./run_table1.sh --data DIR --epochs 2 --lr-step-epochs 1 --logroot train_log/short   # a short version
    ./run_table1.sh --data DIR --only r18-cam,r18-gr --dry-run   # what would run, and where
    ./run_table1.sh --demo                                       # synthetic data, CPU, < 15 min
    python -m tables --table 2 --report-only                     # the table from what is there

Pass-through rule: every argument after ``--`` goes to train.py unchanged; before
``--``, any option these scripts do not know (with its value) goes to train.py too.
Flags set per run (--data --depth --aug --batch --logdir --gpus) cannot be passed.
"""
import argparse
import os
import signal
import sys

from errors import UserError, run_main
from tables import configs, demo, report, runner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_parser(prog="python -m tables"):
    p = argparse.ArgumentParser(
        prog=prog, allow_abbrev=False,
        usage="%(prog)s (--data DIR | --demo) [options] [train.py options] [-- train.py options]",
        description="Train and evaluate every run of paper Table 1 or 2 and print the table "
                    "(ours, the paper's, and the difference).",
        epilog="Unknown options, and everything after --, go to train.py (e.g. --epochs 2 "
               "--lr-step-epochs 1 for a short version; use another --logroot for it).")
    p.add_argument("--table", type=int, choices=(1, 2), required=True, help="paper table to reproduce")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--data", metavar="DIR", help="Tiny ImageNet folder (wnids.txt, train/, val/)")
    src.add_argument("--demo", action="store_true",
                     help="synthetic data (generated in demo_data/), narrow net, short schedule; "
                          "numbers do not compare with the paper's")
    p.add_argument("--logroot", metavar="DIR",
                   help="one folder per run under it (default train_log; demo: train_log/demo/<data tag>)")
    p.add_argument("--results", metavar="DIR",
                   help="where tableN.json/.csv/.md go (default results, or results/demo)")
    p.add_argument("--gpus", metavar="LIST",
                   help="GPU ids to use, e.g. 0,1,2,3, or 'none' for CPU "
                        "(default: CUDA_VISIBLE_DEVICES, else all of nvidia-smi -L)")
    p.add_argument("--gpus-per-run", type=int, default=1, metavar="N",
                   help="GPUs given to each run (train.py --gpus N); default 1")
    p.add_argument("--parallel", type=int, metavar="N",
                   help="runs at once on a machine without GPUs (default 1)")
    p.add_argument("--only", metavar="PATTERNS",
                   help="comma-separated run names, prefixes or globs: r18-cam,r34-gr-b32,'r34-*'")
    p.add_argument("--dry-run", action="store_true", help="print each run's state and commands; run nothing")
    p.add_argument("--report-only", action="store_true",
                   help="run nothing: print and save the table from the eval.json files present")
    return p


def parse_args(argv):
    """(args, train_args): our options, and those for train.py (see the pass-through rule)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    after = []
    if "--" in argv:
        i = argv.index("--")
        argv, after = argv[:i], argv[i + 1:]
    table = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--table"), None)
    p = build_parser(f"run_table{table}.sh" if table in ("1", "2") else "python -m tables")
    args, unknown = p.parse_known_args(argv)
    if not (args.data or args.demo or args.report_only):
        p.print_usage(sys.stderr)
        p.exit(2, f"{p.prog}: error: give --data DIR (Tiny ImageNet) or --demo\n")
    return args, unknown + after


def check_tiny_imagenet(root):
    """Refuse a folder that is not in the Tiny ImageNet layout (before anything is trained)."""
    if not os.path.isdir(root):
        raise UserError(f"--data {root}: no such folder")
    for rel, kind in (("wnids.txt", "file"), ("train", "folder"), ("val", "folder"),
                      (os.path.join("val", "val_annotations.txt"), "file"), (os.path.join("val", "images"), "folder")):
        path = os.path.join(root, rel)
        if not (os.path.isfile(path) if kind == "file" else os.path.isdir(path)):
            raise UserError(f"--data {root} is not in the Tiny ImageNet layout: missing {kind} {path} "
                            "(expected wnids.txt, train/<wnid>/images/, val/images/, val/val_annotations.txt)")
    with open(os.path.join(root, "wnids.txt")) as f:
        wnids = [w.strip() for w in f if w.strip()]
    if not wnids:
        raise UserError(f"{os.path.join(root, 'wnids.txt')}: empty")
    first = os.path.join(root, "train", wnids[0], "images")
    if not os.path.isdir(first):
        raise UserError(f"--data {root} is not in the Tiny ImageNet layout: missing folder {first} "
                        f"(class {wnids[0]}, line 1 of wnids.txt)")


def has_flag(args, flag):
    return any(a == flag or a.startswith(flag + "=") for a in args)


def main(argv=None):
    args, extra = parse_args(argv)
    runner.check_passthrough(extra)
    table = args.table
    if args.demo:
        logroot = args.logroot or demo.logroot(REPO)
        results = args.results or os.path.join(REPO, demo.RESULTS)
        batch_map, train_args = demo.BATCH, demo.TRAIN_ARGS + extra
        parallel = demo.PARALLEL if args.parallel is None else args.parallel
        data = demo.data_dir(REPO)
    else:
        logroot = args.logroot or os.path.join(REPO, "train_log")
        results = args.results or os.path.join(REPO, "results")
        batch_map, train_args, parallel = {}, extra, 1 if args.parallel is None else args.parallel
        data = args.data
    logroot, results = os.path.abspath(logroot), os.path.abspath(results)
    every = configs.table_configs(table, batch_map)
    selected = configs.select(every, args.only)
    info = {"data": os.path.abspath(data) if data else None, "logroot": logroot, "train_args": train_args,
            "only": args.only}

    if args.report_only:
        return finish(table, logroot, results, batch_map, {}, args.demo, info)

    if args.demo:
        print("=" * 78 + f"\n{report.DEMO_BANNER}\n" + "=" * 78)
        if not args.dry_run:
            demo.ensure_data(REPO)
    else:
        check_tiny_imagenet(data)

    gpus = runner.parse_gpus(args.gpus) if args.gpus is not None else runner.detect_gpus()
    slots = runner.make_slots(gpus, args.gpus_per_run, parallel)
    if not gpus and parallel > 1 and not has_flag(train_args, "--threads"):
        # share the cores between the concurrent CPU runs (a speed setting, not a result one)
        train_args = train_args + ["--threads", str(max(1, (os.cpu_count() or 1) // parallel))]
    runs = runner.make_runs(selected, data=data, logroot=logroot, train_args=train_args,
                            gpus_per_run=args.gpus_per_run if gpus else 0, repo=REPO)

    states = {r.name: runner.run_state(r) for r in runs}
    count = {s: sum(1 for st, _ in states.values() if st == s) for s in
             (runner.FINISHED, runner.EVALUATE, runner.TRAIN, runner.CONFLICT)}
    where = ", ".join(runner.slot_name(s) for s in slots)
    print(f"Table {table}: {len(runs)} run(s) in {runner.show(logroot)}: {count['finished']} finished, "
          f"{count['evaluate']} to evaluate, {count['train']} to train"
          + (f", {count['conflict']} in conflict" if count["conflict"] else "")
          + f"; {len(slots)} at a time on {where}", flush=True)

    if args.dry_run:
        for i, r in enumerate(runs):
            state, reason = states[r.name]
            print(f"\n# {r.name}: {state} ({reason})")
            for line in runner.describe(r, state, slots[i % len(slots)]):
                print(line)
        return 0

    ex = runner.Executor(slots, log=lambda m: print(m, flush=True))
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        outcomes = ex.run_all(runs)
    except KeyboardInterrupt:
        print("\ninterrupted: the runs were stopped; run the same command again to resume them",
              file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return finish(table, logroot, results, batch_map, outcomes, args.demo, info)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def finish(table, logroot, results, batch_map, outcomes, is_demo, info):
    """Print and save the table; exit status 1 if a run failed in this invocation, else 0."""
    result = report.collect(table, logroot, batch_map=batch_map, outcomes=outcomes, demo=is_demo, info=info)
    print("\n" + report.render(result) + "\n")
    paths = report.write(result, results)
    print("results: " + ", ".join(runner.show(p) for p in paths))
    failed = [n for n, o in outcomes.items() if o.status == "failed"]
    if failed:
        print(f"{len(failed)} run(s) failed: {', '.join(failed)} (logs above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
