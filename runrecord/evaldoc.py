"""eval.json, typed: :class:`EvalDoc`, its one writer's document (``to_json``), its one reader
(``EvalDoc.read``) and the views its readers take of it (the tables' values, the claims' per-image hits).

The layout (percent everywhere; docs/evaluation.md, "The JSON")::

    {"summary": protocols[protocol]["summary"], "protocol": name,
     "protocols": {"authors"|"paper"|"wsol": {"summary", "baselines", "holdout", "sweep"}},
     "wsol2020": {"maxboxacc_v2", "top1_loc_v2", "by_iou", "holdout"},
     "settings": {"checkpoint", "checkpoint_sha256", "split", "limit", "num_images", ...},
     "records": [{"file", "label", "top5", "gt_box", "pred_box", "iou"}, ...], "timing": {...}}

evaluation/report.py assembles it (``report.document``).  A part that an older evaluate.py did not
write is None here and absent from ``to_json()``, so an old file reads and writes back as it was;
keys outside the layout are not kept.  TensorFlow-free (NumPy and cam/ only).
"""

import functools
import json
import math
from collections import namedtuple
from dataclasses import dataclass, fields
from typing import Optional

import numpy as np

from cam.metrics import METRICS, is_localized
from cam.protocols import IOU_THRESHOLD, PROTOCOLS

PAPER_METRICS = METRICS[:3]  # the paper's three: GT-known Loc, Top-1 Loc, Top-1 Clas
LOC_METRICS = ("gt_known_loc", "top1_loc")  # what the protocols change (classification is the same)
EFFECTS = (("authors_vs_paper", "authors", "paper"), ("paper_vs_wsol", "paper", "wsol"))

# The per-image view of the records: the protocol, the image files (N,), {metric: uint8 (N,) 0/1 hits}
# of GT-known Loc, Top-1 Loc and Top-1 Clas, and float64 (N,) IoUs of the predicted boxes.
PerImage = namedtuple("PerImage", "protocol files hits ious")


def is_finite(x):
    """True for a finite int or float (not a bool): a usable number in eval.json."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _get(d, *keys):
    return functools.reduce(lambda d, k: d.get(k) if isinstance(d, dict) else None, keys, d)


@dataclass
class EvalDoc:
    """evaluate.py's document; the parts in the file's order.  None: a part the file does not have."""

    summary: dict  # {metric: percent} of the chosen protocol at the summary threshold
    protocol: Optional[str] = None  # the chosen protocol: authors, paper or wsol
    protocols: Optional[dict] = None  # {protocol: {"summary", "baselines", "holdout", "sweep"}}
    # MaxBoxAccV2 and its Top-1 Loc twin (and with held-out thresholds)
    wsol2020: Optional[dict] = None
    # the checkpoint reference, the images, the model, the thresholds
    settings: Optional[dict] = None
    # per image, under the chosen protocol: file, label, top5, boxes, iou
    records: Optional[list] = None
    timing: Optional[dict] = None  # seconds per stage

    def to_json(self):
        """The JSON object (a dict) as evaluate.py writes it."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }

    @classmethod
    def from_json(cls, doc):
        """The EvalDoc of a parsed eval.json; ValueError naming the first bad part ("no summary",
        "a non-finite metric (top1_loc)", "a 'records' that is not a list of objects")."""
        summary = doc.get("summary") if isinstance(doc, dict) else None
        if not isinstance(summary, dict) or not summary:
            raise ValueError("no summary")
        bad = sorted(k for k, v in summary.items() if not is_finite(v))
        if bad:
            raise ValueError(f"a non-finite metric ({bad[0]})")
        obj = (dict, "a JSON object")
        kinds = {
            "protocol": (str, "a string"),
            "protocols": obj,
            "wsol2020": obj,
            "settings": obj,
            "records": (list, "a list"),
            "timing": obj,
        }
        for name, (kind, said) in kinds.items():
            value = doc.get(name)
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"a {name!r} that is not {said}")
        if any(not isinstance(r, dict) for r in doc.get("records") or []):
            raise ValueError("a 'records' that is not a list of objects")
        return cls(**{name: doc.get(name) for name in ("summary",) + tuple(kinds)})

    @classmethod
    def read(cls, path):
        """``(EvalDoc, None)`` if ``path`` is an eval.json with a summary of finite numbers, else
        ``(None, why not)``.  The one reader of eval.json (the run state, the tables, the claims)."""
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except FileNotFoundError:
            return None, f"{path} does not exist"
        except (OSError, ValueError) as e:
            return None, f"{path} is unreadable ({type(e).__name__}: {e})"
        try:
            return cls.from_json(doc), None
        except ValueError as e:
            return None, f"{path} has {e}"

    # ---- what the run state checks: which checkpoint and which images were evaluated

    @property
    def checkpoint(self):
        """The evaluated checkpoint's path, relative to eval.json's folder (or absolute); None if unnamed."""
        return _get(self.settings, "checkpoint")

    @property
    def checkpoint_sha256(self):
        """sha256 of the checkpoint's ``.index`` (runrecord.state.checkpoint_digest); None before issue 24."""
        return _get(self.settings, "checkpoint_sha256")

    @property
    def scope(self):
        """``(split, limit, num_images)`` of the evaluated images, or None where the settings do not
        name them (an evaluate.py before ``--limit`` was recorded)."""
        s = self.settings or {}
        return (s.get("split", "val"), s["limit"], s.get("num_images")) if "limit" in s else None

    # ---- what the tables and the claims read

    def values(self):
        """The flat dict of finite numbers a table reads (docs/tables.md, "What is read"): the summary's
        metrics, the chosen protocol's baselines and held-out threshold, MaxBoxAccV2, and the protocol
        effects ``authors_vs_paper.<m>`` / ``paper_vs_wsol.<m>`` in points; ValueError naming what is
        wrong."""
        if any(m not in self.summary for m in PAPER_METRICS):
            raise ValueError(f"no summary with {', '.join(PAPER_METRICS)}")
        protos = self.protocols or {}
        mine = protos.get(self.protocol)
        values = {m: self.summary.get(m) for m in METRICS}
        values.update(
            baseline_whole_image=_get(mine, "baselines", "whole_image"),
            baseline_best_fixed_box=_get(mine, "baselines", "best_fixed_box"),
            maxboxacc_v2=_get(self.wsol2020, "maxboxacc_v2"),
            maxboxacc_v2_holdout=_get(self.wsol2020, "holdout", "maxboxacc_v2"),
            holdout_top1_loc=_get(mine, "holdout", "summary", "top1_loc"),
            holdout_threshold=_get(mine, "holdout", "threshold"),
        )
        for name, a, b in EFFECTS:
            for m in LOC_METRICS:
                x, y = _get(protos, a, "summary", m), _get(protos, b, "summary", m)
                if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                    values[f"{name}.{m}"] = x - y
        values = {k: v for k, v in values.items() if v is not None}
        bad = next((k for k, v in values.items() if not is_finite(v)), None)
        if bad is not None:
            raise ValueError(f"{bad} is {values[bad]!r}, not a finite number")
        return {k: float(v) for k, v in values.items()}

    def per_image(self):
        """:data:`PerImage` of the records (GT-known Loc: the IoU passes the protocol's rule,
        cam.protocols; Top-1 Clas: top-1 = label; Top-1 Loc: both); ValueError if there are none
        of a known protocol or they are malformed."""
        if self.protocol not in PROTOCOLS or not self.records:
            raise ValueError("no per-image records of a known protocol")
        try:
            ious = np.array([r["iou"] for r in self.records], dtype=np.float64)
            clas = np.array([r["top5"][0] == r["label"] for r in self.records])
            files = [r["file"] for r in self.records]
        except (KeyError, TypeError, IndexError, ValueError) as e:
            raise ValueError(f"malformed records ({type(e).__name__}: {e})") from None
        gt = is_localized(ious, IOU_THRESHOLD, PROTOCOLS[self.protocol].strict)
        hits = {"gt_known_loc": gt, "top1_clas": clas, "top1_loc": gt & clas}
        return PerImage(
            self.protocol, files, {k: v.astype(np.uint8) for k, v in hits.items()}, ious
        )
