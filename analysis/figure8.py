"""Figure 8 of Mishkin et al. (2017): top-1 accuracy vs batch size, one line per learning-rate rule
(fixed / linear / sqrt scaling), mean +- standard deviation over seeds.

    python -m analysis.figure8 --root=SWEEP_DIR_OR_RUNS_CSV --out=fig8.png
        [--metric=final|best] [--reference=auto|always|never]

Writes fig8.png, fig8.pdf and fig8.json (the plotted table). The accuracy is each run's
`final_eval_accuracy` (the end of the fixed budget, as in the paper) or `best_eval_accuracy`;
diverged and unfinished runs are left out of the means and counted (numbers:
`analysis.figures.data.figure8_table`). Mishkin et al.'s published numbers
(`analysis/reference/mishkin2017_fig8.csv`, CaffeNet-128 on ImageNet) are overlaid when the runs
are theirs (model caffenet128 on imagenet2012; `--reference=auto`), or always / never.
"""
from __future__ import annotations

import os
import sys

import pandas as pd

from analysis.figures import cli, data, plotting
from analysis.figures.sweep import FigureError, Sweep

PROG = "analysis.figure8"
FEW_SEEDS = 3   # up to this many seeds per point: draw the seeds, not mean ± std bars
REFERENCE_CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference",
                             "mishkin2017_fig8.csv")


def add_arguments(parser) -> None:
    cli.add_metric(parser)
    parser.add_argument("--reference", default="auto", choices=("auto", "always", "never"),
                        help="overlay Mishkin et al.'s numbers: when the runs are theirs "
                             "(caffenet128 on imagenet2012), always, or never")


def read_reference(path: str = REFERENCE_CSV) -> pd.DataFrame:
    """Mishkin et al. (2017) Fig. 8: batch_size, lr_scaling, top1_accuracy (a fraction)."""
    return pd.read_csv(path)


def compute(sweep: Sweep, metric: str = "final", reference: str = "auto") -> dict:
    table = data.figure8_table(sweep.runs, metric)
    if table["n"].sum() == 0:
        statuses = sweep.runs["status"].value_counts().to_dict()
        raise FigureError(f"no finished run with a {data.METRICS[metric]} in {sweep.root} (run "
                          f"statuses: {statuses}); Figure 8 needs runs that completed their "
                          "budget")
    overlay = reference == "always" or (reference == "auto" and data.is_mishkin_sweep(sweep.runs))
    return {"metric": data.METRICS[metric], "table": table,
            "reference": read_reference() if overlay else None,
            "reference_source": "analysis/reference/mishkin2017_fig8.csv" if overlay else None}


def plot(numbers: dict, source: str):
    table, reference = numbers["table"], numbers["reference"]
    fig, axes = plotting.new_figure(width=6.8, height=4.6)
    ax = axes[0, 0]
    order = {"none": 0, "linear": 1, "sqrt": 2}
    rules = sorted(table["rule"].unique(), key=lambda r: (order.get(r, 3), r))
    for i, rule in enumerate(rules):
        rows = table[(table["rule"] == rule) & (table["n"] > 0)].sort_values("batch_size")
        style = plotting.rule_style(rule, i)
        tuned = " (lr tuned per B)" if (rows["learning_rates_tried"] > 1).any() else ""
        if rows["n"].max() <= FEW_SEEDS:
            # Few seeds: every seed's value, and the mean as a line (a std of 2-3 values says
            # little and its bars can run past accuracy 1).
            ax.plot(rows["batch_size"], rows["mean"], marker="_", ms=10, color=style["color"],
                    label=style["label"] + tuned + " (mean; dots: seeds)")
            for _, row in rows.iterrows():
                ax.plot([row["batch_size"]] * len(row["values"]), row["values"], ls="none",
                        marker="o", ms=3.5, alpha=0.7, color=style["color"])
        else:
            ax.errorbar(rows["batch_size"], rows["mean"], yerr=rows["std"].fillna(0.0),
                        marker="o", capsize=3, color=style["color"], label=style["label"] + tuned)
    if reference is not None:
        for i, (rule, rows) in enumerate(reference.groupby("lr_scaling", sort=False)):
            style = plotting.rule_style(rule, i)
            rows = rows.sort_values("batch_size")
            ax.plot(rows["batch_size"], rows["top1_accuracy"], ls="--", marker="s", ms=4,
                    color=style["color"], alpha=0.6,
                    label=f"Mishkin et al. 2017, {style['label']}")
    diverged = table[table["diverged"] > 0]
    for _, row in diverged.iterrows():
        ax.annotate(f"{int(row['diverged'])} diverged", (row["batch_size"], 0.02),
                    xycoords=("data", "axes fraction"), fontsize=7, color="tab:red",
                    ha="center")
    batch_sizes = list(table["batch_size"]) + (list(reference["batch_size"])
                                               if reference is not None else [])
    plotting.batch_axis(ax, batch_sizes)
    ax.set_ylabel(f"top-1 accuracy ({numbers['metric']})")
    ax.legend(fontsize=8)
    n = table.loc[table["n"] > 0, "n"]
    seeds = f"{n.min()}" if n.min() == n.max() else f"{n.min()}–{n.max()}"
    spread = "mean and each seed" if n.max() <= FEW_SEEDS else "mean ± std over seeds"
    plotting.finish(fig, f"Accuracy vs batch size per learning-rate rule ({spread}, n = {seeds})",
                    f"source: {source}")
    return fig


def headlines(table: pd.DataFrame) -> list[str]:
    lines = []
    order = {"none": 0, "linear": 1, "sqrt": 2}
    for rule in sorted(table["rule"].unique(), key=lambda r: (order.get(r, 3), r)):
        rows = table[(table["rule"] == rule) & (table["n"] > 0)]
        if rows.empty:
            continue
        best = rows.loc[rows["mean"].idxmax()]
        largest = rows.loc[rows["batch_size"].idxmax()]
        lines.append(f"{rule}: best mean accuracy {best['mean']:.4f} at B={best['batch_size']}; "
                     f"{largest['mean']:.4f} at the largest B={largest['batch_size']}")
    return lines


def make(sweep: Sweep, metric: str = "final", reference: str = "auto") -> plotting.FigureResult:
    numbers = compute(sweep, metric, reference)
    table = numbers["table"]
    notes = []
    left_out = int(table["diverged"].sum() + table["incomplete"].sum())
    if left_out:
        notes.append(f"{int(table['diverged'].sum())} diverged and "
                     f"{int(table['incomplete'].sum())} unfinished run(s) are left out of the "
                     "means")
    if (table["learning_rates_tried"] > 1).any():
        notes.append("some (rule, batch size) cells hold several learning rates: the one with the "
                     "best mean accuracy is plotted (column learning_rate)")
    result = plotting.FigureResult(
        "figure8", "Top-1 accuracy vs batch size (Mishkin et al. 2017, Fig. 8)",
        plot(numbers, sweep.describe()), numbers,
        # The report's table: `rule` is lr_scaling with None as 'none'; the seeds are in min/max.
        tables={"accuracy by rule and batch size": table.drop(columns=["lr_scaling", "values"])},
        headlines=headlines(table), notes=notes)
    if numbers["reference"] is not None:
        result.tables["Mishkin et al. 2017, Fig. 8 (published)"] = numbers["reference"]
    return result


def main(argv: list[str] | None = None) -> int:
    return cli.main(PROG, __doc__, add_arguments, make, argv)


if __name__ == "__main__":
    sys.exit(main())
