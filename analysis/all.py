"""Regenerate every figure of a sweep and its HTML report in one command (`make figures`).

    python -m analysis.all --root=SWEEP_DIR_OR_RUNS_CSV --out_dir=DIR [--target=0.9[,0.8]]
        [--metric=final|best]

`--root` is a sweep directory (run directories under it) or a runs.csv written by
`analysis.collect`, with the runs' small files beside it when they are there (a figure needing
per-step curves, e.g. B_simple over training, skips that part with a printed note when they are
not). Writes into DIR: `<figure>.png`, `.pdf` and `.json` (the plotted numbers) for figure8,
steps_to_target, time_to_accuracy, sharpness and noise_scale, `report.html` (everything in one
self-contained page), and, for a sweep directory, `runs.csv` (the analysis.collect table). A
figure the sweep lacks the data for is skipped with its reason; exit 2 when the root has no runs
or no figure could be drawn.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

from analysis import report
from analysis.figures import cli, plotting
from analysis.figures.sweep import FigureError, load_sweep, parse_targets

PROG = "analysis.all"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}", description=cli.description(__doc__))
    parser.add_argument("--root", required=True,
                        help="a sweep directory or a runs.csv written by analysis.collect")
    parser.add_argument("--out_dir", required=True, help="directory for the figures and report")
    report.add_arguments(parser)
    cli.add_where(parser)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        target = parse_targets(args.target)
        sweep = load_sweep(args.root, args.where)
    except FigureError as err:
        return cli.fail(PROG, err)
    cli.print_notes(sweep)
    os.makedirs(args.out_dir, exist_ok=True)
    if sweep.source == "directory":
        sweep.runs.to_csv(os.path.join(args.out_dir, "runs.csv"), index=False)
    results = report.make_all(sweep, target, args.metric)
    if all(result is None for _, result, _ in results):
        return cli.fail(PROG, "no figure could be drawn from " + sweep.root + ": " + "; ".join(
            f"{name}: {reason}" for name, _, reason in results))
    pngs = {}
    for name, result, reason in results:
        if result is None:
            print(f"skipped {name}: {reason}")
            continue
        paths = plotting.save(result, os.path.join(args.out_dir, f"{name}.png"))
        with open(paths["png"], "rb") as f:
            pngs[name] = f.read()
        print(f"[{name}]")
        cli.print_result(result, paths)
    path = report.write_report(sweep, results, os.path.join(args.out_dir, "report.html"), pngs)
    for _, result, _ in results:
        if result is not None:
            plotting.close(result)
    drawn = sum(result is not None for _, result, _ in results)
    print(f"{drawn} of {len(results)} figures and {path} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
