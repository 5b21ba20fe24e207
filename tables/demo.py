"""The demo: all of a table on a generated dataset, small enough for a 2-core CPU.

These settings are the demo's own (not the paper's); they were chosen so that
``make demo`` (Table 1, 10 runs) trains and evaluates in under 15 minutes on a
2-core CPU: measured 7 min 54 s wall (8 min 4 s CPU) on the 2-core development
machine while it was also busy with other work.  32x32 images keep the demo
within that budget at width 0.25 (width 0.125 at 64x64 crashed inside oneDNN
when this was written).  The numbers it prints do not compare with the paper's.
"""
import os

from dataflow.synthetic import GENERATOR_VERSION, generate

# Generated dataset: few classes, small images (the demo's choice, not the paper's).
DATA = dict(classes=10, train_per_class=100, val_per_class=20, seed=0, height=32, width=32)
# Narrow net, short schedule (the demo's choice): passed to train.py before the user's extras.
TRAIN_ARGS = ["--width-mult", "0.25", "--epochs", "8", "--lr-step-epochs", "6"]
# The paper's batch sizes (paper Table 2: 32, 128, 256) scaled down by 8 for a 1000-image training set.
BATCH = {32: 4, 128: 16, 256: 32}
PARALLEL = 1  # runs at once on a CPU-only machine; 2 (1 thread each) was not faster on 2 cores
RESULTS = os.path.join("results", "demo")


def tag():
    """Names the demo dataset (generator version and settings), so that a change makes a new one."""
    d = DATA
    return (f"synthetic-g{GENERATOR_VERSION}-c{d['classes']}-t{d['train_per_class']}-v{d['val_per_class']}"
            f"-{d['height']}x{d['width']}")


def data_dir(repo):
    """Folder of the demo dataset: ``<repo>/demo_data/<tag>``."""
    return os.path.join(repo, "demo_data", tag())


def logroot(repo):
    """Runs of the demo: ``<repo>/train_log/demo/<tag>`` (new data, new runs)."""
    return os.path.join(repo, "train_log", "demo", tag())


def ensure_data(repo, log=print):
    """Generate the demo dataset if it is not there yet; its path."""
    path = data_dir(repo)
    if not os.path.exists(os.path.join(path, "synthetic.json")):
        log(f"generating the demo dataset in {path} ...")
    return generate(path, **DATA)
