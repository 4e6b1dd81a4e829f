"""The pilot: one ordinary run at a moderate batch size, trained until it reaches the target.

It gives the advisor three things: the steps to the target at one batch size (S(B_pilot), which
fixes S_min once B_crit is known), the online two-batch noise scale over training (metrics.jsonl's
``b_simple``, McCandlish et al. 2018 App. A.1), and checkpoints to branch from and to measure the
exact per-example noise scale at. It is a run directory (``WORKDIR/pilot``) made by the trainer, so
a killed pilot resumes from its latest checkpoint.

Its config is the user's with: ``batch_size`` = the pilot's, ``target_accuracy`` and
``stop_at_target=True``, a checkpoint every ``checkpoint_every_steps`` (all kept), and -- on one
device with a fixed BN group -- accumulation microbatches of a quarter of the batch (the BN group
is unchanged, so the numbers are the same run's; tested in tests/test_invariance.py) so that the
step has the small-batch gradients the online noise scale needs.

With ``--pilot_lr_factors`` other than ``1`` the pilot's learning rate is tuned first: the pilot
config at the config's learning rate x each factor, as the K trials of one compiled program
(``WORKDIR/pilot_lr/lr_x<f>``; bsgap/trials.py), each stopping at the target. The trial that
reaches it in the fewest steps *is* the pilot (its run directory, checkpoints and logs), so S_min
is measured at a tuned learning rate, as the steps-to-target sweeps it is compared with are. The
trials race (bsgap/race.py): once one has reached the target the rest stop, outpaced, and the
program ends, so the search costs K x the winner's steps, not K x the slowest trial's (a trial
that stopped inside one program is still computed, masked, until the program ends).
"""
from __future__ import annotations

import math
import os

from bsgap import logbook
from bsgap.advise.records import AdviseError
from bsgap.advise.throughput import measurement_config
from bsgap.layout import bn_group_follows_layout

PILOT_DIR = "pilot"
PILOT_LR_DIR = "pilot_lr"


def noise_microbatch(config, batch_size: int, num_devices: int):
    """The microbatch giving the step >= 2 small batches for the online noise scale, or the
    config's own when that already has them, or when the BN group follows the layout (changing
    the microbatch would change the experiment there)."""
    if config.get("microbatch_size") is not None or num_devices >= 2:
        return config.get("microbatch_size")
    if bn_group_follows_layout(config.normalization, config.get("ghost_batch_size")):
        return None
    group = config.get("ghost_batch_size") or 1
    for parts in (4, 2):
        micro = batch_size // parts
        if batch_size % parts == 0 and micro % group == 0 and micro >= group:
            return micro
    return None


def pilot_config(config, *, batch_size: int, target_accuracy: float, checkpoint_every_steps: int,
                 num_devices: int):
    c = measurement_config(config, batch_size=batch_size, target_accuracy=target_accuracy,
                           stop_at_target=True)
    with c.unlocked():
        c.checkpoint_every_steps = checkpoint_every_steps
        c.keep_checkpoints = 100_000
        c.microbatch_size = noise_microbatch(config, batch_size, num_devices)
    return c


def run_pilot(config, workdir: str) -> dict:
    """Train (or resume, or find finished) the pilot run; its summary."""
    from bsgap.trainer import Trainer

    return Trainer(config, os.path.join(workdir, PILOT_DIR)).run()


def lr_search_specs(pilot_cfg, factors, workdir: str, max_steps: int | None = None) -> list:
    """(config, run directory) per learning-rate factor of the pilot's lr search; ``max_steps``:
    its budget in steps instead of the config's (only where the schedule does not depend on it)."""
    specs = []
    for factor in factors:
        c = pilot_cfg.copy_and_resolve_references()
        with c.unlocked():
            c.learning_rate = pilot_cfg.learning_rate * factor
            if max_steps is not None:
                c.num_epochs, c.num_examples, c.num_steps = None, None, int(max_steps)
        specs.append((c, os.path.join(workdir, PILOT_LR_DIR, f"lr_x{factor:g}")))
    return specs


def run_lr_search(specs) -> list[dict]:
    """Train (or resume, or find finished) the lr search's trials in one program, racing to the
    target: at the first evaluation where one has reached it the others stop (bsgap/race.py),
    since only the fewest steps matter; summaries."""
    from bsgap.trainer import Trainer

    return Trainer.for_trials(specs, race_to_target=True).run_all()


def choose_learning_rate(specs, summaries, factors) -> dict:
    """The lr search's result: each factor's steps to the target and the chosen one (fewest
    steps; a tie goes to the factor nearest 1). AdviseError when none reached the target."""
    rows = []
    for factor, (c, workdir), summary in zip(factors, specs, summaries):
        rows.append({"factor": factor, "base_learning_rate": c.learning_rate,
                     "run_dir": workdir, "status": summary.get("status"),
                     "steps_to_target": summary.get("steps_to_target"),
                     "steps": summary.get("steps"), "stop_reason": summary.get("stop_reason"),
                     "best_eval_accuracy": summary.get("best_eval_accuracy")})
    reached = [r for r in rows if r["steps_to_target"] is not None]
    if not reached:
        ends = ", ".join(f"x{r['factor']:g}: {r['status']} at best accuracy "
                         f"{r['best_eval_accuracy']}" for r in rows)
        raise AdviseError(
            f"no learning rate of the pilot's search (--pilot_lr_factors) reached the target "
            f"({ends}): S_min needs a pilot that reaches it. Give it a larger budget "
            "(--config.num_epochs=...), other factors, or a lower --target_accuracy (and a new "
            "--workdir)")
    best = min(reached, key=lambda r: (r["steps_to_target"], abs(math.log(r["factor"]))))
    return {"trials": rows, "chosen_factor": best["factor"],
            "base_learning_rate": best["base_learning_rate"], "run_dir": best["run_dir"],
            "at_grid_edge": beyond_edge(factors, best["factor"]) is not None}


def beyond_edge(factors, chosen: float) -> float | None:
    """The next factor past the grid's edge where ``chosen`` lies on it (the edge's own ratio
    further), else None (also for a grid of one factor: no ratio to extend by)."""
    ordered = sorted(factors)
    if len(ordered) == 1:
        return None
    if chosen == ordered[-1]:
        return chosen * (ordered[-1] / ordered[-2])
    if chosen == ordered[0]:
        return chosen / (ordered[1] / ordered[0])
    return None


def checkpoint_steps(pilot_dir: str) -> list[int]:
    """The steps of the pilot's finished checkpoints (orbax's numbered directories)."""
    root = os.path.join(pilot_dir, "checkpoints")
    if not os.path.isdir(root):
        return []
    return sorted(int(name) for name in os.listdir(root) if name.isdigit())


def pilot_result(pilot_dir: str, summary: dict) -> dict:
    """What the advisor uses of a finished pilot: steps to the target, its checkpoints, the online
    noise scale and learning rate per logged step. AdviseError when it did not reach the target."""
    config = logbook.read_json(os.path.join(pilot_dir, logbook.CONFIG_FILE))
    if summary.get("steps_to_target") is None:
        raise AdviseError(
            f"the pilot run {pilot_dir} (B={config['config']['batch_size']}) ended with status "
            f"{summary.get('status')!r} at best eval accuracy {summary.get('best_eval_accuracy')}"
            f", below the target {summary.get('target_accuracy')}: S_min needs a pilot that "
            "reaches it. Give it a larger budget (--config.num_epochs=...), a better learning "
            "rate, or a lower --target_accuracy (and a new --workdir)")
    metrics = logbook.read_jsonl(os.path.join(pilot_dir, logbook.METRICS_FILE))
    evals = logbook.read_jsonl(os.path.join(pilot_dir, logbook.EVAL_FILE))
    return {"batch_size": config["config"]["batch_size"],
            "learning_rate": config["resolved"]["scaled_learning_rate"],
            "steps_to_target": int(summary["steps_to_target"]),
            "examples_to_target": int(summary["examples_to_target"]),
            "seconds_to_target": summary.get("seconds_to_target"),
            "train_seconds": summary.get("train_seconds"),
            "compile_seconds": summary.get("compile_seconds"),
            "checkpoint_steps": checkpoint_steps(pilot_dir),
            "layout": config["resolved"]["layout"],
            "online_noise": [{"step": m["step"], "examples": m["examples"],
                              "b_simple": m.get("b_simple")} for m in metrics
                             if m.get("b_simple") is not None],
            "learning_rate_at": {str(m["step"]): m.get("learning_rate") for m in metrics},
            "eval": [{"step": e["step"], "examples": e["examples"], "loss": e["loss"],
                      "accuracy": e["accuracy"]} for e in evals]}


def branch_points(pilot: dict, fractions) -> list[int]:
    """For each fraction f of the pilot's steps to the target, the latest checkpoint at or before
    f x S (distinct, > 0, ascending)."""
    steps = pilot["checkpoint_steps"]
    chosen = []
    for f in fractions:
        before = [s for s in steps if 0 < s <= f * pilot["steps_to_target"]]
        if before and before[-1] not in chosen:
            chosen.append(before[-1])
    return sorted(chosen)


def learning_rate_at(pilot: dict, step: int) -> float:
    """The pilot's learning rate at ``step`` (the last logged value at or before it)."""
    logged = sorted((int(s), lr) for s, lr in pilot["learning_rate_at"].items() if lr is not None)
    before = [lr for s, lr in logged if s <= step]
    return before[-1] if before else (logged[0][1] if logged else pilot["learning_rate"])


def online_noise_at(pilot: dict, step: int) -> float | None:
    """The online two-batch B_simple (EMA) logged last at or before ``step``."""
    before = [r["b_simple"] for r in pilot["online_noise"] if r["step"] <= step]
    return before[-1] if before else None


def exact_noise(pilot_dir: str, step: int, num_examples: int) -> dict:
    """Exact per-example B_simple at the pilot's checkpoint ``step``, bias-corrected for the
    subsample (bsgap/curvature/noise.py), measured by analysis.curvature (its JSON is left in
    the pilot's analysis/ directory)."""
    from analysis import curvature

    args = curvature.parse_args(["--run", pilot_dir, "--step", str(step), "--metrics",
                                 "noise_scale", "--num_examples", str(num_examples),
                                 "--progress", "0"])
    path = curvature.measure(args)
    record = logbook.read_json(path)
    noise = record["metrics"]["noise_scale"]
    return {"step": step, "b_simple": noise["b_simple"],
            "b_simple_unbiased": noise["b_simple_unbiased"],
            "num_examples": noise["num_examples"], "population_size": noise["population_size"],
            "small_sample": noise["small_sample"], "bn_mode": noise.get("bn_mode"),
            "train_loss": record.get("train_loss"), "seconds": record["seconds"]["noise_scale"],
            "curvature_json": os.path.relpath(path, pilot_dir)}
