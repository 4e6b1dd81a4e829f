"""Gradient noise during training: B_simple over training for each batch size (McCandlish et al.
2018), and final accuracy against the Smith & Le (2018) noise scale lr (N / B - 1) / (1 - m).

    python -m analysis.noise_scale --root=SWEEP_DIR_OR_RUNS_CSV --out=noise.png [--metric=final|best]

Left: the trainer's online B_simple = tr(Sigma) / |G|^2 (two-batch estimators kept as EMAs,
README "Online gradient noise scale"; logged in metrics.jsonl with >= 2 devices or accumulation
microbatches) against examples processed; per batch size the mean over its runs at every logged
step (`analysis.figures.data.b_simple_curves`). A thin dotted line at y = B in the same colour
shows where the batch equals the noise scale. Right: every finished run's accuracy against
g = lr (N / B - 1) / (1 - m) (its scaled peak learning rate, N training examples and momentum m
from config.json, B; `bsgap.scaling.smith_le_noise_scale`), coloured by batch size, one marker
per lr rule (`data.smith_le_table`); adam/adamw runs have no g and are left out with a note.

metrics.jsonl is read only where it is there: from a runs.csv without run directories beside it
the left panel is skipped with a printed note (and the right one needs config.json for N and m,
or `num_train_examples` and `smith_le_momentum` columns). Writes noise.png, noise.pdf and
noise.json; exit 2 when neither panel can be drawn.
"""
from __future__ import annotations

import math
import sys

import pandas as pd

from analysis.figures import cli, data, plotting
from analysis.figures.sweep import FigureError, Sweep

PROG = "analysis.noise_scale"


def add_arguments(parser) -> None:
    cli.add_metric(parser)


def b_simple_points(sweep: Sweep) -> tuple[pd.DataFrame, int, int]:
    """(points run/batch_size/step/examples/b_simple, runs without metrics.jsonl, runs whose
    metrics.jsonl has no b_simple)."""
    rows, missing, without = [], 0, 0
    for run in sweep.runs.itertuples():
        metrics = sweep.metrics(run.run)
        if metrics is None:
            missing += 1
            continue
        found = False
        for record in metrics:
            value = record.get("b_simple")
            if value is None or not math.isfinite(float(value)):
                continue
            found = True
            rows.append({"run": run.run, "batch_size": int(run.batch_size),
                         "step": int(record["step"]),
                         "examples": record.get("examples", record["step"] * int(run.batch_size)),
                         "b_simple": float(value)})
        without += not found
    return (pd.DataFrame(rows, columns=["run", "batch_size", "step", "examples", "b_simple"]),
            missing, without)


def with_noise_scale_inputs(sweep: Sweep) -> pd.DataFrame:
    """The runs table with N (`num_train_examples`) and Smith & Le's momentum m
    (`smith_le_momentum`: 0 for sgd, None for adam/adamw) from each run's config.json when
    available."""
    from bsgap.scaling import smith_le_momentum

    runs = sweep.runs.copy()
    for column in ("num_train_examples", "smith_le_momentum"):
        if column not in runs.columns:
            runs[column] = math.nan
    for i, run in runs.iterrows():
        stored = sweep.config(run["run"]) or {}
        n = stored.get("resolved", {}).get("num_train_examples")
        if n is not None:
            runs.at[i, "num_train_examples"] = float(n)
        config = stored.get("config", {})
        if "optimizer" in config and (config["optimizer"] in ("sgd", "adam", "adamw")
                                      or "momentum" in config):
            m = smith_le_momentum(config["optimizer"], config.get("momentum", 0.0))
            runs.at[i, "smith_le_momentum"] = math.nan if m is None else m
    return runs


def compute(sweep: Sweep, metric: str = "final") -> dict:
    points, missing, without = b_simple_points(sweep)
    curves = data.b_simple_curves(points)
    smith = data.smith_le_table(with_noise_scale_inputs(sweep), metric)
    notes = []
    if missing:
        notes.append(f"B_simple over training: metrics.jsonl is not available for {missing} of "
                     f"{len(sweep.runs)} runs; they are left out of it")
    if without:
        notes.append(f"B_simple over training: {without} run(s) logged no b_simple (it needs >= 2 "
                     "devices or accumulation microbatches: --config.microbatch_size=B/2 or "
                     "smaller gives it on one device)")
    if smith.empty:
        notes.append("accuracy vs the noise scale: no finished run with a known number of "
                     "training examples and momentum (config.json not available, or adam/adamw)")
    if curves.empty and smith.empty:
        raise FigureError(f"{sweep.root} has neither B_simple in any metrics.jsonl nor a finished "
                          "run with config.json (for N); " + "; ".join(notes))
    return {"metric": data.METRICS[metric], "b_simple_curves": curves,
            "b_simple_late": late_b_simple(curves), "smith_le": smith, "notes": notes}


def late_b_simple(curves: pd.DataFrame, fraction: float = 0.25) -> pd.DataFrame:
    """Per batch size, the median of its B_simple curve over the last `fraction` of its logged
    steps (step >= (1 - fraction) x the last logged step), with the number of points and how many
    were negative. One logged value late in training is mostly noise (the two-batch |G|^2
    estimate crosses zero as the gradient shrinks); the median over a window is not."""
    rows = []
    for batch_size, curve in curves.groupby("batch_size"):
        late = curve[curve["step"] >= (1.0 - fraction) * curve["step"].max()]
        rows.append({"batch_size": int(batch_size), "b_simple": float(late["b_simple"].median()),
                     "from_step": int(late["step"].min()), "to_step": int(late["step"].max()),
                     "points": int(len(late)), "negative": int((late["b_simple"] < 0).sum())})
    return pd.DataFrame(rows, columns=["batch_size", "b_simple", "from_step", "to_step", "points",
                                       "negative"])


def plot(numbers: dict, source: str):
    fig, axes = plotting.new_figure(ncols=2, width=5.6, height=4.4)
    left, right = axes[0]
    curves, smith = numbers["b_simple_curves"], numbers["smith_le"]
    colors = plotting.batch_colors(list(curves["batch_size"]) + list(smith["batch_size"]))
    if curves.empty:
        plotting.message_axis(left, "no B_simple logged. The trainer logs it when a step has\n"
                                    ">= 2 microbatches: run on >= 2 devices, or set\n"
                                    "--config.microbatch_size to B/2 or smaller (the BN group\n"
                                    "stays fixed with normalization='ghost' + ghost_batch_size)")
    else:
        for batch, group in curves.groupby("batch_size", sort=True):
            group = group.sort_values("step")
            left.plot(group["examples"], group["b_simple"], color=colors[batch], label=f"B={batch}")
            left.axhline(batch, color=colors[batch], lw=0.6, ls=":")
        left.set_xscale("log")
        left.set_yscale("log")
        left.set_xlabel("examples processed")
        left.set_ylabel("B_simple = tr(Σ) / |G|²")
        left.set_title("noise scale during training (McCandlish et al. 2018)", fontsize=9)
        left.legend(fontsize=7, ncol=2)
        left.grid(True, alpha=0.3)
    if smith.empty:
        plotting.message_axis(right, "no finished run with config.json (N unknown)")
    else:
        for (batch, rule), group in smith.groupby(["batch_size", "lr_scaling"], sort=True):
            right.scatter(group["noise_scale"], group["accuracy"], color=colors[batch],
                          marker=plotting.RULE_MARKERS.get(rule, "D"), s=28, edgecolor="k",
                          linewidth=0.3)
        for batch in sorted(set(smith["batch_size"])):
            right.scatter([], [], color=colors[batch], marker="o", label=f"B={batch}")
        for rule in sorted(set(smith["lr_scaling"])):
            right.scatter([], [], color="0.6", marker=plotting.RULE_MARKERS.get(rule, "D"),
                          label=plotting.RULE_NAMES.get(rule, rule))
        right.set_xscale("log")
        right.set_xlabel("Smith & Le noise scale g = lr · (N / B − 1) / (1 − m)")
        right.set_ylabel(f"top-1 accuracy ({numbers['metric']})")
        right.set_title("accuracy vs noise scale (Smith & Le 2018)", fontsize=9)
        right.legend(fontsize=7, ncol=2)
        right.grid(True, alpha=0.3)
    plotting.finish(fig, "Gradient noise scale vs batch size", f"source: {source}")
    return fig


def headlines(numbers: dict) -> list[str]:
    lines = []
    late = numbers["b_simple_late"]
    if len(late):
        lines.append("B_simple, median over the last quarter of logged steps: " + ", ".join(
            f"B={r.batch_size}: {r.b_simple:.4g}" + (f" ({r.negative} of {r.points} < 0)"
                                                      if r.negative else "")
            for r in late.itertuples()))
    smith = numbers["smith_le"]
    if len(smith):
        best = smith.loc[smith["accuracy"].idxmax()]
        lines.append(f"g = lr (N / B - 1) / (1 - m) spans {smith['noise_scale'].min():.4g} to "
                     f"{smith['noise_scale'].max():.4g} over {len(smith)} runs; the most accurate "
                     f"({best['accuracy']:.4f}, {best['run']}) has g = {best['noise_scale']:.4g}"
                     + (f"; Spearman rank correlation of accuracy with g "
                        f"{data.spearman(smith['noise_scale'], smith['accuracy']):.2f}"
                        if len(smith) >= 3 else ""))
    return lines


def make(sweep: Sweep, metric: str = "final") -> plotting.FigureResult:
    numbers = compute(sweep, metric)
    return plotting.FigureResult(
        "noise_scale", "Gradient noise scale", plot(numbers, sweep.describe()),
        {k: v for k, v in numbers.items() if k != "notes"},
        tables={"B_simple, median over the last quarter of logged steps":
                numbers["b_simple_late"],
                "accuracy vs Smith & Le noise scale": numbers["smith_le"]},
        headlines=headlines(numbers), notes=numbers["notes"])


def main(argv: list[str] | None = None) -> int:
    return cli.main(PROG, __doc__, add_arguments, make, argv)


if __name__ == "__main__":
    sys.exit(main())
