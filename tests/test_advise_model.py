"""bsgap.advise's math against closed forms: the S(B) fit, the prediction from a pilot, branched
critical batch sizes on synthetic loss tables, and the measurement files (no JAX)."""
import json
import math
import os

import pytest

from bsgap.advise import branched, predict
from bsgap.advise.branches import branch_plan
from bsgap.advise.records import AdviseError, reuse_or_measure
from bsgap.critical_batch import fit_critical_batch

GRID = [16, 32, 64, 128, 256, 512, 1024, 2048]


def test_fit_recovers_known_s_min_and_b_crit_from_noisy_steps():
    s_min, b_crit = 60.0, 372.0
    wiggle = [1.01, 0.99, 1.008, 0.992, 1.01, 0.99, 1.005, 0.995]   # +-1% "measurement noise"
    steps = [s_min * (1 + b_crit / b) * w for b, w in zip(GRID, wiggle)]
    fit = fit_critical_batch(GRID, steps)
    assert fit["b_crit"] == pytest.approx(b_crit, rel=0.02)
    assert fit["s_min"] == pytest.approx(s_min, rel=0.02)
    assert fit["e_min"] == pytest.approx(s_min * b_crit, rel=0.03)
    assert not fit["at_bound"]


def test_prediction_from_pilot_is_the_closed_form():
    # S_min = S_p / (1 + Bc / B_p); S(B) = S_min (1 + Bc / B); seconds = S B / rate.
    assert predict.s_min_from_pilot(200.0, 128, 372.0) == pytest.approx(200 / (1 + 372 / 128))
    steps = predict.predicted_steps(200.0, 128, 372.0, [128, 512])
    assert steps[0] == pytest.approx(200.0)
    assert steps[1] == pytest.approx(200 / (1 + 372 / 128) * (1 + 372 / 512))

    class Config:
        learning_rate, reference_batch_size, lr_scaling = 0.05, 128, "sqrt"

    rates = {64: 1000.0, 128: 4000.0, 256: 5000.0, 512: 5200.0}
    out = predict.prediction(Config, b_crit=100.0, pilot_steps=300, pilot_batch_size=128,
                             throughput={b: {"examples_per_second": r} for b, r in rates.items()})
    s_min = 300 / (1 + 100 / 128)
    for r in out["predicted"]:
        b = r["batch_size"]
        assert r["steps_to_target"] == pytest.approx(s_min * (1 + 100 / b))
        assert r["seconds_to_target"] == pytest.approx(s_min * (b + 100) / rates[b])
        assert r["learning_rate"] == pytest.approx(0.05 * math.sqrt(b / 128))
    seconds = {b: s_min * (b + 100) / rates[b] for b in rates}
    best = min(seconds, key=seconds.get)
    assert out["fastest"]["batch_size"] == best == 128
    assert out["fastest"]["range"] == [min(b for b in rates if seconds[b] <= 1.1 * seconds[best]),
                                       max(b for b in rates if seconds[b] <= 1.1 * seconds[best])]


def test_relative_errors_and_fastest_ties():
    err = predict.relative_errors({16: 110.0, 32: 50.0, 64: 30.0}, {16: 100.0, 32: 50.0, 64: None})
    assert err["batch_sizes"] == [16, 32]
    assert err["max"] == pytest.approx(0.1) and err["median"] == pytest.approx(0.05)
    assert err["max_ratio"] == pytest.approx(1.1)
    assert predict.fastest([16, 32], [2.0, 2.0])["batch_size"] == 16   # ties: the smaller B
    assert predict.fastest([16, 32], [math.nan, None]) is None


def _mccandlish_curves(b_crit, batch_sizes, spacing, length, tau, loss0=2.0):
    """L_B(e) = L0 exp(-e / (tau (B + Bc))): the steps to any loss are exactly
    proportional to 1 + Bc / B (McCandlish et al.'s model), evaluated every `spacing` examples."""
    return {b: [(e, loss0 * math.exp(-e / (tau * (b + b_crit))))
                for e in range(0, length + 1, spacing)] for b in batch_sizes}


def test_examples_to_loss_log_interpolation_is_exact_for_exponential_decay():
    curve = [(e, 3.0 * math.exp(-e / 500.0)) for e in (0, 100, 400, 1000)]
    target = 3.0 * math.exp(-250 / 500.0)
    assert branched.examples_to_loss(curve, target) == pytest.approx(250.0)
    assert branched.loss_at_examples(curve, 700.0) == pytest.approx(3.0 * math.exp(-1.4))
    assert branched.examples_to_loss(curve, 1e-9) is None


def test_branched_fit_recovers_b_crit_on_a_synthetic_loss_table():
    b_crit, base, budget = 300.0, 128, 16 * 2048
    sizes = [128, 256, 512, 1024, 2048]
    # e^-3 at the budget for the base branch; B=2048 needs (2048 + Bc) / (128 + Bc) = 5.5x
    curves = _mccandlish_curves(b_crit, sizes, spacing=2048, length=6 * budget,
                                tau=budget / (3 * (base + b_crit)))
    curves[base] = [p for p in curves[base] if p[0] <= budget]
    out = branched.branched_critical_batch(curves, base, budget, tolerance=0.01, smoothing=1.0)
    assert out["b_crit"] == pytest.approx(b_crit, rel=0.02)
    assert out["never_reached"] == []
    # each branch's steps to the base branch's loss: S_k = Delta (B_k + Bc) / ((B0 + Bc) B_k)
    for b, s in out["steps_to_target_loss"].items():
        assert s == pytest.approx(budget * (b + b_crit) / ((base + b_crit) * b), rel=1e-6)


def test_threshold_critical_batch_matches_the_closed_form():
    b_crit, base, budget, tau, tol = 300.0, 128, 16 * 2048, 3000.0, 0.01
    sizes = [128, 256, 512, 1024, 2048]
    curves = _mccandlish_curves(b_crit, sizes, spacing=1024, length=budget, tau=tau)
    out = branched.branched_critical_batch(curves, base, budget, tolerance=tol, smoothing=1.0)
    # L_k / L_0 = exp(Delta / tau (1/(B0+Bc) - 1/(Bk+Bc))) grows with B: the largest within tol
    ratio = {b: math.exp(budget / tau * (1 / (base + b_crit) - 1 / (b + b_crit))) for b in sizes}
    expected = max(b for b in sizes if ratio[b] <= 1 + tol)
    assert expected == 256   # the table is made so that the answer is neither end
    assert out["threshold"]["b_crit"] == expected
    scanned = out["threshold"]["loss_over_best"]   # up to and including the first miss
    assert sorted(scanned) == [128, 256, 512]
    for b in scanned:
        assert scanned[b] == pytest.approx(ratio[b], rel=1e-6)
    # the scan stops at the first miss even when a later batch size is within tolerance again
    table = branched.threshold_critical_batch({128: 1.0, 256: 1.005, 512: 1.2, 1024: 1.0}, 0.01)
    assert table["b_crit"] == 256


def test_smoothing_is_an_ema_of_log_loss():
    curve = [(0, 1.0), (1, math.e ** -2), (2, math.e ** -2)]
    got = [l for _, l in branched.smooth(curve, 0.5)]
    assert got == pytest.approx([1.0, math.exp(-1.0), math.exp(-1.5)])


def test_branch_plan_budget_and_cadence():
    plan = branch_plan(128, GRID, max_factor=16, largest_branch_steps=8, examples_factor=4.0)
    assert plan["batch_sizes"] == [128, 256, 512, 1024, 2048]
    assert plan["examples_budget"] == 8 * 2048
    assert plan["runs"][128] == {"num_steps": 128, "eval_every_steps": 16}
    assert plan["runs"][2048] == {"num_steps": 32, "eval_every_steps": 1}
    for b, run in plan["runs"].items():   # every branch evaluates every budget / 8 examples
        assert run["eval_every_steps"] * b == plan["examples_budget"] // 8
    assert branched.branch_factor("adam", 4) == 2.0 and branched.branch_factor("momentum", 4) == 4
    assert branched.branch_factor("momentum", 4, "sqrt") == 2.0
    assert branched.branch_factor("adam", 4, "linear") == 4.0
    assert branched.branch_factor("adam", 4, "none") == 1.0
    with pytest.raises(ValueError, match="'cubic' is not one of"):
        branched.branch_factor("adam", 4, "cubic")


def test_measurement_files_are_reused_and_never_overwritten(tmp_path):
    path = str(tmp_path / "m" / "x.json")
    calls = []
    measure = lambda: calls.append(1) or {"value": 1.5}   # noqa: E731
    assert reuse_or_measure(path, "k", {"b": 1}, measure) == {"value": 1.5}
    mtime = os.path.getmtime(path)
    assert reuse_or_measure(path, "k", {"b": 1}, measure) == {"value": 1.5}
    assert calls == [1] and os.path.getmtime(path) == mtime
    with pytest.raises(AdviseError, match=r"b: 1 in the file vs 2 now"):
        reuse_or_measure(path, "k", {"b": 2}, measure)
    assert json.load(open(path))["settings"] == {"b": 1}


def test_sweep_estimate_of_the_committed_study():
    from bsgap.advise.sweep_fit import sweep_estimate
    from helpers import ROOT

    r = sweep_estimate(os.path.join(ROOT, "results/embedded/study_steps_to_target"), 0.9)
    measured = [1178, 744, 390, 196, 132, 92, 70, 66]   # README: the study's steps to 90%
    assert r["measured_steps_to_target"] == dict(zip(GRID, map(float, measured)))
    assert r["b_crit"] == pytest.approx(fit_critical_batch(GRID, measured)["b_crit"])
    assert r["b_crit"] == pytest.approx(372, rel=0.01)
    assert r["num_runs"] == 52 and r["runs_with_compile_seconds"] == 52


def test_pilot_lr_search_picks_the_fewest_steps_and_extends_past_an_edge():
    from ml_collections import ConfigDict

    from bsgap.advise.pilot import beyond_edge, choose_learning_rate
    from bsgap.advise.records import AdviseError

    specs = [(ConfigDict({"learning_rate": 0.1 * f}), f"/w/lr_x{f:g}") for f in (0.5, 1, 2)]
    ends = [{"status": "target_reached", "steps_to_target": 40, "best_eval_accuracy": 0.95},
            {"status": "target_reached", "steps_to_target": 30, "best_eval_accuracy": 0.95},
            {"status": "diverged", "steps_to_target": None, "best_eval_accuracy": 0.1}]
    got = choose_learning_rate(specs, ends, (0.5, 1, 2))
    assert (got["chosen_factor"], got["run_dir"], got["at_grid_edge"]) == (1, "/w/lr_x1", False)
    assert got["base_learning_rate"] == pytest.approx(0.1)
    # a tie goes to the factor nearest 1; the fastest at the top edge is flagged
    ends[0]["steps_to_target"] = ends[2]["steps_to_target"] = 30
    got = choose_learning_rate(specs, ends, (0.5, 1, 2))
    assert got["chosen_factor"] == 1
    ends[2]["steps_to_target"] = 20
    got = choose_learning_rate(specs, ends, (0.5, 1, 2))
    assert (got["chosen_factor"], got["at_grid_edge"]) == (2, True)
    assert beyond_edge((0.5, 1, 2), 2) == 4 and beyond_edge((0.5, 1, 2), 0.5) == 0.25
    assert beyond_edge((1, 3), 3) == 9 and beyond_edge((0.5, 1, 2), 1) is None
    assert beyond_edge((1,), 1) is None
    for e in ends:
        e.update(steps_to_target=None, status="complete")
    with pytest.raises(AdviseError, match=r"x0.5: complete at best accuracy 0.95"):
        choose_learning_rate(specs, ends, (0.5, 1, 2))


def test_a_missing_estimate_says_why():
    """The image model's case (1 device, BN over the batch: one small batch per step, so no online
    estimate) and the others, as make_advice records them in advice.json."""
    from bsgap.advise.advice import b_crit_estimates

    layout = {"num_devices": 1, "accumulation_steps": 1, "microbatch": 64}
    pilot = {"batch_size": 64, "online_noise": [], "layout": layout}
    exact = [{"step": 445, "b_simple": 8.0, "b_simple_unbiased": 11.3, "num_examples": 1437}]
    branched = [{"step": 100, "examples_seen": 6400, "b_crit": None, "never_reached": [512],
                 "fit": {"at_bound": True}, "threshold": {"b_crit": 128}}]
    estimates, why, _ = b_crit_estimates(pilot, exact, branched, None)
    assert estimates == {"noise_scale": 11.3, "noise_scale_online": None, "branched": None,
                         "sweep": None}
    assert set(why) == {"noise_scale_online", "branched", "sweep"}
    assert why["noise_scale_online"].startswith(
        "the pilot's step had one small batch (1 device(s) x 1 microbatch(es) of 64)")
    assert "never reached the base loss: [512]" in why["branched"]
    assert "sqrt" not in why["branched"]   # its lr rule is not known here: no hint
    branched[-1]["learning_rates"] = {"64": 0.1, "256": 0.4, "512": 0.8}   # scaled by k
    _, why, _ = b_crit_estimates(pilot, exact, branched, None)
    assert why["branched"].endswith("--branch_lr_rule=sqrt scales it by sqrt(k)")
    branched[-1]["learning_rates"] = {"64": 0.1, "256": 0.2, "512": 0.1 * 8 ** 0.5}   # by sqrt(k)
    _, why, _ = b_crit_estimates(pilot, exact, branched, None)
    assert "sqrt" not in why["branched"]
    assert why["sweep"] == "no --sweep root given"
    exact[-1]["b_simple_unbiased"] = float("inf")
    _, why, _ = b_crit_estimates(dict(pilot, online_noise=[{"step": 500, "b_simple": 3.0}]),
                                 exact, [], None)
    assert "is inf, not a positive number" in why["noise_scale"]
    assert why["noise_scale_online"] == "the pilot logged no online estimate at or before step 445"
    assert why["branched"].startswith("no branch point")
    # a non-positive online estimate is kept as measured, and said to be no B_crit
    estimates, why, _ = b_crit_estimates(
        dict(pilot, online_noise=[{"step": 400, "b_simple": -4.0}]), exact, [], None)
    assert estimates["noise_scale_online"] == -4.0
    assert why["noise_scale_online"] == ("the online estimate at pilot step 445 is -4.0, not a "
                                         "positive number (its |G|^2 EMA was not above zero)")
