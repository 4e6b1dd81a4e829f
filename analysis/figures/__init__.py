"""Shared pieces of the figure scripts (`analysis/figure8.py`, `steps_to_target.py`,
`time_to_accuracy.py`, `sharpness.py`, `noise_scale.py`, `report.py`, `all.py`).

- `sweep`: where the numbers come from -- a sweep directory of run directories (read with
  `analysis.collect`), or a `runs.csv` written by `analysis.collect` (with the run directories'
  small files beside it when they are there) -- and the target accuracy a figure uses.
- `data`: the numbers each figure plots, as pure functions of DataFrames / dicts (tested against
  hand-computed values in tests/test_figures.py).
- `plotting`: matplotlib (Agg) helpers: the log2 batch-size axis, PNG + PDF + JSON output.
- `cli`: the common command line (`--root`, `--out`, `--target`) and the exit-2 error paragraph.
"""
