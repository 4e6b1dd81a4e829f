"""Branched training from the pilot's checkpoints (Merrill et al. 2025): the runs themselves.

Each branch is an ordinary run directory, ``WORKDIR/branches[-<rule>]/step<S>/bs<B>``, made by the trainer
with one difference (``BranchTrainer``): a new branch starts from the pilot's checkpoint at step S
-- parameters, BN statistics and optimizer state (momentum) -- instead of a fresh initialization,
with its own learning rate (the pilot's at S times ``branched.branch_factor``), a constant
schedule and no warmup. Its step counter, noise EMAs and data order start from zero. A killed
branch resumes from its own checkpoints; a finished one is read back, not rerun. The estimate is
computed from the branches' eval.jsonl (``branched.branched_critical_batch``).
"""
from __future__ import annotations

import os

from bsgap import logbook
from bsgap.advise import branched
from bsgap.advise.throughput import measurement_config
from bsgap.trainer import Trainer


class BranchTrainer(Trainer):
    """A Trainer whose fresh state is the parent run's checkpoint at ``parent_step`` (with the
    branch's own hyperparameters); resuming a branch restores the branch's own checkpoint.

    ``stop_below_loss``: stop (``early_stopped``) at the first evaluation, at or past
    ``min_examples``, where the branch's smoothed eval-loss curve (``start`` points first, as
    ``branched.smooth`` smooths it for the estimate) is at or below it: the estimate needs the
    curve only up to its first crossing of the base branch's loss and past the equal-examples
    budget, so training on changes nothing in it."""

    def __init__(self, config, workdir: str, *, parent_dir: str, parent_step: int,
                 stop_below_loss: float | None = None, min_examples: float = 0.0,
                 start=()):
        self.parent_dir, self.parent_step = parent_dir, parent_step
        self.stop_below_loss, self.min_examples = stop_below_loss, min_examples
        self._curve = list(start)
        super().__init__(config, workdir)

    def _restore(self):
        from bsgap.agreement import decided_by_process_0

        super()._restore()
        # A resumed branch: its curve so far, as eval.jsonl kept it, read by process 0 for every
        # process (bsgap/agreement.py), so that all of them stop at the same evaluation.
        trial = self.trials[0]
        path = os.path.join(trial.workdir, logbook.EVAL_FILE)
        self._curve += [tuple(point) for point in decided_by_process_0(
            lambda: [(float(e["examples"]), e["loss"]) for e in logbook.read_jsonl(path)
                     if e["step"] <= trial.start_step])]

    def _after_eval(self, trial, step: int, result: dict) -> None:
        examples = float(step * trial.config.batch_size)
        self._curve.append((examples, result["loss"]))
        if self.stop_below_loss is None or examples < self.min_examples or not trial.running:
            return
        smoothed = branched.smooth(self._curve)   # drops a non-finite loss: then no stop here
        if smoothed and smoothed[-1][0] == examples and smoothed[-1][1] <= self.stop_below_loss:
            trial.host.status = "early_stopped"
            trial.host.stop_reason = (
                f"reached the base branch's loss {self.stop_below_loss:.6g} (smoothed) at step "
                f"{step}, past the equal-examples budget of {self.min_examples:g}: the branched "
                "estimate needs nothing later")

    def _build(self):
        from bsgap.checkpoint import Checkpointer, abstract_like
        from bsgap.optim import set_hyperparams

        super()._build()
        fresh = self.trial_state(0)
        parent = Checkpointer(self.parent_dir, max_to_keep=100_000)
        try:
            state, _ = parent.restore(self.parent_step, abstract_like(fresh))
        finally:
            parent.manager.close()
        state = state.replace(
            step=fresh.step, noise=fresh.noise, seed=fresh.seed, alive=fresh.alive,
            opt_state=set_hyperparams(state.opt_state, **dict(fresh.opt_state.hyperparams)))
        self._set_trial_state(0, state)


def branch_config(pilot_config, *, batch_size: int, learning_rate: float, num_steps: int,
                  eval_every_steps: int):
    c = measurement_config(pilot_config, batch_size=batch_size, learning_rate=learning_rate,
                           lr_scaling="none", reference_batch_size=batch_size,
                           schedule="constant", warmup_epochs=0.0, num_steps=num_steps,
                           eval_every_steps=eval_every_steps, log_every_steps=eval_every_steps,
                           target_accuracy=None, stop_at_target=False, patience_evals=None,
                           regime_adaptation=False)
    with c.unlocked():
        c.checkpoint_every_steps = max(eval_every_steps, num_steps // 4)
        c.keep_checkpoints = 1
    return c


def branch_plan(pilot_batch_size: int, batch_sizes, max_factor: int, largest_branch_steps: int,
                examples_factor: float, evals_per_budget: int = 8) -> dict:
    """The branches from one checkpoint: batch sizes k B0 of the grid (k = 1 .. max_factor), the
    equal-examples budget (``largest_branch_steps`` steps of the largest branch), the base
    branch's run length (the budget) and the others' (``examples_factor`` x the budget, so that
    a less efficient batch can still reach the base branch's loss), and their eval cadence."""
    sizes = sorted({b for b in batch_sizes if pilot_batch_size <= b <= max_factor
                    * pilot_batch_size and b % pilot_batch_size == 0} | {pilot_batch_size})
    budget = largest_branch_steps * sizes[-1]
    plan = {}
    for b in sizes:
        steps = budget // b if b == pilot_batch_size else int(examples_factor * budget) // b
        per_budget = max(1, budget // b)
        plan[b] = {"num_steps": max(1, steps),
                   "eval_every_steps": max(1, per_budget // evals_per_budget)}
    return {"batch_sizes": sizes, "examples_budget": budget, "runs": plan}


def run_branch(pilot_dir: str, pilot_config, step: int, batch_size: int, learning_rate: float,
               run: dict, root: str, start: list, stop_below_loss: float | None = None,
               min_examples: float = 0.0) -> list[tuple[float, float]]:
    """Train (or resume, or find finished) one branch; its eval curve [(examples, loss)], after
    ``start`` ([(0, the pilot's eval loss at ``step``)] when the pilot evaluated there, else []).
    ``stop_below_loss``, ``min_examples``: BranchTrainer's early stop."""
    c = branch_config(pilot_config, batch_size=batch_size, learning_rate=learning_rate,
                      num_steps=run["num_steps"], eval_every_steps=run["eval_every_steps"])
    workdir = os.path.join(root, f"bs{batch_size}")
    BranchTrainer(c, workdir, parent_dir=pilot_dir, parent_step=step,
                  stop_below_loss=stop_below_loss, min_examples=min_examples, start=start).run()
    evals = logbook.read_jsonl(os.path.join(workdir, logbook.EVAL_FILE))
    return start + [(float(e["examples"]), e["loss"]) for e in evals]


def run_branches(pilot_dir: str, pilot_config, pilot: dict, step: int, plan: dict,
                 lr_at_step: float, tolerance: float, root: str, log,
                 lr_rule: str = "auto", stop_early: bool = True) -> dict:
    """Every branch of ``plan`` from the pilot's checkpoint at ``step``, and the estimates. The
    base branch (the pilot's B, the smallest) runs first; with ``stop_early`` every other branch
    stops once its smoothed curve has crossed the base branch's loss past the budget (the
    estimates are the same as from branches trained to their full length)."""
    base = pilot["batch_size"]
    curves, lrs = {}, {}
    target = None
    start = [(0.0, e["loss"]) for e in logbook.read_jsonl(os.path.join(
        pilot_dir, logbook.EVAL_FILE)) if e["step"] == step][-1:]
    for b in sorted(plan["batch_sizes"], key=lambda b: (b != base, b)):
        lrs[b] = lr_at_step * branched.branch_factor(pilot_config.optimizer, b / base,
                                                          lr_rule)
        log(f"branch from pilot step {step}: B={b}, lr {lrs[b]:.4g}, at most "
            f"{plan['runs'][b]['num_steps']} steps")
        curves[b] = run_branch(pilot_dir, pilot_config, step, b, lrs[b], plan["runs"][b], root,
                               start, stop_below_loss=target if b != base and stop_early else None,
                               min_examples=plan["examples_budget"])
        if b == base:
            target = branched.loss_at_examples(branched.smooth(curves[b]),
                                               plan["examples_budget"])
    estimate = branched.branched_critical_batch(curves, base, plan["examples_budget"], tolerance)
    estimate.update(step=step, lr_rule=lr_rule, examples_seen=step * base, learning_rates=lrs,
                    curves={b: c for b, c in curves.items()}, plan=plan,
                    loss="eval loss over the whole eval split")
    return estimate
