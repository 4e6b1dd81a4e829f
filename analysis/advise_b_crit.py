"""The three critical-batch estimates of one `bsgap.advise` workdir over training, on one plot.

    python -m analysis.advise_b_crit --advice=ADVISE_DIR[/advice.json] --out=b_crit.png

Against examples seen by the pilot: the online two-batch B_simple (the trainer's EMA, every
logged step), the exact per-example B_simple, bias-corrected (at the pilot checkpoints the advisor
measured), the branched estimate (McCandlish fit to branches from a pilot checkpoint) and Merrill
et al.'s threshold batch size from the same branches, and -- when the advisor was given a sweep --
the sweep's fitted B_crit as a horizontal line (one number for the whole run). The pilot's batch
size and its examples to the target are marked. Writes the PNG, a PDF and the plotted numbers as
JSON (analysis.figures.plotting.save). Exit 2 when the file is not an advisor's advice.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

PROG = "analysis.advise_b_crit"


def make(advice: dict, source: str):
    from analysis.figures import plotting

    over = advice["b_crit_over_training"]
    fig, axes = plotting.new_figure(width=7.5, height=5.6)
    ax = axes[0, 0]
    online = [r for r in over["noise_scale_online"] if r.get("b_simple")]
    ax.plot([r["examples"] for r in online], [r["b_simple"] for r in online], "-",
            color="tab:orange", alpha=0.6, label="noise scale, online two-batch B_simple (EMA)")
    exact = [r for r in over["noise_scale_exact"] if r.get("b_simple_unbiased")]
    ax.plot([r["examples"] for r in exact], [r["b_simple_unbiased"] for r in exact], "o-",
            color="tab:red", label="noise scale, exact per-example B_simple (bias-corrected)")
    fit = [r for r in over["branched"] if r.get("b_crit")]
    ax.plot([r["examples"] for r in fit], [r["b_crit"] for r in fit], "s-", color="tab:green",
            label="branched: McCandlish fit to the branches")
    thr = [r for r in over["branched"] if r.get("threshold_b_crit")]
    ax.plot([r["examples"] for r in thr], [r["threshold_b_crit"] for r in thr], "v--",
            color="tab:olive", label="branched: Merrill et al. threshold (ε = "
            f"{advice['how']['options']['branch_tolerance']:g})")
    if over.get("sweep"):
        ax.axhline(over["sweep"], color="tab:purple", ls=":", label=f"sweep fit, B_crit ≈ "
                   f"{over['sweep']:.3g}")
    pilot = advice["pilot"]
    ax.axhline(pilot["batch_size"], color="0.5", lw=0.8, label=f"pilot B = {pilot['batch_size']}")
    ax.axvline(pilot["examples_to_target"], color="0.3", lw=0.8, ls="--",
               label=f"pilot reaches {advice['target_accuracy']:g}")
    ax.set_yscale("log")
    ax.set_xlabel("examples seen by the pilot")
    ax.set_ylabel("critical batch size estimate")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2)
    plotting.finish(fig, "Critical batch size over training: noise scale, branched training, "
                         "sweep", f"source: {source}")
    numbers = {"b_crit_over_training": over, "b_crit_used": advice["b_crit"],
               "pilot": pilot, "target_accuracy": advice["target_accuracy"]}
    return plotting.FigureResult("advise_b_crit", "B_crit estimates over training", fig, numbers)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}", description=__doc__.split("\n")[0])
    parser.add_argument("--advice", required=True, help="advisor workdir or its advice.json")
    parser.add_argument("--out", required=True, help="output PNG (PDF and JSON beside it)")
    args = parser.parse_args(argv)
    path = (os.path.join(args.advice, "advice.json") if os.path.isdir(args.advice)
            else args.advice)
    try:
        with open(path) as f:
            advice = json.load(f)
        advice["b_crit_over_training"]
    except (OSError, ValueError, KeyError) as err:
        print(f"{PROG}: error: {path} is not a bsgap.advise advice.json ({err})", file=sys.stderr)
        return 2
    from analysis.figures import plotting

    result = make(advice, path)
    paths = plotting.save(result, args.out)
    plotting.close(result)
    print(paths["png"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
