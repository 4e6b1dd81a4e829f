"""Critical batch size from branched training (Merrill et al. 2025, "Critical Batch Size
Revisited"): pure functions of the branches' loss curves.

From one checkpoint of a run at B0, branches at B_k = k B0 (learning rate x k for SGD-type
optimizers, x sqrt(k) for Adam) train on. Each branch's curve is its eval loss vs the examples it
has seen since the branch point. Two estimates come from the same curves:

Each curve is first smoothed by an exponential moving average over its evaluations
(``smooth``, weight ``SMOOTHING`` on the newest; Merrill et al. smooth their losses the same way),
so that one lucky evaluation does not decide.

* ``fit`` (used for prediction): the base branch (k = 1) trains for ``examples_budget`` examples
  and reaches a (smoothed) loss L*; every branch's examples to L* -- e_k, interpolated linearly in log loss
  between evaluations (exact for an exponentially decaying loss) -- give its steps to L*,
  S_k = e_k / B_k, and McCandlish et al.'s S = S_min (1 + B_crit / B) is fitted to (B_k, S_k)
  (bsgap.critical_batch.fit_critical_batch). This is B_crit in the sense the steps-to-target
  prediction needs, measured locally after the branch point.
* ``threshold`` (Merrill et al.'s definition): at equal examples (``examples_budget``), the largest
  B_k whose loss is within a relative ``tolerance`` of the best loss of the branches at B <= B_k,
  taking the batch sizes in increasing order and stopping at the first that is not. It depends on
  the tolerance and the length of the branches, and is not the same quantity as McCandlish's
  B_crit; it is reported beside the fit, not used to predict.
"""
from __future__ import annotations

import math

from bsgap.critical_batch import fit_critical_batch


SMOOTHING = 0.5


def smooth(curve, weight: float = SMOOTHING) -> list[tuple[float, float]]:
    """EMA of the losses in evaluation order: m_0 = l_0, m_i = weight l_i + (1 - weight) m_{i-1}
    (computed on log loss, so a constant-rate decay stays one)."""
    out, m = [], None
    for e, loss in _clean(curve):
        m = math.log(loss) if m is None else weight * math.log(loss) + (1 - weight) * m
        out.append((e, math.exp(m)))
    return out


def _clean(curve) -> list[tuple[float, float]]:
    return sorted((float(e), float(l)) for e, l in curve if l is not None and math.isfinite(l)
                  and l > 0)


def examples_to_loss(curve, target_loss: float) -> float | None:
    """Examples at which a curve [(examples, loss), ...] first reaches ``target_loss``,
    interpolated linearly in log loss between the evaluation before and the one at or below it;
    None when it never does. A curve already below at its first point returns that point."""
    points = _clean(curve)
    for i, (e, loss) in enumerate(points):
        if loss <= target_loss:
            if i == 0:
                return e
            e0, l0 = points[i - 1]
            t = (math.log(l0) - math.log(target_loss)) / (math.log(l0) - math.log(loss))
            return e0 + t * (e - e0)
    return None


def loss_at_examples(curve, examples: float) -> float | None:
    """The curve's loss at ``examples`` (log-linear interpolation; None outside its range)."""
    points = _clean(curve)
    for (e0, l0), (e1, l1) in zip(points, points[1:]):
        if e0 <= examples <= e1:
            t = 0.0 if e1 == e0 else (examples - e0) / (e1 - e0)
            return math.exp((1 - t) * math.log(l0) + t * math.log(l1))
    if points and points[-1][0] == examples:
        return points[-1][1]
    return None


def threshold_critical_batch(losses: dict, tolerance: float) -> dict:
    """Merrill et al. (2025): the largest batch size whose loss is within ``tolerance`` (relative)
    of the best loss among batch sizes up to it, scanning upwards and stopping at the first miss.
    ``losses``: {batch_size: loss at equal examples}."""
    batch_sizes = sorted(int(b) for b in losses if losses[b] is not None)
    best, passed, ratios = math.inf, None, {}
    for b in batch_sizes:
        best = min(best, losses[b])
        ratios[b] = losses[b] / best
        if ratios[b] > 1.0 + tolerance:
            break
        passed = b
    return {"b_crit": passed, "tolerance": tolerance, "loss_over_best": ratios,
            "largest_tried": batch_sizes[-1] if batch_sizes else None,
            "at_largest": passed is not None and passed == (batch_sizes[-1] if batch_sizes
                                                            else None)}


def branched_critical_batch(curves: dict, base_batch_size: int, examples_budget: float,
                            tolerance: float = 0.01, smoothing: float = SMOOTHING) -> dict:
    """Both estimates (module docstring) from ``curves`` = {batch_size: [(examples, loss), ...]}
    with ``base_batch_size`` among them (its curve defines L* at ``examples_budget``)."""
    curves = {b: smooth(c, smoothing) for b, c in curves.items()}
    base = curves[base_batch_size]
    target_loss = loss_at_examples(base, examples_budget)
    if target_loss is None:
        raise ValueError(f"the base branch (B={base_batch_size}) has no loss at "
                         f"{examples_budget} examples")
    reached, steps, missed = [], [], []
    for b in sorted(curves):
        e = examples_to_loss(curves[b], target_loss)
        if e is None:
            missed.append(int(b))
        else:
            reached.append(int(b))
            steps.append(e / b)
    fit = fit_critical_batch(reached, steps)
    equal = {int(b): loss_at_examples(c, examples_budget) for b, c in curves.items()}
    return {"b_crit": fit["b_crit"] if fit.get("b_crit") and not fit["at_bound"] else None,
            "fit": fit, "target_loss": target_loss, "examples_budget": examples_budget,
            "steps_to_target_loss": dict(zip(reached, steps)), "never_reached": missed,
            "threshold": threshold_critical_batch(equal, tolerance),
            "loss_at_equal_examples": equal, "smoothing": smoothing}


BRANCH_LR_RULES = ("auto", "linear", "sqrt", "none")


def branch_factor(optimizer: str, k: float, rule: str = "auto") -> float:
    """Learning-rate factor of a branch at k x the batch: 'auto' is Merrill et al.'s (2025) -- k
    for SGD-type optimizers, sqrt(k) for Adam-type (Malladi et al. 2022 for the square root);
    'linear' k, 'sqrt' sqrt(k), 'none' 1."""
    if rule not in BRANCH_LR_RULES:
        raise ValueError(f"branch lr rule {rule!r} is not one of {BRANCH_LR_RULES}")
    if rule == "auto":
        rule = "sqrt" if optimizer.startswith("adam") else "linear"
    return {"linear": float(k), "sqrt": math.sqrt(k), "none": 1.0}[rule]

