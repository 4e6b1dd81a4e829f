"""The prediction: steps, examples and seconds to the target vs batch size, from one B_crit.

McCandlish et al. (2018, eq. 2.11): S(B) = S_min (1 + B_crit / B), E(B) = B S(B). The pilot
measured S(B_p), so S_min = S(B_p) / (1 + B_crit / B_p), and the whole curve follows from B_crit.
With the measured computational speed, seconds(B) = S(B) B / examples_per_second(B) (DESIGN.md
question 3). The fastest batch size minimizes it; the range is every batch size of the grid whose
predicted seconds are within ``within`` (10%) of the fastest's.
"""
from __future__ import annotations

import math
import statistics

from bsgap.scaling import lr_scale_factor


def s_min_from_pilot(pilot_steps: float, pilot_batch_size: float, b_crit: float) -> float:
    return pilot_steps / (1.0 + b_crit / pilot_batch_size)


def predicted_steps(pilot_steps: float, pilot_batch_size: float, b_crit: float,
                    batch_sizes) -> list[float]:
    s_min = s_min_from_pilot(pilot_steps, pilot_batch_size, b_crit)
    return [s_min * (1.0 + b_crit / b) for b in batch_sizes]


def fastest(batch_sizes, seconds, within: float = 0.10) -> dict | None:
    """The batch size with the fewest seconds (ties: the smaller), and [lo, hi] of those within
    ``within`` of it; None without a finite value."""
    finite = [(s, b) for b, s in zip(batch_sizes, seconds) if s is not None and math.isfinite(s)]
    if not finite:
        return None
    best_seconds, best = min(finite)
    near = [b for s, b in finite if s <= (1.0 + within) * best_seconds]
    return {"batch_size": int(best), "seconds": best_seconds,
            "range": [int(min(near)), int(max(near))], "within": within}


def learning_rate_for(config, batch_size: int) -> float:
    """The config's rule: learning_rate x f(B / reference_batch_size) (bsgap/scaling.py)."""
    return config.learning_rate * lr_scale_factor(batch_size, config.reference_batch_size,
                                                  config.lr_scaling)


def prediction(config, *, b_crit: float, pilot_steps: int, pilot_batch_size: int,
               throughput: dict, within: float = 0.10) -> dict:
    """One estimate's predicted curve over the measured batch sizes and its fastest B."""
    sizes = sorted(throughput)
    steps = predicted_steps(pilot_steps, pilot_batch_size, b_crit, sizes)
    records = []
    for b, s in zip(sizes, steps):
        rate = throughput[b]["examples_per_second"]
        records.append({"batch_size": b, "examples_per_second": rate,
                        "steps_to_target": s, "examples_to_target": s * b,
                        "seconds_to_target": s * b / rate,
                        "learning_rate": learning_rate_for(config, b),
                        "input_limited": throughput[b].get("input_limited")})
    best = fastest(sizes, [r["seconds_to_target"] for r in records], within)
    return {"b_crit": b_crit, "s_min": s_min_from_pilot(pilot_steps, pilot_batch_size, b_crit),
            "e_min": s_min_from_pilot(pilot_steps, pilot_batch_size, b_crit) * b_crit,
            "predicted": records, "fastest": best}


def relative_errors(predicted: dict, measured: dict) -> dict | None:
    """max and median of |predicted / measured - 1| over the batch sizes in both, and the
    largest ratio either way (max(p/m, m/p))."""
    common = sorted(b for b in predicted if measured.get(b) is not None)
    if not common:
        return None
    errors = [abs(predicted[b] / measured[b] - 1.0) for b in common]
    ratios = [max(predicted[b] / measured[b], measured[b] / predicted[b]) for b in common]
    return {"max": max(errors), "median": statistics.median(errors), "max_ratio": max(ratios),
            "batch_sizes": common,
            "per_batch_size": {b: predicted[b] / measured[b] for b in common}}
