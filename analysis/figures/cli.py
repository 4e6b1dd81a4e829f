"""The command line every figure script shares:

    python -m analysis.<name> --root=SWEEP_DIR_OR_RUNS_CSV --out=FIG.png [--target=0.9,0.8] [...]

writes FIG.png, FIG.pdf and FIG.json (the plotted numbers, headlines and notes) and prints the
headlines. Exit status 2 with one paragraph on stderr (no traceback) when the root has no runs or
lacks what the figure needs.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from analysis.figures import plotting
from analysis.figures.sweep import FigureError, load_sweep, parse_targets


def description(doc: str) -> str:
    return " ".join(doc.split("\n\n")[0].split())


def fail(prog: str, message) -> int:
    print(f"{prog}: error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def add_common(parser: argparse.ArgumentParser, out_help: str) -> None:
    parser.add_argument("--root", required=True,
                        help="a sweep directory (run directories under it) or a runs.csv "
                             "written by analysis.collect")
    parser.add_argument("--out", required=True, help=out_help)
    add_where(parser)


def add_where(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--where", action="append", default=[], metavar="FIELD=VALUE",
                        help="only the runs whose runs-table column FIELD equals VALUE "
                             "(repeatable): one experiment of a root that holds several, e.g. "
                             "--where model=cnn1d --where dataset=mnist1d/small")


def print_notes(sweep) -> None:
    for note in sweep.notes:
        print(f"note: {note}")


def add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default=None,
                        help="target accuracy, or several tried in order (0.95,0.9); default: "
                             "the runs' own target_accuracy")


def add_metric(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--metric", default="final", choices=("final", "best"),
                        help="final_eval_accuracy (at the end of the budget) or "
                             "best_eval_accuracy")


def print_result(result: plotting.FigureResult, paths: dict | None = None) -> None:
    for note in result.notes:
        print(f"note: {note}")
    for line in result.headlines:
        print(line)
    if paths:
        print(" ".join(paths[k] for k in ("png", "pdf", "json")))


def main(prog: str, doc: str, add_arguments: Callable, make: Callable,
         argv: list[str] | None) -> int:
    """Parse, load the sweep, make the figure, write it; FigureError -> exit 2."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=description(doc))
    add_common(parser, "PNG file to write (a PDF and a JSON of the plotted numbers are written "
                       "beside it)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    options = {k: v for k, v in vars(args).items() if k not in ("root", "out", "where")}
    try:
        if "target" in options:
            options["target"] = parse_targets(options["target"])
        sweep = load_sweep(args.root, args.where)
        result = make(sweep, **options)
    except FigureError as err:
        return fail(prog, err)
    print_notes(sweep)
    paths = plotting.save(result, args.out)
    print_result(result, paths)
    plotting.close(result)
    return 0
