"""The training runs behind each table: one (depth, augmentation, batch, seed) per run.

A run's name is also its log folder under the log root: ``r{depth}-{aug}-b{batch}``
for seed 0 (the paper's single run, and the name runs had before ``--seeds``, so
they are reused), ``r{depth}-{aug}-b{batch}-s{seed}`` for other seeds, e.g.
``r18-gr-b256-s1``.  Runs trained with ``--holdout N`` (N > 0) learn from fewer
images, so their cell is another one: ``r18-gr-b256-h10``, ``r18-gr-b256-h10-s1``.  Table 2's batch-256 runs have the same names as Table 1's,
so running Table 2 after Table 1 reuses them.
"""
import fnmatch
from dataclasses import dataclass, replace

from errors import UserError
from tables.layout import LAYOUTS


@dataclass(frozen=True)
class Config:
    depth: int   # ResNet depth, 18 or 34
    aug: str     # augmentation method, one of augment.METHODS
    batch: int   # whole minibatch size (split over the run's GPUs by train.py)
    seed: int = 0      # train.py --seed
    holdout: int = 0   # train.py --holdout: training images per class held out

    @property
    def cell(self):
        """The table cell this run belongs to (its name without the seed)."""
        return f"r{self.depth}-{self.aug}-b{self.batch}" + (f"-h{self.holdout}" if self.holdout else "")

    @property
    def name(self):
        return self.cell if self.seed == 0 else f"{self.cell}-s{self.seed}"


def parse_seeds(text):
    """``--seeds``: ``"3"`` -> [0, 1, 2] (N seeds from 0); ``"0,4,7"`` -> those seeds.

    A single number is a count; a list (any comma) names the seeds, so ``"5,"`` is seed 5 alone.
    """
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


def table_configs(table, batch_map=None, depths=None, seeds=(0,), holdout=0):
    """The runs of paper Table 1 (10 per seed) or Table 2 (18 per seed), in the paper's order.

    ``batch_map`` maps the paper's batch size to the one actually trained (the demo
    trains smaller batches); ``depths`` keeps only those depths (default all);
    each cell is run once per seed in ``seeds``, seeds of a cell next to each other;
    ``holdout``: train.py --holdout of every run.
    """
    cells = []
    for c in LAYOUTS[table].cells(batch_map or {}, depths):
        cfg = Config(c.depth, c.method, c.trained_batch, holdout=holdout)
        if cfg not in cells:
            cells.append(cfg)
    return [replace(c, seed=s) for c in cells for s in seeds]


def select(configs, only):
    """Keep the configs whose name matches one of the comma-separated patterns in ``only``.

    A pattern matches a run's name or its cell name (without the seed suffix) exactly,
    as a shell glob (``r34-*-b32``), or as a prefix ending at a dash (``r18-gr`` selects
    ``r18-gr-b256`` and ``r18-gr-b256-s1`` but not ``r18-gr_after_hns-b256``).
    A pattern that selects nothing is a UserError listing the names.
    """
    if not only:
        return list(configs)
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    keep = set()
    for p in patterns:
        hits = [c for c in configs if any(fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(n, p + "-*")
                                          for n in (c.name, c.cell))]
        if not hits:
            names = ", ".join(c.name for c in configs)
            raise UserError(f"--only {p!r} matches no run of this table; runs are: {names}")
        keep.update(hits)
    return [c for c in configs if c in keep]
