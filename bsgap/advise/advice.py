"""advice.json: the three B_crit estimates, each one's predicted curve, the recommendation.

The estimates (each None where it could not be measured, and then ``b_crit_unavailable`` says why):
  * ``noise_scale``: the exact per-example B_simple, bias-corrected for the subsample, at the
    pilot's last checkpoint (where it reached the target; BN with running averages);
  * ``noise_scale_online``: the trainer's online two-batch B_simple (EMA) logged last at or before
    that step (BN in training mode, as trained); both over the whole pilot are kept in
    ``b_crit_over_training``;
  * ``branched``: the McCandlish fit to the branches from the pilot's latest branch point;
  * ``sweep``: the --sweep root's fit (null without --sweep).
The recommendation uses the sweep when there is one (it is measured), else the branched estimate,
else the noise scale; ``alternatives`` says what each other estimate would have recommended.
"""
from __future__ import annotations

import math

from bsgap.advise import predict

PREFERENCE = ("sweep", "branched", "noise_scale")


def _finite(x) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def b_crit_estimates(pilot: dict, exact: list[dict], branched: list[dict], sweep: dict | None):
    last = exact[-1] if exact else None
    noise = last["b_simple_unbiased"] if last and _finite(last["b_simple_unbiased"]) else None
    from bsgap.advise.pilot import online_noise_at

    online = online_noise_at(pilot, last["step"]) if last else None
    estimates = {"noise_scale": noise, "noise_scale_online": online,
                 "branched": branched[-1]["b_crit"] if branched else None,
                 "sweep": sweep["b_crit"] if sweep else None}

    reasons = {name: why_unavailable(name, value, pilot, exact, branched, sweep)
               for name, value in estimates.items() if not _finite(value)}
    over_training = {
        "noise_scale_exact": [{"step": e["step"], "examples": e["step"] * pilot["batch_size"],
                               "b_simple_unbiased": e["b_simple_unbiased"],
                               "b_simple": e["b_simple"]} for e in exact],
        "noise_scale_online": pilot["online_noise"],
        "branched": [{"step": b["step"], "examples": b["examples_seen"], "b_crit": b["b_crit"],
                      "threshold_b_crit": b["threshold"]["b_crit"]} for b in branched],
        "sweep": None if not sweep else sweep["b_crit"]}
    return estimates, reasons, over_training


def why_unavailable(name: str, value, pilot: dict, exact: list[dict], branched: list[dict],
                    sweep: dict | None) -> str:
    """One sentence: why the estimate ``name`` (``value`` as b_crit_estimates found it: None, or
    not a positive number) is missing from advice.json."""
    if name == "sweep":
        return ("no --sweep root given" if sweep is None else
                f"the sweep's fit gave no B_crit ({sweep.get('fit')})")
    if name == "noise_scale":
        if not exact:
            return "no pilot checkpoint was measured"
        last = exact[-1]
        return (f"the exact per-example estimate at pilot step {last['step']} is "
                f"{last['b_simple_unbiased']!r}, not a positive number (the bias-corrected "
                f"|G|^2 was not above zero with {last['num_examples']} examples)")
    if name == "noise_scale_online":
        step = exact[-1]["step"] if exact else None
        if value is not None:
            return (f"the online estimate at pilot step {step} is {value!r}, not a positive "
                    "number (its |G|^2 EMA was not above zero)")
        if pilot["online_noise"]:
            return f"the pilot logged no online estimate at or before step {step}"
        lay = pilot["layout"]
        if lay["num_devices"] * lay["accumulation_steps"] >= 2:
            return "the pilot logged no online estimate"
        return (f"the pilot's step had one small batch ({lay['num_devices']} device(s) x "
                f"{lay['accumulation_steps']} microbatch(es) of {lay['microbatch']}): the "
                "two-batch estimate needs >= 2. The advisor splits a one-device step into "
                "microbatches only where the config sets no microbatch_size and the BN group "
                "stays the same, and here it could not (BN over the batch follows the layout, or "
                "no half or quarter of the batch is a multiple of the ghost batch), so run on >= 2 "
                "devices or with a fixed ghost_batch_size for it")
    if not branched:
        return ("no branch point: the pilot had no checkpoint at or before the branch fractions "
                "of its steps to the target (--branch_fractions, --pilot_checkpoint_every_steps)")
    last = branched[-1]
    lrs = {int(b): lr for b, lr in last.get("learning_rates", {}).items()}
    base, top = min(lrs, default=0), max(lrs, default=0)
    linear = top > base and math.isclose(lrs[top] / lrs[base], top / base, rel_tol=1e-6)
    hint = ("; the branches' lr was scaled by k, which may be too high for the large ones: "
            "--branch_lr_rule=sqrt scales it by sqrt(k)" if last["never_reached"] and linear
            else "")
    return (f"the branches from pilot step {last['step']} gave no fit (branch batch sizes that "
            f"never reached the base loss: {last['never_reached']}; fit at its bound: "
            f"{last['fit'].get('at_bound')}){hint}")


def make_advice(config, options, speed: dict, pilot: dict, exact: list[dict],
                branched: list[dict], sweep: dict | None, seconds: float) -> dict:
    estimates, unavailable, over_training = b_crit_estimates(pilot, exact, branched, sweep)
    throughput = {int(b): r for b, r in speed.items()}
    predictions = {name: predict.prediction(
        config, b_crit=value, pilot_steps=pilot["steps_to_target"],
        pilot_batch_size=pilot["batch_size"], throughput=throughput, within=options.within)
        for name, value in estimates.items() if _finite(value)}
    chosen = next((n for n in PREFERENCE if n in predictions), None)
    measured = sweep["measured_steps_to_target"] if sweep else None
    for p in predictions.values():
        steps = {r["batch_size"]: r["steps_to_target"] for r in p["predicted"]}
        p["error_vs_sweep"] = (predict.relative_errors(
            steps, {int(b): s for b, s in measured.items()}) if measured else None)
    best = predictions[chosen]["fastest"] if chosen else None
    rec = best["batch_size"] if best else None
    result = {
        "target_accuracy": options.target_accuracy,
        "recommended_batch_size": rec,
        "batch_size_range": best["range"] if best else None,
        "learning_rate": predict.learning_rate_for(config, rec) if rec else None,
        "learning_rate_rule": {"rule": config.lr_scaling, "base": config.learning_rate,
                               "reference_batch_size": config.reference_batch_size},
        "estimate_used": chosen,
        "b_crit": estimates,
        "b_crit_unavailable": unavailable,
        "b_crit_over_training": over_training,
        "predicted": predictions[chosen]["predicted"] if chosen else [],
        "predictions": predictions,
        "alternatives": {n: p["fastest"] for n, p in predictions.items()},
        "pilot": {k: pilot[k] for k in ("batch_size", "learning_rate", "steps_to_target",
                                        "examples_to_target", "train_seconds", "layout",
                                        "checkpoint_steps")},
        "branches": [{k: b[k] for k in ("step", "examples_seen", "b_crit", "fit", "threshold",
                                        "steps_to_target_loss", "never_reached", "target_loss",
                                        "learning_rates", "examples_budget")} for b in branched],
        "noise": exact,
        "throughput": {b: throughput[b] for b in sorted(throughput)},
        "sweep": sweep,
        "advisor_seconds_this_invocation": seconds,
        "how": {"model": "S(B) = S_min (1 + B_crit / B), S_min = S(B_pilot) / (1 + B_crit / "
                         "B_pilot) (McCandlish et al. 2018); seconds = S B / examples_per_second",
                "noise_scale": "exact per-example B_simple, bias-corrected, at the pilot's last "
                               "checkpoint (bsgap.curvature.gradient_noise, BN in eval mode)",
                "branched": "McCandlish fit to the branches' steps to the base branch's loss "
                            "(Merrill et al. 2025 branching; bsgap/advise/branched.py)",
                "noise_scale_online": "the trainer's online two-batch B_simple EMA (McCandlish "
                                      "et al. 2018 App. A.1) at that step",
                "sweep": "analysis.steps_to_target's fit to the sweep's fewest steps per B",
                "options": {k: (list(v) if isinstance(v, tuple) else v)
                            for k, v in vars(options).items()}},
    }
    return result


def _search_outcome(trial: dict) -> str:
    """How one trial of the pilot's lr search ended, for the summary."""
    if trial["steps_to_target"] is not None:
        return f"{trial['steps_to_target']} steps"
    if str(trial.get("stop_reason") or "").startswith("outpaced"):
        return f"outpaced at step {trial.get('steps')}"
    return str(trial["status"])


def summary_lines(advice: dict) -> list[str]:
    """The printed summary: what to run, why, and how sure."""
    lines = []
    t = advice["target_accuracy"]
    if advice["recommended_batch_size"] is None:
        return [f"no estimate of B_crit could be made; see {advice.get('path', 'advice.json')}"]
    lo, hi = advice["batch_size_range"]
    lines.append(f"to reach {t:g} accuracy soonest on this machine: batch size "
                 f"{advice['recommended_batch_size']} with learning rate "
                 f"{advice['learning_rate']:.4g} ({advice['learning_rate_rule']['rule']} rule); "
                 f"every B in [{lo}, {hi}] is predicted within 10% of it "
                 f"(estimate used: {advice['estimate_used']})")
    search = advice.get("pilot_lr_search")
    if search:
        tried = ", ".join(f"x{r['factor']:g}: {_search_outcome(r)}"
                          for r in sorted(search["trials"], key=lambda r: r["factor"]))
        lines.append(f"  pilot lr tuned at B={advice['pilot']['batch_size']}: the config's lr "
                     f"x{search['chosen_factor']:g} reached the target soonest ({tried})"
                     + ("; at the edge of the grid searched" if search["at_grid_edge"] else ""))
    for name, value in advice["b_crit"].items():
        p = advice["predictions"].get(name)
        if p is None:
            why = advice.get("b_crit_unavailable", {}).get(name)
            lines.append(f"  B_crit from {name}: not available" + (f" ({why})" if why else ""))
            continue
        f = p["fastest"]
        err = p.get("error_vs_sweep")
        err_text = (f"; steps vs the sweep: median error {err['median']:.0%}, max "
                    f"{err['max']:.0%}" if err else "")
        lines.append(f"  B_crit from {name}: {value:.4g} -> fastest B={f['batch_size']} "
                     f"({f['seconds']:.3g} s of training steps predicted), S_min "
                     f"{p['s_min']:.4g}{err_text}")
    lines.append("  B | examples/s | predicted steps | predicted seconds | lr")
    for r in advice["predicted"]:
        lines.append(f"  {r['batch_size']} | {r['examples_per_second']:,.0f}"
                     f"{' (input-limited)' if r.get('input_limited') else ''} | "
                     f"{r['steps_to_target']:.0f} | {r['seconds_to_target']:.3g} | "
                     f"{r['learning_rate']:.4g}")
    cost = advice.get("cost")
    if cost:
        parts = ", ".join(f"{k} {v['cpu_seconds']:.0f}" for k, v in cost["by_kind"].items())
        lines.append(f"  the measurements made in this workdir cost "
                     f"{cost['wall_seconds']:.0f} s wall, {cost['cpu_seconds']:.0f} CPU-s "
                     f"({parts}; advice.json 'cost')")
    return lines
