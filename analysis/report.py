"""One self-contained HTML page for a sweep: every figure (PNG embedded as base64), the numbers
each reports (critical batch size, fastest batch size, ...), what was skipped and why, and the
results table -- one file to open or send, no other file needed.

    python -m analysis.report --root=SWEEP_DIR_OR_RUNS_CSV --out=report.html
        [--target=0.9[,0.8]] [--metric=final|best]

Figures: figure8, steps_to_target, time_to_accuracy, sharpness, noise_scale (the modules of the
same names; `python -m analysis.all` also writes each as PNG + PDF + JSON). A figure the sweep
lacks the data for is listed with the reason instead of drawn. Exit 2 when the root has no runs
or no figure at all could be drawn.
"""
from __future__ import annotations

import argparse
import base64
import datetime
import html
import os
import sys

import pandas as pd

from analysis import figure8, noise_scale, sharpness, steps_to_target, time_to_accuracy
from analysis.collect import REQUIRED_COLUMNS
from analysis.figures import cli, plotting
from analysis.figures.sweep import FigureError, Sweep, load_sweep, parse_targets

PROG = "analysis.report"
FIGURES = (("figure8", figure8), ("steps_to_target", steps_to_target),
           ("time_to_accuracy", time_to_accuracy), ("sharpness", sharpness),
           ("noise_scale", noise_scale))


def figure_options(name: str, target, metric: str) -> dict:
    return {"figure8": {"metric": metric}, "steps_to_target": {"target": target},
            "time_to_accuracy": {"target": target}, "sharpness": {},
            "noise_scale": {"metric": metric}}[name]


def make_all(sweep: Sweep, target: list[float] | None = None, metric: str = "final") -> list:
    """[(name, FigureResult or None, reason or None)] for every figure, in report order."""
    out = []
    for name, module in FIGURES:
        try:
            out.append((name, module.make(sweep, **figure_options(name, target, metric)), None))
        except FigureError as err:
            out.append((name, None, " ".join(str(err).split())))
    return out


def _table_html(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, escape=True, na_rep="–", border=0, classes="table",
                         float_format=lambda v: f"{v:.6g}")


def results_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs table as analysis.collect writes it: its required columns first."""
    columns = [c for c in REQUIRED_COLUMNS if c in runs.columns]
    return runs[columns]


STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ccc; }
img { max-width: 100%; border: 1px solid #eee; }
table.table { border-collapse: collapse; font-size: 0.8em; margin: 0.5em 0 1em 0; }
table.table th, table.table td { padding: 2px 8px; border-bottom: 1px solid #ddd; text-align: right; }
.note { color: #777; } .skip { color: #a33; } .headline { font-weight: 500; }
"""


def render_html(sweep: Sweep, results: list, pngs: dict) -> str:
    """The page: figures in order (PNG bytes from `pngs` embedded as data URIs), then the runs."""
    esc = html.escape
    parts = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
             f"<title>bsgap sweep report: {esc(sweep.root)}</title>",
             f"<style>{STYLE}</style></head><body>",
             f"<h1>Batch size sweep report</h1><p>Source: <code>{esc(sweep.describe())}</code>"
             f"<br>Generated {datetime.datetime.now().isoformat(timespec='seconds')} by "
             f"<code>python -m {PROG}</code>.</p>", "<h2>Summary</h2><ul>"]
    for name, result, reason in results:
        if result is None:
            parts.append(f"<li class='skip'>{esc(name)}: not drawn -- {esc(reason)}</li>")
        else:
            parts += [f"<li class='headline'>{esc(line)}</li>" for line in result.headlines]
    parts.append("</ul>")
    for name, result, reason in results:
        if result is None:
            parts.append(f"<h2 id='{esc(name)}'>{esc(name)}</h2>"
                         f"<p class='skip'>Not drawn: {esc(reason)}</p>")
            continue
        data = base64.b64encode(pngs[name]).decode("ascii")
        parts.append(f"<h2 id='{esc(name)}'>{esc(result.title)}</h2>")
        parts.append(f"<img alt='{esc(name)}' src='data:image/png;base64,{data}'>")
        if result.headlines:
            parts.append("<ul>" + "".join(f"<li class='headline'>{esc(h)}</li>"
                                          for h in result.headlines) + "</ul>")
        if result.notes:
            parts.append("<ul>" + "".join(f"<li class='note'>note: {esc(n)}</li>"
                                          for n in result.notes) + "</ul>")
        for caption, frame in result.tables.items():
            if frame is not None and len(frame):
                parts.append(f"<h3>{esc(caption)}</h3>{_table_html(frame)}")
    parts.append(f"<h2 id='runs'>Results table ({len(sweep.runs)} runs)</h2>")
    parts.append(_table_html(results_table(sweep.runs)))
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(sweep: Sweep, results: list, out: str, pngs: dict | None = None) -> str:
    """Write the HTML (figures rendered to PNG bytes here unless given) and return its path."""
    pngs = dict(pngs or {})
    for name, result, _ in results:
        if result is not None and name not in pngs:
            pngs[name] = plotting.png_bytes(result.figure)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        f.write(render_html(sweep, results, pngs))
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    cli.add_target(parser)
    cli.add_metric(parser)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}", description=cli.description(__doc__))
    cli.add_common(parser, "HTML file to write")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        target = parse_targets(args.target)
        sweep = load_sweep(args.root)
    except FigureError as err:
        return cli.fail(PROG, err)
    results = make_all(sweep, target, args.metric)
    if all(result is None for _, result, _ in results):
        return cli.fail(PROG, "no figure could be drawn from " + sweep.root + ": " + "; ".join(
            f"{name}: {reason}" for name, _, reason in results))
    path = write_report(sweep, results, args.out)
    for name, result, reason in results:
        if result is None:
            print(f"skipped {name}: {reason}")
        else:
            cli.print_result(result)
            plotting.close(result)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
