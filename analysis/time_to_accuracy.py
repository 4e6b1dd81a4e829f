"""The seed question's two notions of speed on one page: measured training seconds to a target
accuracy vs batch size, next to examples per second vs batch size (the computational-speed
saturation curve), with the fastest batch size marked.

    python -m analysis.time_to_accuracy --root=SWEEP_DIR_OR_RUNS_CSV --out=time.png
        [--target=0.9[,0.8,...]] [--saturation=0.9]

Left: per batch size, the fewest training seconds any of its trials needed to reach the target
(the trainer's clock: training-step time only, no compilation, evaluation or checkpointing; for a
target other than the runs' own, rebuilt from metrics.jsonl by analysis.collect), and, dashed,
DESIGN.md's estimate steps_to_target(B) x B / examples_per_second(B). The fastest batch size --
the minimum over B of the measured seconds -- is marked. Right: the mean +- std over runs of the
steady-state examples/s per batch size; the smallest batch size reaching `--saturation` (90%) of
the peak rate is marked as where computational speed saturates. Numbers:
`analysis.figures.data.time_to_accuracy_table`, `fastest_batch_size`, `saturation_batch_size`.

Seconds are wall-clock on the machine that ran the sweep: comparable across batch sizes only when
every run used the same hardware (vmapped trials report the shared program's clock).
Writes time.png, time.pdf and time.json. Exit 2 when no run reached any target tried, or none
that did has a seconds-to-target.
"""
from __future__ import annotations

import sys

import pandas as pd

from analysis.figures import cli, data, plotting
from analysis.figures.sweep import FigureError, Sweep, choose_target

PROG = "analysis.time_to_accuracy"


def add_arguments(parser) -> None:
    cli.add_target(parser)
    parser.add_argument("--saturation", type=float, default=0.9,
                        help="fraction of the peak examples/s that counts as saturated")


def compute(sweep: Sweep, target: list[float] | None = None, saturation: float = 0.9) -> dict:
    if not 0 < saturation <= 1:
        raise FigureError(f"--saturation={saturation} must be a fraction in (0, 1]")
    chosen, frame, info = choose_target(sweep, target)
    steps = data.steps_to_target_table(frame, chosen)
    throughput = data.throughput_table(sweep.runs)
    table = data.time_to_accuracy_table(steps, throughput)
    fastest = data.fastest_batch_size(table)
    if fastest is None:
        raise FigureError(
            f"runs reached {chosen:g} accuracy but none has seconds to it in {sweep.root} (for a "
            "target other than the runs' own the clock is rebuilt from metrics.jsonl, which is "
            "not there; run analysis.collect --targets=... on the sweep directory, or use the "
            "runs' own target)")
    return {"target_accuracy": chosen, "target_choice": info, "table": table,
            "fastest": fastest, "fastest_estimated": data.fastest_batch_size(
                table, "estimated_seconds"),
            "saturation": data.saturation_batch_size(throughput, saturation)}


def plot(numbers: dict, source: str):
    table, fastest, saturation = numbers["table"], numbers["fastest"], numbers["saturation"]
    fig, axes = plotting.new_figure(ncols=2, width=5.6, height=4.4)
    left, right = axes[0]
    measured = table[table["seconds_to_target"].notna()]
    left.plot(measured["batch_size"], measured["seconds_to_target"], "o-", color="tab:blue",
              label="measured (fastest trial per B)")
    estimated = table[table["estimated_seconds"].notna()]
    if len(estimated):
        left.plot(estimated["batch_size"], estimated["estimated_seconds"], "s--", ms=4,
                  color="tab:gray", alpha=0.8, label="steps × B / (examples/s)")
    left.plot([fastest["batch_size"]], [fastest["seconds"]], marker="*", ms=16, color="tab:red",
              ls="none", label=f"fastest: B={fastest['batch_size']} ({fastest['seconds']:.3g} s)")
    left.set_yscale("log")
    plotting.batch_axis(left, table["batch_size"])
    left.set_ylabel(f"training seconds to {numbers['target_accuracy']:g} accuracy")
    left.legend(fontsize=7)
    rate = table[table["examples_per_second"].notna()]
    if len(rate):
        right.errorbar(rate["batch_size"], rate["examples_per_second"],
                       yerr=rate["examples_per_second_std"].fillna(0.0), marker="o", capsize=3,
                       color="tab:green", label="steady-state examples/s (mean ± std)")
        if saturation:
            right.axvline(saturation["batch_size"], color="tab:green", ls=":", lw=1,
                          label=f"≥ {saturation['fraction']:.0%} of peak from B="
                                f"{saturation['batch_size']}")
        right.axvline(fastest["batch_size"], color="tab:red", ls="--", lw=1,
                      label=f"fastest to target: B={fastest['batch_size']}")
        right.set_yscale("log")
        plotting.batch_axis(right, table["batch_size"])
        right.set_ylabel("examples per second")
        right.legend(fontsize=7)
    else:
        plotting.message_axis(right, "no run recorded examples_per_second")
    plotting.finish(fig, f"Time to {numbers['target_accuracy']:g} accuracy and computational "
                         "speed vs batch size", f"source: {source}")
    return fig


def headlines(numbers: dict) -> list[str]:
    fastest, sat = numbers["fastest"], numbers["saturation"]
    lines = [f"fastest batch size to {numbers['target_accuracy']:g} accuracy: "
             f"B={fastest['batch_size']} ({fastest['seconds']:.4g} training seconds, "
             f"{fastest['run']})"]
    est = numbers["fastest_estimated"]
    if est:
        lines.append(f"by steps × B / (examples/s): B={est['batch_size']} "
                     f"({est['seconds']:.4g} s)")
    if sat:
        lines.append(f"examples/s reaches {sat['fraction']:.0%} of its peak "
                     f"({sat['peak_examples_per_second']:.4g} at B={sat['peak_batch_size']}) "
                     f"from B={sat['batch_size']}")
    return lines


def make(sweep: Sweep, target: list[float] | None = None,
         saturation: float = 0.9) -> plotting.FigureResult:
    numbers = compute(sweep, target, saturation)
    table = numbers["table"]
    notes = [f"B={int(r.batch_size)}: no trial has seconds to {numbers['target_accuracy']:g}"
             for r in table.itertuples() if pd.isna(r.seconds_to_target)]
    shown = table[["batch_size", "trials_reaching", "seconds_to_target", "run",
                   "steps_to_target", "examples_per_second", "examples_per_second_std", "n",
                   "estimated_seconds"]]
    return plotting.FigureResult(
        "time_to_accuracy", f"Time to {numbers['target_accuracy']:g} accuracy and examples/s",
        plot(numbers, sweep.describe()), numbers,
        tables={"seconds to target and examples/s per batch size": shown},
        headlines=headlines(numbers), notes=notes)


def main(argv: list[str] | None = None) -> int:
    return cli.main(PROG, __doc__, add_arguments, make, argv)


if __name__ == "__main__":
    sys.exit(main())
