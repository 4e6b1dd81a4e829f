"""The numbers the figures plot: pure functions of tables (pandas DataFrames) and dicts.

Nothing here reads files or draws; `analysis/figures/sweep.py` reads, the figure modules draw.
Every function says what it computes and cites the paper it follows; tests/test_figures.py checks
each against hand-computed values.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from analysis import collect
from bsgap.critical_batch import fit_critical_batch, fitted_steps  # noqa: F401 (re-exported)

# Statuses whose accuracy is a result at the run's budget (a diverged run's last accuracy is not;
# an 'incomplete' run has not finished its budget).
FINISHED_OK = ("complete", "early_stopped", "target_reached")
METRICS = {"final": "final_eval_accuracy", "best": "best_eval_accuracy"}

# Shallue et al. (2018) regimes, read off the fitted S(B) = S_min (1 + B_crit / B): its local
# slope d log S / d log B = -B_crit / (B + B_crit) is -0.8 at B = B_crit / 4 (below: close to
# perfect scaling, slope -1) and -0.2 at B = 4 B_crit (above: steps hardly fall any more, the
# maximal-data-parallelism regime); in between, diminishing returns.
PERFECT_SLOPE, MAXIMAL_SLOPE = -0.8, -0.2


def _num(value) -> float | None:
    """A plain float, or None for missing / NaN (for JSON)."""
    if value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def records(frame: pd.DataFrame) -> list[dict]:
    """A DataFrame as JSON-safe records (NaN -> None, numpy scalars -> Python)."""
    out = []
    for row in frame.to_dict("records"):
        clean = {}
        for k, v in row.items():
            if isinstance(v, (np.integer,)):
                v = int(v)
            elif isinstance(v, (float, np.floating)):
                v = _num(v)
            elif isinstance(v, (np.bool_,)):
                v = bool(v)
            clean[k] = v
        out.append(clean)
    return out


# ----------------------------------------------------------------------------- figure 8
def rule_label(runs: pd.DataFrame) -> pd.Series:
    """The line a run belongs to in Figure 8: its lr rule (`lr_scaling`: none = fixed, linear,
    sqrt)."""
    return runs["lr_scaling"].fillna("none").astype(str)


def figure8_table(runs: pd.DataFrame, metric: str = "final") -> pd.DataFrame:
    """Mishkin et al. (2017, Fig. 8): top-1 accuracy per (lr rule, batch size), mean and standard
    deviation over seeds.

    `metric`: 'final' (final_eval_accuracy, the accuracy at the end of the fixed budget, the
    paper's number) or 'best' (best_eval_accuracy). Runs with status complete / early_stopped /
    target_reached count; diverged and incomplete runs do not (their counts are columns).
    `std` is the sample standard deviation (ddof = 1; NaN for one seed).

    When a (rule, batch size) holds several learning rates (a sweep over base learning rates, or
    one with the lr given per trial), each learning rate is averaged over its seeds and the best
    mean is kept -- the lr tuned per batch size -- with `learning_rates_tried` > 1 (filter the
    table first to draw one line per base lr).

    Columns: rule, lr_scaling, batch_size, learning_rate, mean, std, min, max, values (the
    seeds' accuracies at that learning rate, sorted), n, diverged, incomplete,
    learning_rates_tried.
    """
    column = METRICS[metric]
    runs = runs.assign(rule=rule_label(runs))
    rows = []
    for (rule, batch), group in runs.groupby(["rule", "batch_size"], sort=True):
        ok = group[group["status"].isin(FINISHED_OK) & group[column].notna()]
        per_lr = []
        for lr, trials in ok.groupby("learning_rate", sort=True):
            values = trials[column].astype(float)
            per_lr.append((values.mean(), -float(lr), float(lr), values))
        row = {"rule": rule, "lr_scaling": group["lr_scaling"].iloc[0],
               "batch_size": int(batch), "learning_rate": math.nan, "mean": math.nan,
               "std": math.nan, "min": math.nan, "max": math.nan, "values": [], "n": 0,
               "diverged": int((group["status"] == "diverged").sum()),
               "incomplete": int((group["status"] == "incomplete").sum()),
               "learning_rates_tried": len(per_lr)}
        if per_lr:
            # Highest mean; ties -> the smaller learning rate.
            mean, _, lr, values = max(per_lr, key=lambda t: (t[0], t[1]))
            row.update(learning_rate=lr, mean=float(mean),
                       std=float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                       min=float(values.min()), max=float(values.max()),
                       values=sorted(float(v) for v in values), n=int(len(values)))
        rows.append(row)
    return pd.DataFrame(rows, columns=["rule", "lr_scaling", "batch_size", "learning_rate",
                                       "mean", "std", "min", "max", "values", "n", "diverged",
                                       "incomplete", "learning_rates_tried"])


def is_mishkin_sweep(runs: pd.DataFrame) -> bool:
    """The runs are Mishkin et al.'s setup (CaffeNet-128 on ImageNet), so their published numbers
    are comparable."""
    if "model" not in runs.columns or "dataset" not in runs.columns:
        return False
    models = set(runs["model"].dropna().astype(str))
    datasets = set(runs["dataset"].dropna().astype(str))
    return models == {"caffenet128"} and bool(datasets) and all(
        d.startswith("imagenet2012") for d in datasets)


# ----------------------------------------------------------------------------- steps to target
def steps_to_target_table(frame: pd.DataFrame, target: float) -> pd.DataFrame:
    """Shallue et al. (2018): per batch size, the fewest steps any of its trials (every learning
    rate and seed) needed to reach `target` -- the first evaluation at or above it -- and
    examples = steps x B, with that trial's run, learning rate, rule and seed
    (`analysis.collect.steps_to_target_by_batch_size`; ties: fewer seconds, then run name).

    `frame` is `sweep.runs_at_target`'s table (with `steps_to_<target>` columns). Adds
    `min_seconds_to_target` (the fewest training seconds any trial of B needed) and
    `min_seconds_run` (that trial).
    """
    table = collect.steps_to_target_by_batch_size(frame, target)
    seconds_col = collect.target_column("seconds", target)
    table["min_seconds_run"] = None
    for i, row in table.iterrows():
        trials = frame[(frame["batch_size"] == row["batch_size"]) & frame[seconds_col].notna()]
        if len(trials):
            best = trials.sort_values([seconds_col, "run"], kind="stable").iloc[0]
            table.at[i, "min_seconds_to_target"] = float(best[seconds_col])
            table.at[i, "min_seconds_run"] = best["run"]
        else:
            table.at[i, "min_seconds_to_target"] = math.nan
    for col in ("steps_to_target", "examples_to_target", "seconds_to_target",
                "min_seconds_to_target", "learning_rate"):
        table[col] = pd.to_numeric(table[col], errors="coerce").astype(float)
    table["batch_size"] = table["batch_size"].astype(int)
    return table


def scaling_regimes(fit: dict) -> dict | None:
    """Shallue et al. (2018) regimes from the fitted S(B): perfect scaling for B <= B_crit / 4,
    maximal data parallelism for B >= 4 B_crit, diminishing returns between (see PERFECT_SLOPE).
    None without a fit."""
    if not fit or fit.get("b_crit") is None:
        return None
    b_crit = fit["b_crit"]
    return {"perfect_scaling_below": b_crit / 4.0, "maximal_parallelism_above": 4.0 * b_crit,
            "definition": "local slope d log S / d log B of the fit = -B_crit / (B + B_crit): "
                          f"<= {PERFECT_SLOPE} perfect scaling, >= {MAXIMAL_SLOPE} maximal data "
                          "parallelism, between: diminishing returns"}


def regime_of_slope(slope: float) -> str:
    if slope <= PERFECT_SLOPE:
        return "perfect scaling"
    if slope >= MAXIMAL_SLOPE:
        return "maximal data parallelism"
    return "diminishing returns"


def measured_slopes(table: pd.DataFrame) -> pd.DataFrame:
    """Between consecutive batch sizes that reached the target: the measured slope
    log(S2/S1) / log(B2/B1) (-1 = perfect scaling: doubling B halves the steps) and its regime."""
    reached = table[table["steps_to_target"].notna()].sort_values("batch_size")
    rows = []
    for (_, a), (_, b) in zip(reached.iterrows(), list(reached.iterrows())[1:]):
        slope = (math.log(b["steps_to_target"] / a["steps_to_target"])
                 / math.log(b["batch_size"] / a["batch_size"]))
        rows.append({"from_batch_size": int(a["batch_size"]), "to_batch_size": int(b["batch_size"]),
                     "slope": slope, "regime": regime_of_slope(slope)})
    return pd.DataFrame(rows, columns=["from_batch_size", "to_batch_size", "slope", "regime"])


# ----------------------------------------------------------------------------- time to accuracy
def throughput_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Computational speed per batch size: mean, sample std (ddof = 1) and count of the runs'
    steady-state `examples_per_second` (every run with a value, whatever its status: the rate is
    a property of B and the hardware). Vmapped trials report the shared program's rate."""
    rows = []
    for batch, group in runs.groupby("batch_size", sort=True):
        values = pd.to_numeric(group["examples_per_second"], errors="coerce").dropna()
        rows.append({"batch_size": int(batch),
                     "examples_per_second": float(values.mean()) if len(values) else math.nan,
                     "examples_per_second_std": (float(values.std(ddof=1)) if len(values) > 1
                                                 else math.nan),
                     "n": int(len(values))})
    return pd.DataFrame(rows, columns=["batch_size", "examples_per_second",
                                       "examples_per_second_std", "n"])


def time_to_accuracy_table(steps_table: pd.DataFrame, throughput: pd.DataFrame) -> pd.DataFrame:
    """Per batch size: the measured training seconds to the target of its fastest trial
    (`seconds_to_target` = min over the trials that reached it), the examples/s, and the
    estimate DESIGN.md question 3 writes down, steps_to_target(B) x B / examples_per_second(B)
    (fewest steps over trials at the mean steady-state rate)."""
    table = steps_table[["batch_size", "trials", "trials_reaching", "steps_to_target",
                         "min_seconds_to_target", "min_seconds_run"]].rename(
        columns={"min_seconds_to_target": "seconds_to_target", "min_seconds_run": "run"})
    table = table.merge(throughput, on="batch_size", how="left")
    table["estimated_seconds"] = (table["steps_to_target"] * table["batch_size"]
                                  / table["examples_per_second"])
    return table


def fastest_batch_size(table: pd.DataFrame, column: str = "seconds_to_target") -> dict | None:
    """The batch size with the fewest seconds to the target (ties: the smaller B), or None."""
    reached = table[table[column].notna()]
    if reached.empty:
        return None
    best = reached.sort_values([column, "batch_size"], kind="stable").iloc[0]
    return {"batch_size": int(best["batch_size"]), "seconds": float(best[column]),
            "run": best.get("run") if column == "seconds_to_target" else None}


def saturation_batch_size(throughput: pd.DataFrame, fraction: float = 0.9) -> dict | None:
    """Where computational speed saturates: the smallest batch size whose mean examples/s is at
    least `fraction` of the highest mean over batch sizes."""
    valid = throughput[throughput["examples_per_second"].notna()].sort_values("batch_size")
    if valid.empty:
        return None
    peak = valid.loc[valid["examples_per_second"].idxmax()]
    first = valid[valid["examples_per_second"] >= fraction * peak["examples_per_second"]].iloc[0]
    return {"batch_size": int(first["batch_size"]), "fraction": fraction,
            "examples_per_second": float(first["examples_per_second"]),
            "peak_batch_size": int(peak["batch_size"]),
            "peak_examples_per_second": float(peak["examples_per_second"])}


# ----------------------------------------------------------------------------- sharpness
def curvature_quantities(record: dict) -> dict:
    """The scalar results of one analysis.curvature JSON: 'top_eigenvalue' (the largest of
    metrics.top_eigs.eigenvalues), 'eps_sharpness@<eps>' for every Keskar box size,
    'hessian_trace', 'sam_sharpness@<rho>', 'b_simple' (exact, per-example)."""
    metrics = record.get("metrics", {}) or {}
    out = {}
    eigs = (metrics.get("top_eigs") or {}).get("eigenvalues")
    if eigs:
        out["top_eigenvalue"] = float(max(eigs))
    for value in (metrics.get("eps_sharpness") or {}).get("values", []):
        if value.get("sharpness") is not None:
            out[f"eps_sharpness@{value['epsilon']:g}"] = float(value["sharpness"])
    trace = (metrics.get("trace") or {}).get("trace")
    if trace is not None:
        out["hessian_trace"] = float(trace)
    for value in (metrics.get("sam") or {}).get("values", []):
        if value.get("sharpness") is not None:
            out[f"sam_sharpness@{value['rho']:g}"] = float(value["sharpness"])
    b_simple = (metrics.get("noise_scale") or {}).get("b_simple")
    if b_simple is not None:
        out["b_simple"] = float(b_simple)
    return out


def sharpness_table(measurements: pd.DataFrame) -> pd.DataFrame:
    """Keskar et al. (2017, Table 2) as a function of batch size: per (quantity, lr rule, batch
    size) the mean, sample std (ddof = 1) and count over the runs measured. `measurements` has
    columns run, batch_size, quantity, value and optionally lr_scaling (runs of different rules
    are never averaged together: a fixed-lr and a linearly scaled B=2048 differ by 30x in
    sharpness in this project's study)."""
    if "lr_scaling" not in measurements.columns:
        measurements = measurements.assign(lr_scaling="")
    measurements = measurements.assign(lr_scaling=measurements["lr_scaling"].fillna("").astype(str))
    rows = []
    for (quantity, rule, batch), group in measurements.groupby(
            ["quantity", "lr_scaling", "batch_size"], sort=True):
        values = group["value"].astype(float)
        rows.append({"quantity": quantity, "lr_scaling": rule, "batch_size": int(batch),
                     "mean": float(values.mean()),
                     "std": float(values.std(ddof=1)) if len(values) > 1 else math.nan,
                     "n": int(len(values))})
    return pd.DataFrame(rows, columns=["quantity", "lr_scaling", "batch_size", "mean", "std", "n"])


def interpolation_summary(record: dict) -> dict:
    """The numbers of one analysis.interpolate JSON: the two runs' batch sizes, and the barrier
    along the segment 0 <= alpha <= 1 -- max train / test loss on it minus the larger endpoint
    loss (0 when the loss is monotone between them; Keskar et al. 2017, Fig. 3)."""
    alphas = np.asarray(record["alphas"], dtype=float)
    out = {"a_batch_size": record["a"].get("batch_size"), "b_batch_size": record["b"].get("batch_size"),
           "a_run": record["a"].get("workdir"), "b_run": record["b"].get("workdir"),
           "bn_stats": record.get("bn_stats"), "distance": record.get("distance"),
           "points": int(len(alphas))}
    inside = (alphas >= 0) & (alphas <= 1)
    for split in ("train", "test"):
        loss = np.asarray(record.get(f"{split}_loss", []), dtype=float)
        if len(loss) != len(alphas) or not inside.any():
            out[f"{split}_barrier"] = None
            continue
        ends = [loss[i] for i in (int(np.argmin(np.abs(alphas))), int(np.argmin(np.abs(alphas - 1))))]
        out[f"{split}_barrier"] = float(np.max(loss[inside]) - max(ends))
    return out


# ----------------------------------------------------------------------------- noise scale
def b_simple_curves(points: pd.DataFrame) -> pd.DataFrame:
    """B_simple over training per batch size (McCandlish et al. 2018, App. A.1, the trainer's
    online two-batch estimate): at every logged step, the mean over that batch size's runs.
    `points` has columns run, batch_size, step, examples, b_simple."""
    if points.empty:
        return pd.DataFrame(columns=["batch_size", "step", "examples", "b_simple", "n"])
    grouped = points.groupby(["batch_size", "step"], sort=True)
    table = grouped.agg(examples=("examples", "first"), b_simple=("b_simple", "mean"),
                        n=("b_simple", "size")).reset_index()
    table["batch_size"] = table["batch_size"].astype(int)
    return table


def smith_le_table(runs: pd.DataFrame, metric: str = "final") -> pd.DataFrame:
    """Smith & Le (2018): the noise scale g = lr (N / B - 1) / (1 - m) of each finished run
    (`bsgap.scaling.smith_le_noise_scale`: scaled peak learning rate, N training examples, batch
    size B, momentum m) against its accuracy (`metric` as in figure8_table). `runs` needs
    `num_train_examples` and `smith_le_momentum` columns (analysis.noise_scale reads them from
    config.json); runs without them (adam/adamw have no m), diverged or incomplete are left out."""
    from bsgap.scaling import smith_le_noise_scale

    column = METRICS[metric]
    ok = runs[runs["status"].isin(FINISHED_OK) & runs[column].notna()
              & runs["num_train_examples"].notna() & runs["smith_le_momentum"].notna()].copy()
    ok["noise_scale"] = smith_le_noise_scale(
        ok["learning_rate"].astype(float), ok["num_train_examples"].astype(float),
        ok["batch_size"].astype(float), ok["smith_le_momentum"].astype(float))
    ok["accuracy"] = ok[column].astype(float)
    return ok[["run", "batch_size", "lr_scaling", "learning_rate", "num_train_examples",
               "smith_le_momentum", "noise_scale", "accuracy"]].reset_index(drop=True)


def spearman(x, y) -> float:
    """Spearman rank correlation (average ranks for ties) of two equal-length columns."""
    return float(pd.Series(list(x)).rank().corr(pd.Series(list(y)).rank()))
