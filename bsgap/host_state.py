"""Trainer state that lives on the host (one per trial), and how metrics update it.

It is saved with every checkpoint as JSON, so a resumed run continues its best-accuracy,
patience, time-to-target and pending log-interval sums exactly where the checkpoint left them.
"""
from __future__ import annotations

import dataclasses
import math

MEAN_KEYS = ("train_loss", "train_accuracy", "grad_norm")
LAST_KEYS = ("learning_rate", "b_simple", "noise_trace_cov", "noise_grad_norm_sq")


@dataclasses.dataclass
class HostState:
    status: str = "running"
    best_eval_accuracy: float | None = None
    best_eval_step: int | None = None
    final_eval_accuracy: float | None = None
    final_eval_loss: float | None = None
    evals_since_best: int = 0
    steps_to_target: int | None = None
    examples_to_target: int | None = None
    seconds_to_target: float | None = None
    train_seconds: float = 0.0
    steady_seconds: float = 0.0
    steady_examples: int = 0
    diverged_at_step: int | None = None
    stop_reason: str | None = None   # why an early_stopped trial stopped (patience, a race)
    pending: dict = dataclasses.field(default_factory=dict)  # sums since the last metrics record


def flush_metrics(host: HostState, fetched: list[dict], step: int, interval_seconds: float,
                  first_interval: bool, *, batch_size: int, log_every: int, total_steps: int,
                  num_train_examples: int) -> dict | None:
    """Fold one trial's fetched per-step metrics (``step`` is the last one's) into the pending
    sums; return the metrics record at log steps (and the last step), else None. A non-finite loss
    sets status 'diverged' and the step it happened at."""
    pend = host.pending
    for i, m in enumerate(fetched):
        loss = float(m["train_loss"])
        if not math.isfinite(loss):
            host.status = "diverged"
            host.diverged_at_step = step - len(fetched) + i + 1
            return None
        pend["count"] = pend.get("count", 0) + 1
        for k in MEAN_KEYS:
            pend[k] = pend.get(k, 0.0) + float(m[k])
        for k in LAST_KEYS:
            if k in m:
                pend[k] = float(m[k])
    pend["seconds"] = pend.get("seconds", 0.0) + interval_seconds
    host.train_seconds += interval_seconds
    if not first_interval:
        host.steady_seconds += interval_seconds
        host.steady_examples += len(fetched) * batch_size
    if step % log_every and step != total_steps:
        return None
    n, seconds = pend.pop("count"), pend.pop("seconds")
    record = {"step": step, "examples": step * batch_size,
              "epoch": step * batch_size / num_train_examples,
              "examples_per_second": n * batch_size / seconds if seconds > 0 else None}
    for k in MEAN_KEYS:
        record[k] = pend.pop(k) / n
    record.update({k: pend.pop(k) for k in LAST_KEYS if k in pend})
    return record


def update_after_eval(host: HostState, config, step: int, result: dict) -> None:
    """Best accuracy, first crossing of the target (steps, examples, train seconds), stopping."""
    acc = result["accuracy"]
    host.final_eval_accuracy, host.final_eval_loss = acc, result["loss"]
    if host.best_eval_accuracy is None or acc > host.best_eval_accuracy:
        host.best_eval_accuracy, host.best_eval_step, host.evals_since_best = acc, step, 0
    else:
        host.evals_since_best += 1
    target = config.target_accuracy
    if target is not None and host.steps_to_target is None and acc >= target:
        host.steps_to_target, host.examples_to_target = step, step * config.batch_size
        host.seconds_to_target = host.train_seconds
        if config.stop_at_target:
            host.status = "target_reached"
    if config.patience_evals and host.evals_since_best >= config.patience_evals \
            and host.status == "running":
        host.status = "early_stopped"
        host.stop_reason = (f"patience: {host.evals_since_best} evaluations without a better "
                            f"accuracy than {host.best_eval_accuracy} (step {host.best_eval_step})")


def run_summary(host: HostState, config, resolved, step: int, *, compile_seconds: float,
                trials: int = 1) -> dict:
    """summary.json of a trial that ended at ``step`` (README: the run directory); a diverged
    trial's steps and examples are those up to its non-finite step (it stopped there)."""
    if host.status == "diverged" and host.diverged_at_step is not None:
        step = host.diverged_at_step
    return {
        "status": host.status, "steps": step, "examples": step * config.batch_size,
        "epochs": step * config.batch_size / resolved.num_train_examples,
        "total_steps": resolved.total_steps, "batch_size": config.batch_size,
        "lr_scaling": config.lr_scaling, "learning_rate": resolved.scaled_learning_rate,
        "seed": config.seed, "best_eval_accuracy": host.best_eval_accuracy,
        "best_eval_step": host.best_eval_step, "final_eval_accuracy": host.final_eval_accuracy,
        "final_eval_loss": host.final_eval_loss, "target_accuracy": config.target_accuracy,
        "steps_to_target": host.steps_to_target, "examples_to_target": host.examples_to_target,
        "seconds_to_target": host.seconds_to_target,
        "examples_per_second": (host.steady_examples / host.steady_seconds
                                if host.steady_seconds > 0 else None),
        "train_seconds": host.train_seconds, "compile_seconds": compile_seconds,
        "diverged_at_step": host.diverged_at_step, "stop_reason": host.stop_reason,
        "trials_in_program": trials,
    }
