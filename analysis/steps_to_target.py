"""Steps and examples to a target accuracy vs batch size (Shallue et al. 2018, Fig. 1), log-log,
with the perfect-scaling line, the scaling regimes, and the critical batch size of McCandlish et
al. (2018) fitted to the measured points.

    python -m analysis.steps_to_target --root=SWEEP_DIR_OR_RUNS_CSV --out=steps.png
        [--target=0.9[,0.8,...]]

Per batch size B: the fewest steps any of its trials (every learning rate and seed) took to reach
the target -- the first evaluation at or above it -- and examples = steps x B
(`analysis.figures.data.steps_to_target_table`). Perfect scaling (doubling B halves the steps)
is the line S(B0) B0 / B through the smallest batch size that reached the target.

Critical batch size: McCandlish et al.'s (S/S_min - 1)(E/E_min - 1) = 1 with E = B S gives
S = S_min (1 + B_crit/B), B_crit = E_min / S_min; S_min and B_crit are fitted by least squares on
log S (`data.fit_critical_batch`) and reported in the figure, on stdout and in the JSON. The
regimes are read off the fit: perfect scaling for B <= B_crit/4, maximal data parallelism for
B >= 4 B_crit (local slope of the fit -0.8 and -0.2), diminishing returns between; the measured
slope between consecutive batch sizes is tabulated too.

Writes steps.png, steps.pdf and steps.json. Exit 2 when no run reached any target tried (the
message names them).
"""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from analysis.figures import cli, data, plotting
from analysis.figures.sweep import Sweep, choose_target

PROG = "analysis.steps_to_target"
REGIME_COLORS = {"perfect scaling": "tab:green", "diminishing returns": "gold",
                 "maximal data parallelism": "tab:red"}


def add_arguments(parser) -> None:
    cli.add_target(parser)


def compute(sweep: Sweep, target: list[float] | None = None) -> dict:
    chosen, frame, info = choose_target(sweep, target)
    table = data.steps_to_target_table(frame, chosen)
    reached = table[table["steps_to_target"].notna()]
    fit = data.fit_critical_batch(reached["batch_size"], reached["steps_to_target"])
    regimes = data.scaling_regimes(fit) if fit.get("b_crit") and not fit["at_bound"] else None
    return {"target_accuracy": chosen, "target_choice": info, "table": table,
            "critical_batch": fit, "regimes": regimes, "slopes": data.measured_slopes(table)}


def _shade(ax, regimes: dict | None, lo: float, hi: float) -> None:
    if not regimes:
        return
    a, b = regimes["perfect_scaling_below"], regimes["maximal_parallelism_above"]
    spans = [("perfect scaling", lo, min(a, hi)), ("diminishing returns", max(a, lo), min(b, hi)),
             ("maximal data parallelism", max(b, lo), hi)]
    for name, x0, x1 in spans:
        if x1 > x0:
            ax.axvspan(x0, x1, color=REGIME_COLORS[name], alpha=0.08, label=f"regime: {name}")


def _loo_text(fit: dict) -> str:
    loo = fit.get("b_crit_leave_one_out")
    return f" (leave one B out: {loo[0]:.3g}–{loo[1]:.3g})" if loo else ""


def plot(numbers: dict, source: str):
    table, fit, regimes = numbers["table"], numbers["critical_batch"], numbers["regimes"]
    reached = table[table["steps_to_target"].notna()].sort_values("batch_size")
    missing = table[table["steps_to_target"].isna()]
    fig, axes = plotting.new_figure(ncols=2, width=5.6, height=4.4)
    batch_sizes = table["batch_size"].astype(float)
    lo, hi = batch_sizes.min() / 1.5, batch_sizes.max() * 1.5
    grid = np.geomspace(lo, hi, 200)
    b0 = reached.iloc[0]
    panels = [("steps_to_target", "steps to target", b0["steps_to_target"] * b0["batch_size"] / grid,
               lambda f, g: data.fitted_steps(f, g)),
              ("examples_to_target", "examples to target", np.full_like(grid, b0["examples_to_target"]),
               lambda f, g: data.fitted_steps(f, g) * g)]
    for ax, (column, label, perfect, fitted) in zip(axes[0], panels):
        _shade(ax, regimes, lo, hi)
        ax.plot(grid, perfect, color="0.4", ls=":", lw=1.2, label="perfect scaling")
        if fit.get("b_crit"):
            ax.plot(grid, fitted(fit, grid), color="tab:purple", ls="--", lw=1.2,
                    label="fit: S = S_min (1 + B_crit / B)")
            ax.axvline(fit["b_crit"], color="tab:purple", lw=0.8, alpha=0.6,
                       label=f"B_crit ≈ {fit['b_crit']:.3g}" + _loo_text(fit))
        ax.plot(reached["batch_size"], reached[column], "o-", color="tab:blue",
                label="best trial per B")
        if len(missing):
            ax.plot(missing["batch_size"], np.full(len(missing), reached[column].max()), "x",
                    color="tab:red", label="no trial reached the target")
        ax.set_yscale("log")
        plotting.batch_axis(ax, batch_sizes)
        ax.set_xlim(lo, hi)
        ax.set_ylabel(label)
    axes[0, 0].legend(fontsize=7, loc="upper right")
    if fit.get("b_crit"):
        text = (f"B_crit = E_min / S_min ≈ {fit['b_crit']:.4g}{_loo_text(fit)}\n"
                f"S_min ≈ {fit['s_min']:.4g} steps\nE_min ≈ {fit['e_min']:.4g} examples\n"
                f"fit over {fit['n_points']} batch sizes")
        if fit["at_bound"]:
            text += "\n(at the search bound: not identified)"
    else:
        text = "no critical-batch fit:\n" + fit.get("reason", "")
    axes[0, 1].text(0.03, 0.97, text, transform=axes[0, 1].transAxes, va="top", fontsize=8,
                    bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "0.7"})
    plotting.finish(fig, f"Steps and examples to {numbers['target_accuracy']:g} accuracy vs "
                         "batch size (Shallue et al. 2018; fit: McCandlish et al. 2018)",
                    f"source: {source}")
    return fig


def headlines(numbers: dict) -> list[str]:
    table, fit = numbers["table"], numbers["critical_batch"]
    target = numbers["target_accuracy"]
    parts = [f"B={int(r.batch_size)}: {int(r.steps_to_target)}" if pd.notna(r.steps_to_target)
             else f"B={int(r.batch_size)}: not reached" for r in table.itertuples()]
    lines = [f"steps to {target:g} accuracy (best trial per batch size): " + ", ".join(parts)]
    if fit.get("b_crit"):
        lines.append(f"critical batch size B_crit ≈ {fit['b_crit']:.4g} (S_min ≈ {fit['s_min']:.4g} "
                     f"steps, E_min ≈ {fit['e_min']:.4g} examples; least squares on log S over "
                     f"{fit['n_points']} batch sizes, rms log residual "
                     f"{fit['rms_log_residual']:.3g}"
                     + (f"; {_loo_text(fit).strip(' ()')}" if _loo_text(fit) else "") + ")"
                     + (" -- at the search bound, not identified by these batch sizes"
                        if fit["at_bound"] else ""))
    else:
        lines.append(f"critical batch size: not fitted ({fit.get('reason')})")
    if numbers["regimes"]:
        r = numbers["regimes"]
        lines.append(f"regimes (from the fit): perfect scaling below B ≈ "
                     f"{r['perfect_scaling_below']:.4g}, maximal data parallelism above B ≈ "
                     f"{r['maximal_parallelism_above']:.4g}")
    return lines


def make(sweep: Sweep, target: list[float] | None = None) -> plotting.FigureResult:
    numbers = compute(sweep, target)
    table = numbers["table"]
    notes = [f"B={int(r.batch_size)}: none of {int(r.trials)} trial(s) reached "
             f"{numbers['target_accuracy']:g}" for r in table.itertuples()
             if pd.isna(r.steps_to_target)]
    tried = numbers["target_choice"]["tried"]
    if len(tried) > 1:
        notes.append("targets tried before one was reached: "
                     + ", ".join(f"{t['target']:g} ({t['runs_reaching']} runs)" for t in tried))
    shown = table[["batch_size", "trials", "trials_reaching", "steps_to_target",
                   "examples_to_target", "run", "learning_rate", "lr_scaling", "seed"]]
    return plotting.FigureResult(
        "steps_to_target", f"Steps and examples to {numbers['target_accuracy']:g} accuracy",
        plot(numbers, sweep.describe()), numbers,
        tables={"steps to target per batch size (best trial)": shown,
                "measured slope between batch sizes": numbers["slopes"]},
        headlines=headlines(numbers), notes=notes)


def main(argv: list[str] | None = None) -> int:
    return cli.main(PROG, __doc__, add_arguments, make, argv)


if __name__ == "__main__":
    sys.exit(main())
