"""evaluate.py's helpers: checkpoint and settings lookup (:mod:`evaluation.checkpoint`) and the
forward pass with per-image CAM evaluation (:mod:`evaluation.runner`)."""
