"""Reproduce the paper's Table 1 and Table 2: launch the runs, evaluate them, print the tables.

* :mod:`tables.paper`: the paper's numbers (cited), printed beside ours.
* :mod:`tables.layout`: the shape of Table 1 and of Table 2 (the one place they differ).
* :mod:`tables.configs`: the runs of each table: cells x seeds, and their folder names.
* :mod:`tables.runs`: a run's commands and state (skip / evaluate / train / conflict).
* :mod:`tables.slots`: GPU groups or CPU slots; :mod:`tables.executor`: the runs over them.
* :mod:`tables.results`: the numbers from the runs' eval.json, per seed and mean ± std per cell.
* :mod:`tables.report`: the printed tables; JSON, CSV and Markdown.
* :mod:`tables.figure`: the paper's Figure 2 across methods.
* :mod:`tables.demo`: the demo's synthetic data and short schedule.
* ``python -m tables``: the command line behind ``run_table1.sh`` / ``run_table2.sh``.
"""
