"""``advise(config, workdir, options)``: every measurement in order, each skipped when done.

WORKDIR/
  advise_config.json          the config and options this workdir measures (a different one: refused)
  throughput/bs<B>.json       computational speed per batch size (bsgap/advise/throughput.py)
  pilot/                      the pilot run directory (bsgap/advise/pilot.py), or with
  pilot_lr/lr_x<f>/           --pilot_lr_factors the lr search's trials, the fastest being the
  pilot_lr.json               pilot, and the search's result
  noise/step<S>.json          exact per-example B_simple at pilot checkpoint S
  branches/step<S>/bs<B>/     branch run directories; branches/step<S>.json their estimate
                              (branches-<rule>/ with --branch_lr_rule other than auto)
  sweep.json                  the --sweep root's fitted B_crit (when given)
  advice.json, advice.png     the answer (bsgap/advise/advice.py, bsgap/advise/figure.py)
  advise_log.jsonl            one line per measurement made or reused (its wall and CPU seconds;
                              advice.json's ``cost`` sums them)
  jax_cache/                  JAX's persistent compilation cache (unless one is set already)
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

from bsgap.advise import records
from bsgap.advise.records import AdviseError, reuse_or_measure


@dataclasses.dataclass(frozen=True)
class Options:
    batch_sizes: tuple
    target_accuracy: float
    pilot_batch_size: int
    branch_fractions: tuple = (0.25, 0.5)
    branch_max_factor: int = 16
    branch_steps: int = 8
    branch_examples_factor: float = 4.0
    branch_tolerance: float = 0.01
    branch_lr_rule: str = "auto"
    noise_examples: int = 4096
    throughput_examples: int = 20_000
    pilot_checkpoint_every_steps: int | None = None
    pilot_lr_factors: tuple = (0.5, 1.0, 2.0)   # (1.0,): no search
    pilot_lr_extend: int = 2
    within: float = 0.10
    sweep: str | None = None
    budget_seconds: float | None = None


class BudgetSpent(RuntimeError):
    """--budget_seconds ran out before a measurement; rerunning continues from there."""


class Session:
    """Runs or reuses one measurement at a time, logging each, within the time budget."""

    def __init__(self, workdir: str, budget_seconds: float | None):
        self.workdir, self.budget, self.start = workdir, budget_seconds, time.perf_counter()
        self.log_path = os.path.join(workdir, "advise_log.jsonl")

    def say(self, message: str) -> None:
        print(f"bsgap.advise: {message}", file=sys.stderr, flush=True)

    def measure(self, name: str, path: str | None, kind: str, settings: dict, fn,
                finished=None):
        """``fn()``'s result, through the JSON at ``path`` (None: ``fn`` resumes its own run
        directory, and ``finished()`` says whether it is done already)."""
        stored = records.stored_result(path, kind, settings) if path is not None else None
        done = stored is not None if path is not None else bool(finished and finished())
        if not done and self.budget is not None and time.perf_counter() - self.start > self.budget:
            raise BudgetSpent(f"--budget_seconds={self.budget:g} spent before {name}; rerun the "
                              "same command (with a larger budget) to continue from there")
        if not done:
            self.say(f"measuring {name}")
        t0, cpu0 = time.perf_counter(), time.process_time()
        result = (stored if stored is not None else
                  fn() if path is None else reuse_or_measure(path, kind, settings, fn))
        line = {"measurement": name, "kind": kind, "reused": done,
                "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - cpu0,
                "time": time.time(), "pid": os.getpid()}
        with open(self.log_path, "a") as f:
            f.write(json.dumps(line) + "\n")
        return result


def check_workdir(workdir: str, config, options: Options) -> None:
    """A new workdir records what it measures; an existing one must measure the same config and
    target (other options may change: each measurement file checks its own settings)."""
    from bsgap.workdir import plain_config

    mine = {"config": plain_config(config), "target_accuracy": options.target_accuracy}
    path = os.path.join(workdir, "advise_config.json")
    if os.path.exists(path):
        stored = records.read_json(path)
        if {k: stored.get(k) for k in mine} != records.plain(mine):
            raise AdviseError(f"{path} records a different config or target accuracy, so this "
                              f"workdir is neither reused nor overwritten; use a new --workdir")
    elif os.path.isdir(workdir) and os.listdir(workdir):
        raise AdviseError(f"--workdir={workdir} exists and is not an advisor workdir (no "
                          "advise_config.json); refusing to write into it. Use a new directory")
    records.write_json(path, dict(mine, options=dataclasses.asdict(options)))


def search_pilot_lr(session: Session, pilot_cfg, workdir: str, options: Options):
    """The pilot's lr search: the factors as one program, then -- while the fastest is at the
    grid's edge, up to ``pilot_lr_extend`` times -- one more factor beyond that edge (the edge's
    own ratio further; Shallue et al. 2018: an optimum on the edge of the grid is no optimum).
    (search record, chosen trial's config, its run directory, its summary)."""
    from bsgap.advise import pilot as pilot_lib
    from bsgap.workdir import finished_summary

    factors, specs, summaries = [], [], []
    todo, cap = list(options.pilot_lr_factors), None
    for extension in range(options.pilot_lr_extend + 1):
        new = pilot_lib.lr_search_specs(pilot_cfg, todo, workdir, max_steps=cap)
        summaries += session.measure(
            f"pilot lr search at B={options.pilot_batch_size} (x"
            f"{', x'.join(f'{f:g}' for f in todo)})", None, "pilot", {},
            lambda new=new: pilot_lib.run_lr_search(new),
            finished=lambda new=new: all(finished_summary(w, c) is not None for c, w in new))
        factors, specs = factors + todo, specs + new
        search = pilot_lib.choose_learning_rate(specs, summaries, factors)
        beyond = pilot_lib.beyond_edge(factors, search["chosen_factor"])
        if beyond is None or extension == options.pilot_lr_extend:
            break
        # past the edge only a trial that beats the fastest matters: with a constant lr (which
        # the budget does not shape) it stops where that one reached the target
        cap = (min(r["steps_to_target"] for r in search["trials"] if r["steps_to_target"])
               if pilot_cfg.schedule == "constant" else None)
        session.say(f"pilot lr search: x{search['chosen_factor']:g} is the fastest and at the "
                    f"edge of the grid; trying x{beyond:g}"
                    + (f" for at most {cap} steps" if cap else ""))
        todo = [beyond]
    records.write_json(os.path.join(workdir, "pilot_lr.json"), search)
    session.say(f"pilot lr search: x{search['chosen_factor']:g} (base lr "
                f"{search['base_learning_rate']:.4g}) reached the target soonest"
                + ("; it is still at the edge of the grid searched, so a wider "
                   "--pilot_lr_factors may find a faster one" if search["at_grid_edge"] else ""))
    chosen = factors.index(search["chosen_factor"])
    return search, specs[chosen][0], specs[chosen][1], summaries[chosen]


def advise(config, workdir: str, options: Options) -> dict:
    import jax

    from bsgap.advise import advice, branches, figure, pilot as pilot_lib, throughput
    from bsgap.advise.sweep_fit import sweep_estimate
    from bsgap.data import load_dataset_from_config
    from bsgap.workdir import finished_summary

    os.makedirs(workdir, exist_ok=True)
    if not jax.config.jax_compilation_cache_dir:   # the same step compiles for several measurements
        from bsgap.jax_settings import use_compilation_cache

        use_compilation_cache(os.path.join(workdir, "jax_cache"))
    session = Session(workdir, options.budget_seconds)
    common = {"config": records.plain(config.to_dict()), "platform": jax.devices()[0].platform,
              "device_count": jax.device_count()}
    speed = {}
    for b in options.batch_sizes:
        speed[b] = session.measure(
            f"throughput at B={b}", os.path.join(workdir, "throughput", f"bs{b}.json"),
            "throughput", dict(common, batch_size=b, min_examples=options.throughput_examples),
            lambda b=b: throughput.measure_throughput(config, b,
                                                      min_examples=options.throughput_examples))
    num_devices = config.num_devices or jax.device_count()
    every = options.pilot_checkpoint_every_steps or config.get("eval_every_steps")
    if not every:
        num_train = load_dataset_from_config(config, jax.process_count()).train.num_examples
        every = max(1, round(num_train / options.pilot_batch_size))
    pilot_cfg = pilot_lib.pilot_config(
        config, batch_size=options.pilot_batch_size, target_accuracy=options.target_accuracy,
        checkpoint_every_steps=every, num_devices=num_devices)
    with pilot_cfg.unlocked():
        pilot_cfg.eval_every_steps = config.get("eval_every_steps") or every
    lr_search = None
    if tuple(options.pilot_lr_factors) == (1.0,):
        pilot_dir = os.path.join(workdir, pilot_lib.PILOT_DIR)
        summary = session.measure(
            f"pilot run at B={options.pilot_batch_size}", None, "pilot", {},
            lambda: pilot_lib.run_pilot(pilot_cfg, workdir),
            finished=lambda: finished_summary(pilot_dir, pilot_cfg) is not None)
    else:
        lr_search, pilot_cfg, pilot_dir, summary = search_pilot_lr(session, pilot_cfg, workdir,
                                                                   options)
        config = config.copy_and_resolve_references()   # the advice's lr rule: the tuned base
        with config.unlocked():
            config.learning_rate = pilot_cfg.learning_rate
    pilot = pilot_lib.pilot_result(pilot_dir, summary)
    # measurements of an lr-searched pilot name it: a workdir whose search chose another trial
    # (other --pilot_lr_factors) refuses them instead of reusing another pilot's numbers
    of_pilot = {} if lr_search is None else {"pilot": os.path.relpath(pilot_dir, workdir)}
    points = pilot_lib.branch_points(pilot, options.branch_fractions)
    noise_steps = sorted(set(points) | {pilot["checkpoint_steps"][-1]})
    exact = [session.measure(
        f"exact noise scale at pilot step {s}", os.path.join(workdir, "noise", f"step{s}.json"),
        "exact_noise", dict(of_pilot, step=s, num_examples=options.noise_examples),
        lambda s=s: pilot_lib.exact_noise(pilot_dir, s, options.noise_examples))
        for s in noise_steps]
    branch_base = pilot_cfg.copy_and_resolve_references()
    with branch_base.unlocked():   # branches use the config's own layout (the pilot's noise
        branch_base.microbatch_size = config.get("microbatch_size")   # microbatches are speed only)
    plan = branches.branch_plan(options.pilot_batch_size, options.batch_sizes,
                                options.branch_max_factor, options.branch_steps,
                                options.branch_examples_factor)
    branched = []
    for s in points:
        # a branch lr rule other than the default gets its own directory: both can be kept
        folder = "branches" if options.branch_lr_rule == "auto" else (
            f"branches-{options.branch_lr_rule}")
        root = os.path.join(workdir, folder, f"step{s}")
        branched.append(session.measure(
            f"branches from pilot step {s}", root + ".json", "branches",
            dict(of_pilot, step=s, plan=plan, tolerance=options.branch_tolerance,
                 lr_rule=options.branch_lr_rule),
            lambda s=s, root=root: branches.run_branches(
                pilot_dir, branch_base, pilot, s, plan, pilot_lib.learning_rate_at(pilot, s),
                options.branch_tolerance, root, session.say, options.branch_lr_rule)))
    sweep = None
    if options.sweep:
        sweep = session.measure("the sweep's fit", os.path.join(workdir, "sweep.json"), "sweep",
                                {"root": os.path.abspath(options.sweep),
                                 "target_accuracy": options.target_accuracy},
                                lambda: sweep_estimate(options.sweep, options.target_accuracy))
    result = advice.make_advice(config, options, speed, pilot, exact, branched, sweep,
                                seconds=time.perf_counter() - session.start)
    result["pilot_lr_search"] = lr_search
    result["cost"] = records.cost_of(session.log_path)
    records.write_json(os.path.join(workdir, "advice.json"), result)
    figure.plot_advice(result, os.path.join(workdir, "advice.png"))
    return result
