"""evaluate.py's helpers: the checkpoint check, the forward pass and one pass of every evaluator
(:mod:`evaluation.runner`), and the eval.json document, tables and pictures (:mod:`evaluation.report`).
Checkpoint and settings lookup live in :mod:`runrecord`."""
