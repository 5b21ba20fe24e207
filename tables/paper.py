"""The paper's numbers (Choe, Park, Shim 2018), printed beside ours; never used as results.

Values are percent, copied from the paper's Table 1 and Table 2 (Choe, Park,
Shim, "Improved Techniques for Weakly-Supervised Object Localization", 2018,
arXiv:1802.07888); docs/sources.md lists the paper's conventions.

``TABLE1[(depth, method)][metric]``: paper Table 1 (batch 256).
``TABLE2[(method, batch)][depth]``: paper Table 2 (Top-1 Loc).
"""

# Metric keys are those of ``summary`` in evaluate.py's JSON.
METRICS = ("gt_known_loc", "top1_loc", "top1_clas")
METRIC_NAMES = {"gt_known_loc": "GT-known Loc", "top1_loc": "Top-1 Loc", "top1_clas": "Top-1 Clas"}

# Column headers as the paper prints them (augment.METHODS order).
METHOD_NAMES = {"cam": "CAM", "hns": "HnS", "gr": "GR",
                "hns_after_gr": "HnS after GR", "gr_after_hns": "GR after HnS"}

# paper Table 1: GT-known Loc, Top-1 Loc, Top-1 Clas; batch size 256.
_TABLE1_ROWS = {
    34: {"cam": (53.46, 27.50, 44.54), "hns": (54.30, 29.72, 46.67), "gr": (57.82, 36.00, 54.13),
         "hns_after_gr": (57.49, 33.93, 51.28), "gr_after_hns": (57.43, 33.45, 50.45)},
    18: {"cam": (53.42, 27.13, 43.90), "hns": (52.89, 27.56, 44.12), "gr": (57.00, 34.43, 52.23),
         "hns_after_gr": (56.99, 33.33, 50.14), "gr_after_hns": (56.76, 32.28, 48.87)},
}
TABLE1_BATCH = 256  # paper Table 1 caption: "The batch size is 256."
TABLE1 = {(depth, method): dict(zip(METRICS, values))
          for depth, row in _TABLE1_ROWS.items() for method, values in row.items()}

# paper Table 2: Top-1 Loc, (ResNet34, ResNet18) for each method and batch size.
_TABLE2_ROWS = {
    "cam": {32: (31.49, 28.47), 128: (29.62, 27.76), 256: (27.50, 27.13)},
    "hns": {32: (31.17, 29.45), 128: (30.32, 29.25), 256: (29.72, 27.56)},
    "gr": {32: (37.84, 35.94), 128: (36.13, 35.83), 256: (36.00, 34.43)},
}
TABLE2_METRIC = "top1_loc"  # paper Table 2 caption: "Top-1 localization accuracy"
TABLE2 = {(method, batch): {34: r34, 18: r18}
          for method, row in _TABLE2_ROWS.items() for batch, (r34, r18) in row.items()}

DEPTHS = (34, 18)  # row order of both tables in the paper
