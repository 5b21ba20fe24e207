"""evaluate.py's helpers: the network to build for a checkpoint (:mod:`evaluation.network`), the forward
pass and one pass of every evaluator (:mod:`evaluation.runner`), the folder of per-image score maps
(:mod:`evaluation.scoremaps`), and the eval.json document, tables and pictures
(:mod:`evaluation.report`).  Checkpoint lookup and checks and the settings live in :mod:`runrecord`."""
