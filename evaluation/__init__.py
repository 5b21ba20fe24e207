"""evaluate.py's helper: the forward pass with per-image CAM evaluation (:mod:`evaluation.runner`).
Checkpoint and settings lookup live in :mod:`runrecord`."""
