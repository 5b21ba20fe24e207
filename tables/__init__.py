"""Reproduce the paper's Table 1 and Table 2: launch the runs, evaluate them, print the tables.

* :mod:`tables.paper`: the paper's numbers (cited), printed beside ours.
* :mod:`tables.configs`: the 10 runs of Table 1 and the 18 of Table 2.
* :mod:`tables.runner`: run states (skip / evaluate / train), GPU slots, subprocesses.
* :mod:`tables.report`: the tables from the runs' eval.json; JSON, CSV and Markdown.
* :mod:`tables.demo`: the demo's synthetic data and short schedule.
* ``python -m tables``: the command line behind ``run_table1.sh`` / ``run_table2.sh``.
"""
