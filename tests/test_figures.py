"""The figure scripts (analysis/figure8.py, steps_to_target.py, time_to_accuracy.py, sharpness.py,
noise_scale.py, report.py, all.py) on synthetic run directories whose numbers are chosen so that
every plotted number is known by hand:

- STEPS sweep: 7 batch sizes x 2 trials. Trial 'a' (linear rule, lr 0.1 B/100) first reaches 0.9
  at S(B) = S_min (1 + B_crit / B) with S_min = 100, B_crit = 400 exactly (2600, 900, 500, 300,
  200, 150, 125 steps); trial 'b' (fixed lr 0.1) at 2 S(B), never at B = 1600. Seconds and
  examples/s per trial are given below; curvature and interpolation JSONs and b_simple logs for
  B = 16 and 1600.
- FIG8 sweep: B = 32, 64 x rules none / linear (2 seeds each), a diverged and an unfinished run,
  and a sqrt cell with two learning rates; CaffeNet on imagenet2012 (Mishkin et al.'s setup).
"""
import base64
import json
import math
import os

import pandas as pd
import pytest

from analysis import all as all_figures
from analysis import (collect, figure8, noise_scale, report, sharpness, steps_to_target,
                      time_to_accuracy)
from analysis.figures import data
from analysis.figures.sweep import load_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
S_MIN, B_CRIT = 100, 400
BATCH = [16, 50, 100, 200, 400, 800, 1600]
S = {b: S_MIN * (1 + B_CRIT / b) for b in BATCH}          # 2600, 900, 500, 300, 200, 150, 125
EPS_A = {16: 1000.0, 50: 3000.0, 100: 5000.0, 200: 8000.0, 400: 10000.0, 800: 10500.0,
         1600: 10800.0}
N_TRAIN = 10000


def _write(path, content):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        if isinstance(content, list):
            f.writelines(json.dumps(r) + "\n" for r in content)
        else:
            json.dump(content, f)


def write_run(root, name, *, batch_size, lr_scaling, base_lr, lr, seed, summary, evals,
              metrics=None, target=0.9, model="mlp", dataset="sklearn_digits", reference=100):
    """A run directory as bsgap.train leaves it (the fields analysis.collect reads)."""
    run = os.path.join(root, name)
    config = {"batch_size": batch_size, "lr_scaling": lr_scaling, "learning_rate": base_lr,
              "reference_batch_size": reference, "seed": seed, "target_accuracy": target,
              "optimizer": "momentum", "momentum": 0.9, "model": model, "dataset": dataset}
    resolved = {"scaled_learning_rate": lr, "num_train_examples": N_TRAIN, "total_steps": 10000,
                "num_processes": 1,
                "layout": {"batch_size": batch_size, "num_devices": 1, "per_device_batch":
                           batch_size, "microbatch": batch_size, "accumulation_steps": 1,
                           "bn_group": None}}
    _write(os.path.join(run, "config.json"),
           {"config": config, "resolved": resolved, "environment": {"num_devices": 1}})
    _write(os.path.join(run, "eval.jsonl"),
           [{"step": s, "examples": s * batch_size, "split": "test", "accuracy": a, "loss": 1 - a,
             "num_examples": 100} for s, a in evals])
    if metrics is not None:
        _write(os.path.join(run, "metrics.jsonl"), metrics)
    if summary is not None:
        full = {"status": "complete", "steps": evals[-1][0], "best_eval_accuracy":
                max(a for _, a in evals), "final_eval_accuracy": evals[-1][1],
                "target_accuracy": target, "steps_to_target": None, "examples_to_target": None,
                "seconds_to_target": None, "examples_per_second": None, "train_seconds": 1.0}
        full.update(summary)
        _write(os.path.join(run, "summary.json"), full)
    return run


def curvature_record(step, top, eps, complete=True, trace=None):
    metrics = {"top_eigs": {"result": "TopEigenvalues", "eigenvalues": top},
               "eps_sharpness": {"result": "EpsSharpnessList",
                                 "values": [{"epsilon": e, "sharpness": v} for e, v in eps]}}
    if trace is not None:
        metrics["trace"] = {"trace": trace, "stderr": 0.1}
    return {"complete": complete, "run": {"step": step}, "metrics": metrics}


def interpolation_record(a, b, train_loss, test_loss):
    return {"complete": True, "a": {"workdir": "/x/a", "batch_size": a, "step": 1},
            "b": {"workdir": "/x/b", "batch_size": b, "step": 1}, "bn_stats": "none",
            "distance": 3.0, "alphas": [-0.5, 0.0, 0.5, 1.0, 1.5], "train_loss": train_loss,
            "test_loss": test_loss, "train_accuracy": [0.5, 0.9, 0.7, 0.8, 0.2],
            "test_accuracy": [0.5, 0.8, 0.6, 0.7, 0.2]}


def seconds(b, trial):
    if trial == "a":
        return S[b] * b / EPS_A[b]
    return 7.0 if b == 400 else 2 * S[b] * b / (EPS_A[b] + 200)


def b_simple_logs(b, trial):
    values = {(16, "a"): (50, 70), (16, "b"): (30, 50), (1600, "a"): (200, 300),
              (1600, "b"): (400, 500)}.get((b, trial))
    eps = EPS_A[b] + (0 if trial == "a" else 200)
    out = []
    for i, step in enumerate((10, 20)):
        record = {"step": step, "examples": step * b, "examples_per_second": eps,
                  "train_loss": 1.0, "learning_rate": 0.1}
        if values:
            record["b_simple"] = values[i]
        out.append(record)
    return out


@pytest.fixture(scope="module")
def steps_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("steps_sweep"))
    for b in BATCH:
        s = int(S[b])
        write_run(root, f"bs{b}-a", batch_size=b, lr_scaling="linear", base_lr=0.1,
                  lr=0.1 * b / 100, seed=0,
                  evals=[(s // 2, 0.8), (s, 0.92), (2 * s, 0.95)],
                  summary={"steps_to_target": s, "examples_to_target": s * b,
                           "seconds_to_target": seconds(b, "a"),
                           "examples_per_second": EPS_A[b]},
                  metrics=b_simple_logs(b, "a"))
        reached_b = b != 1600
        write_run(root, f"bs{b}-b", batch_size=b, lr_scaling="none", base_lr=0.1, lr=0.1, seed=0,
                  evals=([(s, 0.85), (2 * s, 0.91), (3 * s, 0.93)] if reached_b
                         else [(s, 0.7), (2 * s, 0.8), (3 * s, 0.85)]),
                  summary={"steps_to_target": 2 * s if reached_b else None,
                           "examples_to_target": 2 * s * b if reached_b else None,
                           "seconds_to_target": seconds(b, "b") if reached_b else None,
                           "examples_per_second": EPS_A[b] + 200},
                  metrics=b_simple_logs(b, "b"))
    analysis = lambda run: os.path.join(root, run, "analysis")  # noqa: E731
    _write(os.path.join(analysis("bs16-a"), "curvature_100.json"),
           curvature_record(100, [999.0], [(1e-3, 99.0)]))                 # older step
    _write(os.path.join(analysis("bs16-a"), "curvature_500.json"),
           curvature_record(500, [10.0, 3.0], [(1e-3, 1.0), (5e-4, 0.4)], trace=50.0))
    _write(os.path.join(analysis("bs16-a"), "curvature_900.json"),
           curvature_record(900, [555.0], [(1e-3, 555.0)], complete=False))  # still running
    _write(os.path.join(analysis("bs16-b"), "curvature_500.json"),
           curvature_record(500, [14.0], [(1e-3, 2.0), (5e-4, 0.6)]))
    _write(os.path.join(analysis("bs1600-a"), "curvature_125.json"),
           curvature_record(125, [100.0], [(1e-3, 20.0), (5e-4, 8.0)]))
    _write(os.path.join(analysis("bs1600-b"), "curvature_250.json"),
           curvature_record(250, [777.0], [(1e-3, 777.0), (5e-4, 777.0)]))  # superseded by -1
    _write(os.path.join(analysis("bs1600-b"), "curvature_250-1.json"),
           curvature_record(250, [120.0], [(1e-3, 30.0), (5e-4, 12.0)]))
    _write(os.path.join(analysis("bs16-a"), "interpolation_bs16-a-500_bs1600-a-125.json"),
           interpolation_record(16, 1600, [0.9, 0.1, 0.5, 0.2, 2.0], [1.0, 0.3, 0.6, 0.4, 2.5]))
    _write(os.path.join(analysis("bs16-a"), "interpolation_bs16-a-500_bs50-a-1.json"),
           interpolation_record(16, 50, [0.9, 0.1, 0.1, 0.1, 2.0], [1.0, 0.3, 0.3, 0.3, 2.5]))
    return root


FIG8 = {("none", 32): (0.60, 0.70), ("none", 64): (0.50, 0.54),
        ("linear", 32): (0.80, 0.90), ("linear", 64): (0.70, 0.80)}


@pytest.fixture(scope="module")
def fig8_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("fig8_sweep"))
    common = dict(model="caffenet128", dataset="imagenet2012", target=None, reference=32)
    for (rule, b), accs in FIG8.items():
        lr = 0.1 * (b / 32 if rule == "linear" else 1)
        for seed, acc in enumerate(accs):
            write_run(root, f"bs{b}-{rule}-s{seed}", batch_size=b, lr_scaling=rule, base_lr=0.1,
                      lr=lr, seed=seed, evals=[(10, acc / 2), (20, acc)], summary={}, **common)
    write_run(root, "bs64-linear-s2", batch_size=64, lr_scaling="linear", base_lr=0.1, lr=0.2,
              seed=2, evals=[(10, 0.1)], summary={"status": "diverged"}, **common)
    write_run(root, "bs64-none-s2", batch_size=64, lr_scaling="none", base_lr=0.1, lr=0.1,
              seed=2, evals=[(10, 0.99)], summary=None, **common)     # no summary: unfinished
    for base, accs in ((0.1, (0.60, 0.62)), (0.2, (0.70, 0.66))):      # two base lrs: tuned
        for seed, acc in enumerate(accs):
            write_run(root, f"bs32-sqrt-lr{base}-s{seed}", batch_size=32, lr_scaling="sqrt",
                      base_lr=base, lr=base, seed=seed, evals=[(20, acc)], summary={}, **common)
    return root


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def _load(path):
    with open(path) as f:
        return json.load(f)


def assert_png(path):
    with open(path, "rb") as f:
        content = f.read()
    assert content.startswith(PNG_MAGIC) and len(content) > 5000, path
    assert os.path.getsize(path[:-4] + ".pdf") > 1000


# ----------------------------------------------------------------------------- figure 8
def test_figure8_means_over_seeds(fig8_root, tmp_path, capsys):
    out = str(tmp_path / "fig8.png")
    assert figure8.main([f"--root={fig8_root}", f"--out={out}"]) == 0
    assert_png(out)
    numbers = _load(out[:-4] + ".json")
    cells = {(r["rule"], r["batch_size"]): r for r in numbers["table"]}
    assert set(cells) == {("none", 32), ("none", 64), ("linear", 32), ("linear", 64),
                          ("sqrt", 32)}
    for key, (a, b) in FIG8.items():
        assert cells[key]["mean"] == pytest.approx((a + b) / 2, abs=1e-12)
        assert cells[key]["std"] == pytest.approx(abs(a - b) / math.sqrt(2), abs=1e-12)
        assert cells[key]["n"] == 2
    assert cells[("linear", 64)]["diverged"] == 1        # the diverged seed is left out
    assert cells[("none", 64)]["incomplete"] == 1        # and so is the unfinished one
    sqrt = cells[("sqrt", 32)]                           # best of lr 0.1 (0.61) and 0.2 (0.68)
    assert sqrt["learning_rates_tried"] == 2 and sqrt["learning_rate"] == 0.2
    assert sqrt["mean"] == pytest.approx(0.68) and sqrt["std"] == pytest.approx(0.04 / math.sqrt(2))
    # caffenet128 on imagenet2012: Mishkin et al.'s published numbers are overlaid.
    reference = pd.read_csv(figure8.REFERENCE_CSV)
    assert len(numbers["reference"]) == len(reference) == 12
    assert "linear: best mean accuracy 0.8500 at B=32" in capsys.readouterr().out


def test_figure8_best_metric_and_no_reference_for_other_runs(steps_root, fig8_root):
    sweep = load_sweep(fig8_root)
    table = figure8.make(sweep, metric="best").numbers["table"]
    none32 = table[(table["rule"] == "none") & (table["batch_size"] == 32)].iloc[0]
    assert none32["mean"] == pytest.approx(0.65)         # best == final here (rising curves)
    result = figure8.make(load_sweep(steps_root))
    assert result.numbers["reference"] is None            # an MLP on digits: not theirs
    assert figure8.make(load_sweep(steps_root), reference="always").numbers["reference"] is not None


# ----------------------------------------------------------------------------- steps to target
def test_steps_to_target_min_over_trials_and_critical_batch(steps_root, tmp_path, capsys):
    out = str(tmp_path / "steps.png")
    assert steps_to_target.main([f"--root={steps_root}", f"--out={out}"]) == 0
    assert_png(out)
    numbers = _load(out[:-4] + ".json")
    assert numbers["target_accuracy"] == 0.9
    rows = {r["batch_size"]: r for r in numbers["table"]}
    for b in BATCH:                                      # trial a (S) beats trial b (2 S)
        assert rows[b]["steps_to_target"] == S[b]
        assert rows[b]["examples_to_target"] == S[b] * b
        assert rows[b]["run"] == f"bs{b}-a"
        assert rows[b]["trials"] == 2
    assert rows[1600]["trials_reaching"] == 1
    fit = numbers["critical_batch"]
    assert fit["b_crit"] == pytest.approx(B_CRIT, rel=1e-6)
    assert fit["s_min"] == pytest.approx(S_MIN, rel=1e-6)
    assert fit["e_min"] == pytest.approx(S_MIN * B_CRIT, rel=1e-6)
    assert fit["n_points"] == 7 and fit["rms_log_residual"] < 1e-6 and not fit["at_bound"]
    assert numbers["regimes"]["perfect_scaling_below"] == pytest.approx(100, rel=1e-6)
    assert numbers["regimes"]["maximal_parallelism_above"] == pytest.approx(1600, rel=1e-6)
    slopes = {(r["from_batch_size"], r["to_batch_size"]): r for r in numbers["slopes"]}
    first = math.log(900 / 2600) / math.log(50 / 16)
    last = math.log(125 / 150) / math.log(2)
    assert slopes[(16, 50)]["slope"] == pytest.approx(first)
    assert slopes[(16, 50)]["regime"] == "perfect scaling"                  # -0.93
    assert slopes[(800, 1600)]["slope"] == pytest.approx(last)
    assert slopes[(800, 1600)]["regime"] == "diminishing returns"           # -0.26
    assert "critical batch size B_crit ≈ 400" in capsys.readouterr().out


def test_other_target_from_eval_files_and_csv(steps_root, tmp_path):
    # 0.8 is not the runs' own target: first eval >= 0.8 in eval.jsonl (trial a at S // 2).
    table = steps_to_target.make(load_sweep(steps_root), target=[0.8]).numbers["table"]
    assert dict(zip(table["batch_size"], table["steps_to_target"])) == {
        b: float(int(S[b]) // 2) for b in BATCH}
    # A CSV with no run directories beside it: the runs' own target works from the table ...
    csv = tmp_path / "alone" / "runs.csv"
    csv.parent.mkdir()
    collect.collect(steps_root).to_csv(csv, index=False)
    table = steps_to_target.make(load_sweep(str(csv))).numbers["table"]
    assert list(table["steps_to_target"]) == [S[b] for b in BATCH]
    # ... another target needs steps_to_<t> columns (analysis.collect --targets) or eval files.
    with pytest.raises(Exception, match="could not be told"):
        steps_to_target.make(load_sweep(str(csv)), target=[0.8])
    collect.collect(steps_root, targets=[0.8]).to_csv(csv, index=False)
    table = steps_to_target.make(load_sweep(str(csv)), target=[0.8]).numbers["table"]
    assert list(table["steps_to_target"]) == [float(int(S[b]) // 2) for b in BATCH]


def test_fit_closed_form_cases():
    fit = data.fit_critical_batch([10, 1000], [S_MIN * (1 + 50 / 10), S_MIN * (1 + 50 / 1000)])
    assert fit["b_crit"] == pytest.approx(50, rel=1e-6) and fit["s_min"] == pytest.approx(100)
    assert data.fit_critical_batch([64], [10])["b_crit"] is None          # one point: no fit
    # Perfect scaling everywhere (S B constant): B_crit runs to the upper search bound.
    assert data.fit_critical_batch([16, 32, 64], [400, 200, 100])["at_bound"]


def test_unreached_targets_are_named(steps_root, tmp_path, capsys):
    code = steps_to_target.main([f"--root={steps_root}", f"--out={tmp_path / 's.png'}",
                                 "--target=0.99,0.98"])
    err = capsys.readouterr().err
    assert code == 2 and "\n" not in err.strip()
    assert "0.99, 0.98" in err and "best accuracy any run reached is 0.95" in err
    assert not (tmp_path / "s.png").exists()
    # Tried in order: 0.99 by nobody, then 0.9 -> used.
    result = steps_to_target.make(load_sweep(steps_root), target=[0.99, 0.9])
    assert result.numbers["target_accuracy"] == 0.9
    assert any("0.99 (0 runs)" in note for note in result.notes)


# ----------------------------------------------------------------------------- time to accuracy
def test_time_to_accuracy_fastest_and_throughput(steps_root, tmp_path, capsys):
    out = str(tmp_path / "time.png")
    assert time_to_accuracy.main([f"--root={steps_root}", f"--out={out}"]) == 0
    assert_png(out)
    numbers = _load(out[:-4] + ".json")
    rows = {r["batch_size"]: r for r in numbers["table"]}
    for b in BATCH:
        expected = min(seconds(b, "a"), seconds(b, "b")) if b != 1600 else seconds(b, "a")
        assert rows[b]["seconds_to_target"] == pytest.approx(expected)
        assert rows[b]["examples_per_second"] == pytest.approx(EPS_A[b] + 100)
        assert rows[b]["examples_per_second_std"] == pytest.approx(200 / math.sqrt(2))
        assert rows[b]["estimated_seconds"] == pytest.approx(S[b] * b / (EPS_A[b] + 100))
    # B=400's trial b took 7.0 s (more steps, fewer seconds) < B=200's 7.5 s: per B the best
    # trial by seconds, then the minimum over B.
    assert rows[400]["run"] == "bs400-b"
    assert numbers["fastest"] == {"batch_size": 400, "seconds": 7.0, "run": "bs400-b"}
    assert numbers["fastest_estimated"]["batch_size"] == 200                 # 60000 / 8100
    # Peak mean rate 10900 at B=1600; 90 % of it = 9810, first reached at B=400 (10100).
    assert numbers["saturation"]["batch_size"] == 400
    assert numbers["saturation"]["peak_batch_size"] == 1600
    assert "fastest batch size to 0.9 accuracy: B=400" in capsys.readouterr().out


def test_time_needs_seconds(steps_root, tmp_path, capsys):
    # Seconds to 0.8 would be rebuilt from metrics.jsonl, whose records stop at step 20.
    code = time_to_accuracy.main([f"--root={steps_root}", f"--out={tmp_path / 't.png'}",
                                  "--target=0.8"])
    assert code == 2 and "none has seconds to it" in capsys.readouterr().err


# ----------------------------------------------------------------------------- sharpness
def test_sharpness_latest_complete_result_per_run(steps_root, tmp_path):
    out = str(tmp_path / "sharp.png")
    assert sharpness.main([f"--root={steps_root}", f"--out={out}"]) == 0
    assert_png(out)
    numbers = _load(out[:-4] + ".json")
    # Runs '-a' are lr rule linear, '-b' fixed: never averaged together.
    cells = {(r["quantity"], r["lr_scaling"], r["batch_size"]): r for r in numbers["table"]}
    assert {k: v["mean"] for k, v in cells.items() if k[0] == "top_eigenvalue"} == {
        ("top_eigenvalue", "linear", 16): 10.0, ("top_eigenvalue", "none", 16): 14.0,
        ("top_eigenvalue", "linear", 1600): 100.0,
        ("top_eigenvalue", "none", 1600): 120.0}                  # curvature_250-1 supersedes
    assert cells[("eps_sharpness@0.001", "none", 16)]["mean"] == pytest.approx(2.0)
    assert cells[("eps_sharpness@0.001", "linear", 1600)]["mean"] == pytest.approx(20.0)
    assert cells[("eps_sharpness@0.0005", "none", 1600)]["mean"] == pytest.approx(12.0)
    assert cells[("hessian_trace", "linear", 16)]["n"] == 1
    assert all(r["std"] is None for r in numbers["table"])    # one run per cell: NaN in JSON
    assert numbers["incomplete_skipped"] == 1
    steps = {s["run"]: s["step"] for s in numbers["sources"]}
    assert steps == {"bs16-a": 500, "bs16-b": 500, "bs1600-a": 125, "bs1600-b": 250}
    line = numbers["interpolation"]                       # 16 <-> 1600 beats 16 <-> 50
    assert (line["a_batch_size"], line["b_batch_size"]) == (16, 1600)
    assert line["train_barrier"] == pytest.approx(0.3)    # max(0.1, 0.5, 0.2) - max(0.1, 0.2)
    assert line["test_barrier"] == pytest.approx(0.2)
    assert len(numbers["interpolations"]) == 2


def test_sharpness_table_mean_and_std_per_rule_and_batch_size():
    measurements = pd.DataFrame({
        "run": ["a", "b", "c", "d"], "batch_size": [16, 16, 16, 64],
        "lr_scaling": ["none", "none", "linear", "none"],
        "quantity": ["top_eigenvalue"] * 4, "value": [10.0, 14.0, 3.0, 7.0]})
    table = data.sharpness_table(measurements)
    rows = {(r["lr_scaling"], r["batch_size"]): r for r in table.to_dict("records")}
    assert rows[("none", 16)]["mean"] == 12.0 and rows[("none", 16)]["n"] == 2
    assert rows[("none", 16)]["std"] == pytest.approx(math.sqrt(8))      # ddof = 1
    assert rows[("linear", 16)]["mean"] == 3.0 and math.isnan(rows[("linear", 16)]["std"])
    pooled = data.sharpness_table(measurements.drop(columns="lr_scaling"))
    assert pooled[pooled["batch_size"] == 16]["mean"].tolist() == [9.0]   # no rule column


def test_sharpness_without_measurements_exits_2(fig8_root, tmp_path, capsys):
    assert sharpness.main([f"--root={fig8_root}", f"--out={tmp_path / 'x.png'}"]) == 2
    assert "python -m analysis.curvature" in capsys.readouterr().err


# ----------------------------------------------------------------------------- noise scale
def test_late_b_simple_is_the_median_of_the_last_quarter():
    curves = pd.DataFrame({"batch_size": [32] * 8 + [64] * 2,
                           "step": [10, 20, 30, 40, 50, 60, 70, 80, 5, 10],
                           "b_simple": [1, 2, 3, 4, 5, 700, -50, 900, 7, 9.0]})
    late = noise_scale.late_b_simple(curves)
    # B=32: steps >= 60 -> {700, -50, 900}, median 700, one negative; B=64: steps >= 7.5 -> {9}.
    assert late.to_dict("records") == [
        {"batch_size": 32, "b_simple": 700.0, "from_step": 60, "to_step": 80, "points": 3,
         "negative": 1},
        {"batch_size": 64, "b_simple": 9.0, "from_step": 10, "to_step": 10, "points": 1,
         "negative": 0}]


def test_noise_scale_curves_and_smith_le(steps_root, tmp_path):
    out = str(tmp_path / "noise.png")
    assert noise_scale.main([f"--root={steps_root}", f"--out={out}"]) == 0
    assert_png(out)
    numbers = _load(out[:-4] + ".json")
    curves = {(r["batch_size"], r["step"]): r for r in numbers["b_simple_curves"]}
    assert set(curves) == {(16, 10), (16, 20), (1600, 10), (1600, 20)}
    assert [curves[(16, s)]["b_simple"] for s in (10, 20)] == [40.0, 60.0]
    assert [curves[(1600, s)]["b_simple"] for s in (10, 20)] == [300.0, 400.0]
    assert curves[(1600, 20)]["examples"] == 20 * 1600 and curves[(16, 10)]["n"] == 2
    assert [(r["batch_size"], r["b_simple"]) for r in numbers["b_simple_late"]] == [
        (16, 60.0), (1600, 400.0)]
    g = {r["run"]: r["noise_scale"] for r in numbers["smith_le"]}
    for b in BATCH:            # Smith & Le: lr (N / B - 1) / (1 - m), N = 10000, m = 0.9
        assert g[f"bs{b}-a"] == pytest.approx(0.1 * b / 100 * (N_TRAIN / b - 1) / 0.1)
        assert g[f"bs{b}-b"] == pytest.approx(0.1 * (N_TRAIN / b - 1) / 0.1)


# ----------------------------------------------------------------------------- report and all
def _embedded_pngs(page: str) -> list[bytes]:
    marker = "data:image/png;base64,"
    chunks = page.split(marker)[1:]
    return [base64.b64decode(c.split("'")[0]) for c in chunks]


def test_report_embeds_figures_and_table(steps_root, tmp_path, capsys):
    out = tmp_path / "report.html"
    assert report.main([f"--root={steps_root}", f"--out={out}"]) == 0
    page = out.read_text()
    images = _embedded_pngs(page)
    assert len(images) == 5 and all(i.startswith(PNG_MAGIC) for i in images)
    assert "B_crit ≈ 400" in page and "fastest batch size to 0.9 accuracy: B=400" in page
    assert f"Results table ({2 * len(BATCH)} runs)" in page
    for b in BATCH:
        assert f"<td>bs{b}-a</td>" in page and f"<td>bs{b}-b</td>" in page
    assert "src='http" not in page and "<link" not in page      # self-contained


def test_all_from_directory_and_from_csv(steps_root, tmp_path, capsys):
    out_dir = tmp_path / "figs"
    assert all_figures.main([f"--root={steps_root}", f"--out_dir={out_dir}"]) == 0
    for name in ("figure8", "steps_to_target", "time_to_accuracy", "sharpness", "noise_scale"):
        assert_png(str(out_dir / f"{name}.png"))
        assert (out_dir / f"{name}.json").exists()
    assert len(_embedded_pngs((out_dir / "report.html").read_text())) == 5
    table = pd.read_csv(out_dir / "runs.csv")
    assert len(table) == 14
    capsys.readouterr()
    # The committed-CSV path: the CSV alone. Per-step files are absent: sharpness and noise_scale
    # are skipped with their reasons, the rest is drawn from the table.
    alone = tmp_path / "alone"
    alone.mkdir()
    table.to_csv(alone / "runs.csv", index=False)
    out2 = tmp_path / "figs2"
    assert all_figures.main([f"--root={alone / 'runs.csv'}", f"--out_dir={out2}"]) == 0
    printed = capsys.readouterr().out
    assert "skipped sharpness" in printed and "skipped noise_scale" in printed
    assert "metrics.jsonl is not available for 14 of 14 runs" in printed
    assert sorted(p.name for p in out2.glob("*.png")) == [
        "figure8.png", "steps_to_target.png", "time_to_accuracy.png"]
    page = (out2 / "report.html").read_text()
    assert len(_embedded_pngs(page)) == 3 and "Not drawn" in page
    fit = _load(out2 / "steps_to_target.json")["critical_batch"]
    assert fit["b_crit"] == pytest.approx(B_CRIT, rel=1e-6)
    # A CSV inside the sweep directory finds the run files beside it (B_simple logs, curvature).
    table.to_csv(os.path.join(steps_root, "runs.csv"), index=False)
    try:
        sweep = load_sweep(os.path.join(steps_root, "runs.csv"))
        assert sweep.source == "csv" and sweep.files_dir == steps_root
        noise = noise_scale.make(sweep)
        assert list(noise.numbers["b_simple_late"]["b_simple"]) == [60.0, 400.0]
        assert sharpness.make(sweep).numbers["interpolation"]["train_barrier"] == pytest.approx(0.3)
    finally:
        os.remove(os.path.join(steps_root, "runs.csv"))


@pytest.mark.parametrize("module", [figure8, steps_to_target, time_to_accuracy, sharpness,
                                    noise_scale, report])
def test_empty_root_exits_2(module, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert module.main([f"--root={empty}", f"--out={tmp_path / 'x.png'}"]) == 2
    err = capsys.readouterr().err
    assert "no run directory" in err and err.count("\n") == 1


def test_make_figures_on_the_committed_example(tmp_path):
    """`make figures`'s command on the committed CSV, as a subprocess; its numbers against a
    pandas computation straight from the CSV."""
    import subprocess
    import sys

    from helpers import ROOT

    csv = os.path.join(ROOT, "analysis", "figures", "example_sweep", "runs.csv")
    result = subprocess.run([sys.executable, "-m", "analysis.all", f"--root={csv}",
                             f"--out_dir={tmp_path}"], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "skipped sharpness" in result.stdout          # no curvature results committed
    runs = pd.read_csv(csv)
    finished = runs[runs["status"] == "complete"]
    fig8 = {(r["rule"], r["batch_size"]): r["mean"]
            for r in _load(tmp_path / "figure8.json")["table"]}
    expected = finished.groupby(["lr_scaling", "batch_size"])["final_eval_accuracy"].mean()
    assert fig8 == pytest.approx({k: v for k, v in expected.items()})
    steps = _load(tmp_path / "steps_to_target.json")["table"]
    assert {r["batch_size"]: r["steps_to_target"] for r in steps} == \
        runs.groupby("batch_size")["steps_to_target"].min().to_dict()
    fastest = _load(tmp_path / "time_to_accuracy.json")["fastest"]
    per_batch = runs.groupby("batch_size")["seconds_to_target"].min()
    assert fastest["batch_size"] == per_batch.idxmin()
    assert fastest["seconds"] == pytest.approx(per_batch.min())
    for name in ("figure8", "steps_to_target", "time_to_accuracy", "noise_scale"):
        assert_png(str(tmp_path / f"{name}.png"))
    assert len(_embedded_pngs((tmp_path / "report.html").read_text())) == 4


@pytest.mark.parametrize("part, figures", [
    ("study_fig8", "fig8"), ("study_steps_to_target", "steps_to_target"),
    ("study_noise", "noise"), ("study_converged", "converged")])
def test_committed_study_figures_are_what_its_csv_gives(part, figures, tmp_path, monkeypatch):
    """`make figures` on results/embedded/: every committed figure's plotted numbers (its JSON)
    are exactly what analysis.all computes again from the committed runs.csv and run files, so
    the README's figures cannot drift from the committed results."""
    from helpers import ROOT

    monkeypatch.chdir(ROOT)                    # the JSON records --root as given (relative)
    study = os.path.join("results", "embedded")
    assert all_figures.main([f"--root={os.path.join(study, part, 'runs.csv')}",
                             f"--out_dir={tmp_path}", "--target=0.9"]) == 0
    committed = os.path.join(ROOT, study, "figures", figures)
    names = sorted(f for f in os.listdir(committed) if f.endswith(".json"))
    assert names and names == sorted(f for f in os.listdir(tmp_path) if f.endswith(".json"))
    for name in names:
        _assert_same_numbers(_load(tmp_path / name), _load(os.path.join(committed, name)), name)


def _assert_same_numbers(got, want, where: str) -> None:
    """Equal structure, strings and integers; floats to 1e-7 relative (fits and quantiles move in
    the last digits between numpy/scipy releases, which pyproject.toml allows to differ)."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), where
        for key in want:
            _assert_same_numbers(got[key], want[key], f"{where}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same_numbers(g, w, f"{where}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        assert got == pytest.approx(want, rel=1e-7, abs=1e-12, nan_ok=True), where
    else:
        assert got == want, where
