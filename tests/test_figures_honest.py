"""Figures that do not mislead (issue 14, parts 6-7): runs of different experiments are refused or
picked with --where, one run found twice counts once, few seeds are drawn as points, the critical
batch's fit says how much it rests on each point, and regenerated outputs are byte-identical."""
import filecmp
import os
import shutil

import pytest

from analysis import all as all_figures
from analysis import figure8
from analysis.figures import data
from analysis.figures.sweep import FigureError, load_sweep
from helpers import ROOT
from test_figures import write_run


def _runs(root, model, dataset, accuracies, batch_sizes=(16, 64)):
    for b in batch_sizes:
        for seed, accuracy in enumerate(accuracies):
            write_run(str(root), f"{model}/bs{b}-s{seed}", batch_size=b, lr_scaling="none",
                      base_lr=0.1, lr=0.1, seed=seed, summary={},
                      evals=[(10, 0.5), (20, accuracy - b / 1000)], model=model,
                      dataset=dataset)


def test_different_models_are_refused_and_where_picks_one(tmp_path, capsys):
    _runs(tmp_path, "mlp", "sklearn_digits", (0.90, 0.92))
    _runs(tmp_path, "cnn1d", "mnist1d/small", (0.80, 0.84))
    out = tmp_path / "fig" / "f8.png"
    assert figure8.main([f"--root={tmp_path}", f"--out={out}"]) == 2
    err = capsys.readouterr().err
    assert "2 different experiments (they differ in model, dataset)" in err
    assert "4 run(s) with model=cnn1d, dataset=mnist1d/small" in err
    assert "--where model=VALUE" in err and not out.exists()

    assert figure8.main([f"--root={tmp_path}", f"--out={out}", "--where", "model=cnn1d"]) == 0
    printed = capsys.readouterr().out
    assert "note: runs with model=cnn1d: 4 of 8" in printed
    table = figure8.make(load_sweep(str(tmp_path), ["model=cnn1d"])).numbers["table"]
    means = dict(zip(table["batch_size"], table["mean"]))
    assert means == pytest.approx({16: 0.82 - 0.016, 64: 0.82 - 0.064})
    with pytest.raises(FigureError, match=r"no column 'modle'"):
        load_sweep(str(tmp_path), ["modle=cnn1d"])
    with pytest.raises(FigureError, match=r"model is one of \['cnn1d', 'mlp'\]"):
        load_sweep(str(tmp_path), ["model=resnet50"])


def test_one_run_found_twice_counts_once(tmp_path):
    from analysis import collect

    _runs(tmp_path / "a", "mlp", "sklearn_digits", (0.90, 0.94), batch_sizes=(16,))
    # The same run copied under a second root, with another data_dir (not part of its identity).
    shutil.copytree(tmp_path / "a" / "mlp" / "bs16-s0", tmp_path / "b" / "bs16-s0")
    config_path = tmp_path / "b" / "bs16-s0" / "config.json"
    config_path.write_text(config_path.read_text().replace('"seed": 0', '"seed": 0, '
                                                           '"data_dir": "/elsewhere"'))
    assert len(collect.collect(str(tmp_path))) == 3
    sweep = load_sweep(str(tmp_path))
    assert len(sweep.runs) == 2 and len(sweep.notes) == 1
    assert "b/bs16-s0 = a/mlp/bs16-s0" in sweep.notes[0]
    (row,) = figure8.make(sweep).numbers["table"].to_dict("records")
    assert row["n"] == 2 and row["mean"] == pytest.approx((0.90 + 0.94) / 2 - 0.016)


def _plotted_points(result):
    ax = result.figure.axes[0]
    return sorted(y for line in ax.lines if line.get_linestyle() == "None"
                  for y in line.get_ydata())


def test_few_seeds_are_points_not_error_bars(tmp_path):
    three, four = tmp_path / "three", tmp_path / "four"
    _runs(three, "mlp", "sklearn_digits", (0.999, 0.90, 0.80), batch_sizes=(16,))
    _runs(four, "mlp", "sklearn_digits", (0.999, 0.90, 0.80, 0.85), batch_sizes=(16,))
    few = figure8.make(load_sweep(str(three)))
    assert _plotted_points(few) == pytest.approx(sorted(a - 0.016 for a in (0.999, 0.90, 0.80)))
    assert not few.figure.axes[0].containers                  # no error bars
    assert "mean and each seed, n = 3" in few.figure.texts[0].get_text()
    row = few.numbers["table"].iloc[0]
    assert (row["min"], row["max"]) == pytest.approx((0.784, 0.983))
    many = figure8.make(load_sweep(str(four)))
    assert len(many.figure.axes[0].containers) == 1           # mean ± std bars
    assert "mean ± std over seeds, n = 4" in many.figure.texts[0].get_text()


def test_critical_batch_fit_reports_leave_one_out_range():
    """Three points: each leave-one-out fit goes exactly through the other two, B_crit =
    (1 - r) / (r / b2 - 1 / b1) with r = S1 / S2 (from S_i = S_min (1 + B_crit / b_i))."""
    b, s = [32, 128, 512], [1500.0, 520.0, 260.0]

    def exact(i, j):
        r = s[i] / s[j]
        return (1 - r) / (r / b[j] - 1 / b[i])
    fit = data.fit_critical_batch(b, s)
    expected = [exact(1, 2), exact(0, 2), exact(0, 1)]
    assert fit["b_crit_leave_one_out"] == pytest.approx([min(expected), max(expected)], rel=1e-5)
    assert data.fit_critical_batch(b[:2], s[:2])["b_crit_leave_one_out"] is None


def test_regenerated_figures_and_report_are_byte_identical(tmp_path, capsys):
    csv = os.path.join(ROOT, "analysis", "figures", "example_sweep", "runs.csv")
    for out in ("one", "two"):
        assert all_figures.main([f"--root={csv}", f"--out_dir={tmp_path / out}"]) == 0
    capsys.readouterr()
    names = sorted(os.listdir(tmp_path / "one"))
    assert {"report.html", "figure8.png", "figure8.pdf", "figure8.json"} <= set(names)
    assert names == sorted(os.listdir(tmp_path / "two"))
    match, mismatch, errors = filecmp.cmpfiles(tmp_path / "one", tmp_path / "two", names,
                                               shallow=False)
    assert mismatch == [] and errors == [] and match == names
