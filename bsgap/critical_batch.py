"""The critical batch size of McCandlish et al. (2018) from steps to a target at several batch sizes.

S(B) = S_min (1 + B_crit / B) and E(B) = E_min (1 + B / B_crit), B_crit = E_min / S_min: the fit
(`fit_critical_batch`, least squares on log S) and the curve it implies (`fitted_steps`). Used by
`analysis.steps_to_target` (a measured sweep) and `bsgap.advise` (a sweep, or branched training).
Pure numpy / scipy: no JAX, no files.
"""
from __future__ import annotations

import math

import numpy as np


def _profile_log_s_min(log_b: np.ndarray, log_s: np.ndarray, log_b_crit: float):
    """For a fixed B_crit the least-squares log S_min is closed form: the mean residual."""
    shape = np.log1p(np.exp(log_b_crit - log_b))          # log(1 + B_crit / B)
    log_s_min = float(np.mean(log_s - shape))
    residual = log_s - log_s_min - shape
    return log_s_min, float(np.sum(residual ** 2))


def fit_critical_batch(batch_sizes, steps, leave_one_out: bool = True) -> dict:
    """McCandlish et al. (2018, eq. 2.11): (S/S_min - 1)(E/E_min - 1) = 1 with E = B S gives
    S(B) = S_min (1 + B_crit / B) and E(B) = E_min (1 + B / B_crit), B_crit = E_min / S_min.

    Fits S_min and B_crit by least squares on log S (each batch size weighs the same whatever its
    step count): for a fixed B_crit the best log S_min is the mean of log S - log(1 + B_crit/B),
    so the fit is a one-dimensional search over log B_crit (a grid over
    [min B / 1000, 1000 max B] refined by a bounded Brent search). `at_bound` is True when the
    optimum lies at that range's edge: the batch sizes do not identify B_crit (steps never stop
    falling, or never fell).

    Returns {'s_min', 'b_crit', 'e_min', 'rms_log_residual', 'n_points', 'at_bound',
    'batch_sizes', 'steps', 'b_crit_leave_one_out'}; None values and a 'reason' with fewer than
    2 points. ``b_crit_leave_one_out`` is [lowest, highest] B_crit over the fits that leave out
    one batch size each (with >= 3 batch sizes; None otherwise): with a handful of points, how
    much the estimate rests on any one of them.
    """
    from scipy.optimize import minimize_scalar

    b = np.asarray(batch_sizes, dtype=float)
    s = np.asarray(steps, dtype=float)
    keep = np.isfinite(b) & np.isfinite(s) & (b > 0) & (s > 0)
    b, s = b[keep], s[keep]
    result = {"s_min": None, "b_crit": None, "e_min": None, "rms_log_residual": None,
              "n_points": int(len(b)), "at_bound": None, "batch_sizes": b.tolist(),
              "steps": s.tolist(),
              "model": "S = S_min (1 + B_crit / B), E = E_min (1 + B / B_crit), "
                       "B_crit = E_min / S_min; least squares on log S"}
    if len(np.unique(b)) < 2:
        result["reason"] = (f"{len(np.unique(b))} batch size(s) reached the target; the fit "
                            "needs at least 2")
        return result
    log_b, log_s = np.log(b), np.log(s)
    lo, hi = math.log(b.min() / 1000.0), math.log(b.max() * 1000.0)
    grid = np.linspace(lo, hi, 2001)
    losses = np.array([_profile_log_s_min(log_b, log_s, g)[1] for g in grid])
    k = int(np.argmin(losses))
    a, c = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    found = minimize_scalar(lambda g: _profile_log_s_min(log_b, log_s, g)[1], bounds=(a, c),
                            method="bounded", options={"xatol": 1e-12})
    log_b_crit = float(found.x) if found.fun <= losses[k] else float(grid[k])
    log_s_min, sse = _profile_log_s_min(log_b, log_s, log_b_crit)
    b_crit, s_min = math.exp(log_b_crit), math.exp(log_s_min)
    result.update(s_min=s_min, b_crit=b_crit, e_min=s_min * b_crit,
                  rms_log_residual=math.sqrt(sse / len(b)),
                  at_bound=bool(k == 0 or k == len(grid) - 1), b_crit_leave_one_out=None)
    if leave_one_out and len(np.unique(b)) >= 3:
        others = [fit_critical_batch(np.delete(b, i), np.delete(s, i),
                                     leave_one_out=False)["b_crit"] for i in range(len(b))]
        others = [x for x in others if x is not None]
        result["b_crit_leave_one_out"] = [min(others), max(others)] if others else None
    return result


def fitted_steps(fit: dict, batch_sizes) -> np.ndarray:
    """S(B) = S_min (1 + B_crit / B) of a fit."""
    b = np.asarray(batch_sizes, dtype=float)
    return fit["s_min"] * (1.0 + fit["b_crit"] / b)
