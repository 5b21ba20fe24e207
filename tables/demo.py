"""The demo: all of a table on a generated dataset, small enough for a 2-core CPU.

These settings are the demo's own (not the paper's).  They were chosen from
the paper's mechanism (sec. 1): the synthetic object's small "head" tells the
class, the body carries a weaker cue, and the box covers both, so a CAM that
looks at the head alone misses the box, and GoogLeNet Resize (whose crops
often miss the head) and Hide-and-Seek push the net onto the body.

* 48x48 images, final stride 4: a 12x12 CAM.  At 32x32 the 8x8 CAM blurs
  past the object (issue 11); 64x64 at width 0.125 costs about 2x more per
  image than 48x48, and a 64x64, stride-8 map is coarser (8x8).
* Width 0.125 (widths 8/16/32/64): the cheapest width that learns here.
* 6 classes x 250 training images, 50 validation images per class (300):
  the val set is large enough that one image is 0.33 points.
* 6 epochs, lr 0.1 divided by 10 for the last epoch, batch 32: about 9,000
  training images per run.
* ResNet-18 only (``DEPTHS``): ResNet-34 costs about twice as much; 15
  ResNet-18 runs (5 methods x 3 seeds) are what fits ``make demo``'s
  15-minute budget, and 3 seeds are what the claims' intervals need for a
  seed spread (``tables.claims``).
* Evaluated under the ``paper`` protocol (``EVAL_ARGS``): under the authors'
  unclamped IoU a degenerate box in a corner "hits" many objects away from
  that corner (``cam.metrics.iou``), so a constant box scores far above what
  it covers; docs/claims.md.

Measured numbers (time, table, claims) are in docs/measurements.md, not here.
The numbers the demo prints do not compare with the paper's.
"""
import os

from dataflow.synthetic import GENERATOR_VERSION, generate

# Generated dataset: few classes, small images (the demo's choice, not the paper's).
DATA = dict(classes=6, train_per_class=250, val_per_class=50, seed=0, height=48, width=48)
# Narrow net, short schedule (the demo's choice): passed to train.py before the user's extras.
TRAIN_ARGS = ["--width-mult", "0.125", "--final-stride", "4", "--epochs", "6", "--lr-step-epochs", "5"]
# The paper's batch sizes (paper Table 2: 32, 128, 256) scaled down by 8 for the 1500-image training set.
BATCH = {32: 4, 128: 16, 256: 32}
PARALLEL = 2  # runs at once on a CPU-only machine, 1 thread each: a width-0.125 run keeps ~1.3 of 2 cores busy alone
SEEDS = 3  # runs per cell by default (train.py --seed 0, 1, 2): a seed spread for the claims, within 15 minutes
# evaluate.py options of every demo run: the protocol with sound IoU arithmetic (module docstring)
EVAL_ARGS = ["--protocol", "paper"]
DEPTHS = (18,)  # ResNet-18 only: ResNet-34 doubles the time (module docstring)
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
