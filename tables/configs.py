"""The training runs behind each table: one (depth, augmentation, batch) per cell.

A run's name is also its log folder under the log root: ``r{depth}-{aug}-b{batch}``,
e.g. ``r18-gr-b256``.  Table 2's batch-256 runs have the same names as Table 1's,
so running Table 2 after Table 1 reuses them.
"""
import fnmatch
from dataclasses import dataclass

from errors import UserError
from tables import paper


@dataclass(frozen=True)
class Config:
    depth: int   # ResNet depth, 18 or 34
    aug: str     # augmentation method, one of augment.METHODS
    batch: int   # whole minibatch size (split over the run's GPUs by train.py)

    @property
    def name(self):
        return f"r{self.depth}-{self.aug}-b{self.batch}"


def table_configs(table, batch_map=None):
    """The runs of paper Table 1 (10) or Table 2 (18), in the order the paper prints them.

    ``batch_map`` maps the paper's batch size to the one actually trained (the demo
    trains smaller batches); default identity.
    """
    batch_map = batch_map or {}
    if table == 1:
        cells = [(d, m, paper.TABLE1_BATCH) for d in paper.DEPTHS for m in paper.METHOD_NAMES]
    elif table == 2:
        cells = [(d, m, b) for (m, b) in paper.TABLE2 for d in paper.DEPTHS]
    else:
        raise ValueError(f"table must be 1 or 2, got {table!r}")
    return [Config(d, m, batch_map.get(b, b)) for d, m, b in cells]


def select(configs, only):
    """Keep the configs whose name matches one of the comma-separated patterns in ``only``.

    A pattern matches a name exactly, as a shell glob (``r34-*-b32``), or as a prefix
    ending at a dash (``r18-gr`` selects ``r18-gr-b256`` but not ``r18-gr_after_hns-b256``).
    A pattern that selects nothing is a UserError listing the names.
    """
    if not only:
        return list(configs)
    names = [c.name for c in configs]
    patterns = [p.strip() for p in only.split(",") if p.strip()]
    keep = set()
    for p in patterns:
        hits = [n for n in names if fnmatch.fnmatchcase(n, p) or fnmatch.fnmatchcase(n, p + "-*")]
        if not hits:
            raise UserError(f"--only {p!r} matches no run of this table; runs are: {', '.join(names)}")
        keep.update(hits)
    return [c for c in configs if c.name in keep]
