"""matplotlib (Agg) helpers shared by the figure scripts, and the result every figure returns."""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FixedLocator, NullLocator  # noqa: E402

RULE_COLORS = {"none": "tab:blue", "linear": "tab:orange", "sqrt": "tab:green"}
RULE_NAMES = {"none": "fixed lr", "linear": "linear scaling", "sqrt": "sqrt scaling"}
RULE_MARKERS = {"none": "o", "linear": "s", "sqrt": "^"}


@dataclasses.dataclass
class FigureResult:
    """What a figure script produces: the figure, the numbers it plots, tables for the report,
    one-line headlines (the reported results) and notes (what was skipped and why)."""

    name: str
    title: str
    figure: Any                                  # matplotlib Figure
    numbers: dict
    tables: dict = dataclasses.field(default_factory=dict)      # name -> DataFrame
    headlines: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)


def jsonable(value: Any) -> Any:
    """Plain-JSON version of numbers: DataFrames -> records, numpy -> Python, NaN -> None."""
    if isinstance(value, pd.DataFrame):
        return [jsonable(r) for r in value.to_dict("records")]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def output_paths(out: str) -> dict:
    """{'png', 'pdf', 'json'} beside each other: `--out=FIG.png` -> FIG.png, FIG.pdf, FIG.json."""
    stem = out[:-4] if out.lower().endswith(".png") else out
    return {"png": stem + ".png", "pdf": stem + ".pdf", "json": stem + ".json"}


def save(result: FigureResult, out: str) -> dict:
    """Write the PNG, the PDF and the plotted numbers (JSON, with headlines and notes)."""
    paths = output_paths(out)
    os.makedirs(os.path.dirname(os.path.abspath(paths["png"])), exist_ok=True)
    result.figure.savefig(paths["png"], dpi=110)
    result.figure.savefig(paths["pdf"], metadata={"CreationDate": None})  # same bytes each run
    with open(paths["json"], "w") as f:
        json.dump(jsonable({"figure": result.name, "title": result.title,
                            "headlines": result.headlines, "notes": result.notes,
                            **result.numbers}), f, indent=1)
        f.write("\n")
    return paths


def png_bytes(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def close(result: FigureResult) -> None:
    if result.figure is not None:
        plt.close(result.figure)


def batch_axis(ax, batch_sizes, label: str = "batch size B") -> None:
    """A log2 x axis with a tick at every batch size, labelled as integers."""
    values = sorted({int(b) for b in batch_sizes if b is not None and not pd.isna(b)})
    ax.set_xscale("log", base=2)
    if values:
        ax.xaxis.set_major_locator(FixedLocator(values))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(values, [str(v) for v in values])
        if len(values) == 1:
            ax.set_xlim(values[0] / 2, values[0] * 2)
    ax.set_xlabel(label)
    ax.grid(True, which="major", alpha=0.3)


def rule_style(rule: str, index: int) -> dict:
    base = str(rule).split(",")[0]
    color = RULE_COLORS.get(base, f"C{(index + 3) % 10}")
    return {"color": color, "label": RULE_NAMES.get(base, base) + str(rule)[len(base):]}


def message_axis(ax, text: str) -> None:
    """An empty panel that says why it is empty."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9,
            transform=ax.transAxes, color="0.35")


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 6.0, height: float = 4.2):
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False)
    return fig, axes


def finish(fig, title: str, footer: str | None = None) -> None:
    fig.suptitle(title, fontsize=10)
    if footer:
        fig.text(0.01, 0.01, footer, fontsize=7, color="0.3", ha="left", va="bottom", wrap=True)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
    else:
        fig.tight_layout()


def batch_colors(batch_sizes) -> dict:
    """A viridis color per batch size (small = dark)."""
    values = sorted({int(b) for b in batch_sizes})
    cmap = plt.get_cmap("viridis")
    return {b: cmap(i / max(1, len(values) - 1) * 0.9) for i, b in enumerate(values)}
