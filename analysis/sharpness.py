"""Sharpness vs batch size (Keskar et al. 2017, Table 2 as a figure) and the loss along the line
between a small-batch and a large-batch solution (their Fig. 3).

    python -m analysis.sharpness --root=SWEEP_DIR_OR_RUNS_CSV --out=sharpness.png

Reads what `analysis.curvature` and `analysis.interpolate` wrote, never a checkpoint:
- every run's `analysis/curvature_<step>[-n].json`: of the complete ones (`"complete": true`) the
  latest step, and at that step the latest result (largest n). From it: the Keskar eps-sharpness
  of every box size epsilon, the top Hessian eigenvalue, and when measured the Hutchinson trace,
  SAM rho-sharpness and exact B_simple (`analysis.figures.data.curvature_quantities`). Per lr
  rule and batch size: mean +- std (ddof = 1) over the runs measured (`data.sharpness_table`;
  one line per rule when the runs measured have several).
- every complete `interpolation_*.json` in an `analysis/` directory under the root: the one whose
  two runs' batch sizes differ most is plotted (train solid, test dashed; cross-entropy on the
  left axis, accuracy on the right), its barrier -- the highest loss on 0 <= alpha <= 1 above the
  higher endpoint -- reported (`data.interpolation_summary`).

Writes sharpness.png, sharpness.pdf and sharpness.json. Exit 2 when the root holds neither.
"""
from __future__ import annotations

import os
import sys

import pandas as pd

from analysis.figures import cli, data, plotting
from analysis.figures.sweep import FigureError, Sweep, curvature_step, read_json

PROG = "analysis.sharpness"


def add_arguments(parser) -> None:
    pass


def latest_curvature(paths: list[str]) -> tuple[str | None, dict | None, int]:
    """(path, record, incomplete files skipped) of the latest complete curvature result."""
    complete, skipped = [], 0
    for path in paths:
        record = read_json(path)
        if record is None or not record.get("complete"):
            skipped += 1
            continue
        complete.append((curvature_step(path), path, record))
    if not complete:
        return None, None, skipped
    _, path, record = max(complete, key=lambda t: t[0])
    return path, record, skipped


def compute(sweep: Sweep) -> dict:
    rows, sources, skipped = [], [], 0
    for run in sweep.runs.itertuples():
        path, record, n_skipped = latest_curvature(sweep.analysis_files(run.run, "curvature_"))
        skipped += n_skipped
        if record is None:
            continue
        step = record.get("run", {}).get("step")
        sources.append({"run": run.run, "batch_size": int(run.batch_size), "step": step,
                        "file": os.path.relpath(path, sweep.files_dir)})
        rule = getattr(run, "lr_scaling", "")
        rule = "" if not isinstance(rule, str) else rule
        for quantity, value in data.curvature_quantities(record).items():
            rows.append({"run": run.run, "batch_size": int(run.batch_size), "lr_scaling": rule,
                         "step": step, "quantity": quantity, "value": value})
    measurements = pd.DataFrame(rows, columns=["run", "batch_size", "lr_scaling", "step",
                                               "quantity", "value"])
    lines = []
    for path in sweep.find_files("interpolation_"):
        record = read_json(path)
        if record and record.get("complete") and record.get("alphas"):
            summary = data.interpolation_summary(record)
            summary["file"] = os.path.relpath(path, sweep.files_dir)
            lines.append((record, summary))
    if measurements.empty and not lines:
        where = sweep.files_dir or f"{sweep.root} (a CSV with no run directories beside it)"
        raise FigureError(
            f"no complete analysis/curvature_<step>.json and no interpolation_*.json under "
            f"{where}{f' ({skipped} incomplete curvature file(s) skipped)' if skipped else ''}; "
            "measure some first: python -m analysis.curvature --run=RUN_DIR "
            "--metrics=top_eigs,eps_sharpness, and python -m analysis.interpolate --a=SMALL_BATCH_RUN "
            "--b=LARGE_BATCH_RUN")

    def ratio(item):
        s = item[1]
        a, b = s["a_batch_size"] or 1, s["b_batch_size"] or 1
        return max(a, b) / min(a, b)
    chosen = max(lines, key=ratio) if lines else None
    return {"measurements": measurements, "table": data.sharpness_table(measurements),
            "sources": sources, "incomplete_skipped": skipped,
            "interpolation": chosen[1] if chosen else None,
            "interpolation_curve": ({k: chosen[0].get(k) for k in (
                "alphas", "train_loss", "test_loss", "train_accuracy", "test_accuracy")}
                if chosen else None),
            "interpolations": [s for _, s in lines]}


def _quantity_panel(ax, table: pd.DataFrame, prefix: str, ylabel: str, empty: str) -> None:
    rows = table[table["quantity"].str.startswith(prefix)]
    if rows.empty:
        plotting.message_axis(ax, empty)
        return
    several_rules = rows["lr_scaling"].nunique() > 1
    for i, ((quantity, rule), group) in enumerate(rows.groupby(["quantity", "lr_scaling"],
                                                               sort=True)):
        group = group.sort_values("batch_size")
        parts = [quantity.replace("eps_sharpness@", "ε = ")] if "@" in quantity else []
        parts += [plotting.RULE_NAMES.get(rule, rule)] if several_rules else []
        ax.errorbar(group["batch_size"], group["mean"], yerr=group["std"].fillna(0.0),
                    marker=plotting.RULE_MARKERS.get(rule, "o"), capsize=3, color=f"C{i}",
                    label=", ".join(parts) or None)
    ax.set_yscale("log")
    plotting.batch_axis(ax, rows["batch_size"])
    ax.set_ylabel(ylabel)
    if rows["quantity"].nunique() > 1 or "@" in rows["quantity"].iloc[0] or several_rules:
        ax.legend(fontsize=7)


def _interpolation_panel(ax, curve: dict | None, summary: dict | None) -> None:
    if curve is None:
        plotting.message_axis(ax, "no interpolation_*.json\n(python -m analysis.interpolate "
                                  "--a=SB_RUN --b=LB_RUN)")
        return
    alphas = curve["alphas"]
    ax.plot(alphas, curve["train_loss"], "-", color="tab:blue", label="train loss")
    ax.plot(alphas, curve["test_loss"], "--", color="tab:blue", label="test loss")
    ax.set_yscale("log")
    ax.set_ylabel("cross-entropy", color="tab:blue")
    ax.set_xlabel(f"α: (1−α) θ(B={summary['a_batch_size']}) + α θ(B={summary['b_batch_size']})")
    acc = ax.twinx()
    acc.plot(alphas, curve["train_accuracy"], "-", color="tab:red", label="train accuracy")
    acc.plot(alphas, curve["test_accuracy"], "--", color="tab:red", label="test accuracy")
    acc.set_ylabel("accuracy", color="tab:red")
    for x in (0.0, 1.0):
        ax.axvline(x, color="0.6", lw=0.6, ls=":")
    handles = ax.get_legend_handles_labels()
    more = acc.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], fontsize=7, loc="upper center")


def _count_range(n) -> str:
    low, high = int(n.min()), int(n.max())
    runs = f"{low}" if low == high else f"{low}–{high}"
    return f"{runs} run{'' if high == 1 else 's'}"


def plot(numbers: dict, source: str):
    fig, axes = plotting.new_figure(ncols=3, width=4.6, height=4.2)
    table = numbers["table"]
    _quantity_panel(axes[0, 0], table, "eps_sharpness@", "Keskar ε-sharpness (%)",
                    "no eps_sharpness measured")
    axes[0, 0].set_title("ε-sharpness (Keskar et al. 2017)", fontsize=9)
    _quantity_panel(axes[0, 1], table, "top_eigenvalue", "top Hessian eigenvalue",
                    "no top_eigs measured")
    axes[0, 1].set_title("top Hessian eigenvalue", fontsize=9)
    _interpolation_panel(axes[0, 2], numbers["interpolation_curve"], numbers["interpolation"])
    axes[0, 2].set_title("small-batch ↔ large-batch line", fontsize=9)
    n = table["n"]
    plotting.finish(fig, "Sharpness of the solutions vs batch size"
                    + (f" (mean ± std over {_count_range(n)} per B)" if len(n) else ""),
                    f"source: {source}")
    return fig


def headlines(numbers: dict) -> list[str]:
    lines = []
    table = numbers["table"]
    several_rules = table["lr_scaling"].nunique() > 1
    for (quantity, rule), group in table.groupby(["quantity", "lr_scaling"], sort=True):
        parts = ", ".join(f"B={r.batch_size}: {r.mean:.4g}" for r in group.itertuples())
        lines.append(f"{quantity}{f' ({rule})' if several_rules else ''}: {parts}")
    s = numbers["interpolation"]
    if s:
        def fmt(v):
            return "n/a" if v is None else f"{v:.4g}"
        lines.append(f"interpolation B={s['a_batch_size']} -> B={s['b_batch_size']}: loss barrier "
                     f"on 0 <= alpha <= 1: train {fmt(s['train_barrier'])}, test "
                     f"{fmt(s['test_barrier'])} ({s['file']})")
    return lines


def make(sweep: Sweep) -> plotting.FigureResult:
    numbers = compute(sweep)
    notes = []
    if numbers["incomplete_skipped"]:
        notes.append(f"{numbers['incomplete_skipped']} incomplete or unreadable curvature file(s) "
                     "skipped")
    if len(numbers["interpolations"]) > 1:
        notes.append(f"{len(numbers['interpolations'])} interpolation results found; the pair "
                     "whose batch sizes differ most is plotted, all are in the JSON")
    measured = {s["run"] for s in numbers["sources"]}
    unmeasured = len(sweep.runs) - len(measured)
    if unmeasured and measured:
        notes.append(f"{unmeasured} of {len(sweep.runs)} runs have no complete curvature result")
    return plotting.FigureResult(
        "sharpness", "Sharpness vs batch size and the SB↔LB line",
        plot(numbers, sweep.describe()), numbers,
        tables={"sharpness per batch size (mean over runs)": numbers["table"]},
        headlines=headlines(numbers), notes=notes)


def main(argv: list[str] | None = None) -> int:
    return cli.main(PROG, __doc__, add_arguments, make, argv)


if __name__ == "__main__":
    sys.exit(main())
