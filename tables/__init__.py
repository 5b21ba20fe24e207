"""Reproduce the paper's Table 1 and Table 2: launch the runs, evaluate them, print the tables.

* :mod:`tables.paper`: the paper's numbers (cited) and the shape of Table 1 and Table 2.
* :mod:`tables.runs`: the runs of each table (cells x seeds), their commands, settings and state.
* :mod:`tables.executor`: GPU groups or CPU slots, and the runs carried out over them.
* :mod:`tables.report`: the numbers from the runs' eval.json; the printed tables, JSON, CSV, Markdown.
* :mod:`tables.figure`: the paper's Figure 2 across methods.
* :mod:`tables.demo`: the demo's synthetic data and short schedule.
* ``python -m tables``: the command line behind ``run_table1.sh`` / ``run_table2.sh``.
"""
