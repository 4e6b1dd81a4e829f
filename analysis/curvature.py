"""Curvature of a run's training loss at a checkpoint: Hessian top eigenvalues, trace, spectral
density, Keskar eps-sharpness, SAM rho-sharpness and the gradient noise scale.

    python -m analysis.curvature --run=DIR [--step=N]
        [--metrics=top_eigs,trace,density,eps_sharpness,sam,noise_scale]
        [--num_examples=4096] [--subset=first|seeded] [--batch_size=512] [--bn_mode=eval|train]
        [metric options, see --help]

Writes `DIR/analysis/curvature_<step>.json` (and `curvature_<step>.png`, the spectral density, when
`density` is measured). **Never overwrites**: when that name (JSON or PNG) is taken, the result goes
to `curvature_<step>-1.json`, `-2`, ... and the path is printed. The JSON is rewritten after each
metric with `"complete": false` until the last one finishes, so a long job that dies keeps what it
measured.

What is measured: the mean cross-entropy of the run's model at the checkpoint's parameters over
`--num_examples` training examples (the first ones, or a seeded random choice with `--subset=seeded`;
0 or more than the split = the whole split), evaluated in batches of `--batch_size` and averaged
by size (`bsgap.curvature` treats the batches together as one dataset). No label smoothing, no
weight decay, dropout off (see analysis/_common.py). `--bn_mode=eval` normalizes with the running
averages; `--bn_mode=train` with batch statistics in groups of the run's BN group
(resolved['layout']['bn_group']): then `--batch_size` must be a multiple of the group and the
example count is rounded down to one. `noise_scale` needs per-example gradients, which batch
statistics of one example cannot give: it is always measured with running averages ('eval') on a
BN model, and its entry says so.

On the terminal: a table of every value measured with how it converged (stdout, before the JSON
path, which stays the last line) and one `analysis.curvature: warning:` line on stderr for every
value that did not converge (an eigenvalue or trace estimate stopped at its cap, an
eps-sharpness search or SAM ascent stopped at its iteration limit, a noise scale measured on a
sample whose size is not >> B_simple). The same warnings are the JSON's `warnings`, and each
metric's convergence its `converged` entry (analysis/curvature_summary.py).

The noise scale is measured on a sample of n of the split's N examples: its entry has the raw
B_simple and the bias-corrected `b_simple_unbiased` (|G|^2 over n examples is too high by
(1 - n/N) tr(Sigma) / n in expectation; bsgap/curvature/noise.py), and the same for B_noise.

The JSON holds every setting (`settings`), the run (`run`: directory, step, model, dataset, batch
layout), the examples (`examples`: subset, count, hash of the indices), the train loss and accuracy
at those parameters on those examples in the chosen bn_mode (`train_loss`, `train_accuracy`), the
Smith & Le (2018) noise scale from the run's scaled learning rate, N, B and momentum
(`smith_le`), each metric's library result with its seconds (`metrics`), and the Hessian-vector
products used (`num_hvps`: per metric and `total`).

Exit status 2 with a one-paragraph message (no traceback) for a missing run or checkpoint, an
unknown metric (the allowed names are listed), a bad option value or a batch size that does not
hold whole BN groups.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from analysis import _common, curvature_summary  # noqa: E402
from analysis._common import CliError  # noqa: E402

PROG = "analysis.curvature"
METRICS = ("top_eigs", "trace", "density", "eps_sharpness", "sam", "noise_scale")
EIG_METHODS = ("lanczos", "power")
_RUN_FIELDS = ("model", "model_kwargs", "normalization", "dataset", "optimizer", "batch_size",
               "learning_rate", "lr_scaling", "seed")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=f"python -m {PROG}", description=_common.description(__doc__),
                                     formatter_class=_common.HelpFormatter)
    parser.add_argument("--run", required=True, help="run directory (holds config.json)")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    parser.add_argument("--metrics", default=",".join(METRICS),
                        help=f"comma-separated subset of {','.join(METRICS)}")
    parser.add_argument("--num_examples", type=int, default=4096,
                        help="training examples measured (0: the whole split)")
    parser.add_argument("--subset", default="first", choices=_common.SUBSETS,
                        help="first N examples, or N drawn at random with --seed")
    parser.add_argument("--batch_size", type=int, default=512,
                        help="examples per model call (a multiple of the BN group for "
                             "--bn_mode=train)")
    parser.add_argument("--bn_mode", default="eval", choices=_common.BN_MODES,
                        help="batch norm with running averages (eval) or batch statistics (train)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of every random choice (subset, start vectors, probes, boxes)")
    parser.add_argument("--data_dir", default=None, help="TFDS data dir (default: the run's)")
    g = parser.add_argument_group("top_eigs")
    g.add_argument("--k", type=int, default=1, help="number of top eigenvalues")
    g.add_argument("--eig_method", default="lanczos", choices=EIG_METHODS)
    g.add_argument("--eig_tol", type=float, default=1e-3,
                   help="relative residual ||Hy - t y|| / |t| to stop at")
    g.add_argument("--eig_max_iters", type=int, default=100,
                   help="HVP cap (lanczos: total; power: per eigenvalue)")
    g = parser.add_argument_group("trace (Hutchinson)")
    g.add_argument("--trace_tol", type=float, default=1e-3, help="relative standard error to stop at")
    g.add_argument("--trace_max_probes", type=int, default=100)
    g = parser.add_argument_group("density (stochastic Lanczos quadrature)")
    g.add_argument("--density_steps", type=int, default=90, help="Lanczos steps per probe")
    g.add_argument("--density_probes", type=int, default=1)
    g = parser.add_argument_group("eps_sharpness (Keskar et al. 2017, Metric 2.1)")
    g.add_argument("--eps", default="1e-3,5e-4", help="comma-separated box sizes epsilon")
    g.add_argument("--eps_subspace_dim", type=int, default=0,
                   help="random subspace dimension p (0: the full space, A = I)")
    g.add_argument("--eps_max_iters", type=int, default=50,
                   help="iterations of each search (sign-gradient ascents and L-BFGS-B)")
    g.add_argument("--eps_starts", type=int, default=4,
                   help="sign-gradient ascent starts (the box corner + random points)")
    g = parser.add_argument_group("sam (Foret et al. 2021 rho-sharpness)")
    g.add_argument("--sam_rho", default="0.05", help="comma-separated radii rho")
    g.add_argument("--sam_steps", type=int, default=0,
                   help="fixed number of projected ascent steps (0: ascend until the gain per "
                        "step is below --sam_tol x the sharpness, at most --sam_max_steps)")
    g.add_argument("--sam_tol", type=float, default=1e-3, help="relative gain per step to stop at")
    g.add_argument("--sam_max_steps", type=int, default=100, help="ascent step cap (--sam_steps=0)")
    g = parser.add_argument_group("noise_scale (McCandlish et al. 2018, exact per-example)")
    g.add_argument("--noise_chunk_size", type=int, default=32,
                   help="per-example gradients held at once")
    g.add_argument("--b_noise_probes", type=int, default=0,
                   help="Hutchinson probes for B_noise = tr(H Sigma) / G^T H G (0: B_simple only)")
    parser.add_argument("--progress", type=int, default=1, choices=(0, 1),
                        help="tqdm progress bars on stderr")
    return parser.parse_args(argv)


def _float_list(name: str, text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CliError(f"--{name}={text!r} must be a comma-separated list of numbers") from None
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        raise CliError(f"--{name}={text!r} must list finite numbers >= 0")
    return values


def validate(args: argparse.Namespace) -> tuple[list[str], list[float], list[float]]:
    """Check every option before anything is loaded; returns (metrics, epsilons, rhos)."""
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in metrics if m not in METRICS]
    if unknown or not metrics:
        raise CliError(f"unknown metric(s) {', '.join(unknown) or '(none given)'} in "
                       f"--metrics={args.metrics!r}; the allowed metrics are {', '.join(METRICS)}")
    if len(set(metrics)) != len(metrics):
        raise CliError(f"--metrics={args.metrics!r} names a metric twice")
    positive_ints = {"batch_size": args.batch_size, "k": args.k,
                     "eig_max_iters": args.eig_max_iters,
                     "trace_max_probes": args.trace_max_probes,
                     "density_steps": args.density_steps, "density_probes": args.density_probes,
                     "eps_max_iters": args.eps_max_iters, "eps_starts": args.eps_starts,
                     "sam_max_steps": args.sam_max_steps,
                     "noise_chunk_size": args.noise_chunk_size}
    for name, value in positive_ints.items():
        if value < 1:
            raise CliError(f"--{name}={value} must be an integer >= 1")
    for name, value in {"num_examples": args.num_examples,
                        "eps_subspace_dim": args.eps_subspace_dim,
                        "sam_steps": args.sam_steps,
                        "b_noise_probes": args.b_noise_probes}.items():
        if value < 0:
            raise CliError(f"--{name}={value} must be an integer >= 0")
    if args.step is not None and args.step < 0:
        raise CliError(f"--step={args.step} must be >= 0")
    for name, value in {"eig_tol": args.eig_tol, "trace_tol": args.trace_tol,
                        "sam_tol": args.sam_tol}.items():
        if not (math.isfinite(value) and value > 0):
            raise CliError(f"--{name}={value} must be a finite number > 0")
    if args.eig_method == "lanczos" and args.eig_max_iters < args.k:
        raise CliError(f"--eig_max_iters={args.eig_max_iters} must be >= --k={args.k} for Lanczos")
    rhos = _float_list("sam_rho", args.sam_rho)
    if any(r <= 0 for r in rhos):
        raise CliError(f"--sam_rho={args.sam_rho!r} must list radii > 0")
    return metrics, _float_list("eps", args.eps), rhos


class _Progress:
    """One tqdm bar per metric, advanced by the library's evaluation reports."""

    def __init__(self, enabled: bool):
        self.enabled = enabled

    @contextlib.contextmanager
    def bar(self, desc: str, total: int | None, kind: str, unit: str):
        if not self.enabled:
            yield
            return
        from tqdm import tqdm

        from bsgap.curvature import progress

        with tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=True,
                  dynamic_ncols=True) as bar:
            def callback(reported: str, count: int) -> None:
                if reported == kind:
                    bar.update(count)
            with progress.on_evaluation(callback):
                yield
            if bar.total is not None and bar.n < bar.total:  # stopped early (converged)
                bar.total = bar.n
                bar.refresh()


def smith_le(config, resolved: dict, metrics_path: str, step: int) -> dict:
    """Smith & Le (2018) g = eps (N / B - 1) / (1 - m) (bsgap.curvature.noise_scale) from the
    run's scaled peak lr, N, B and momentum m (0 for sgd; not defined for adam/adamw: None), and g
    at the checkpoint's scheduled lr if metrics.jsonl logged it."""
    from bsgap import curvature, logbook
    from bsgap.curvature.noise_scale import smith_le_momentum

    lr = float(resolved["scaled_learning_rate"])
    n = int(resolved["num_train_examples"])
    b = int(resolved["layout"]["batch_size"])
    m = smith_le_momentum(config.optimizer, config.momentum)
    record = {"formula": "eps (N / B - 1) / (1 - m)", "learning_rate": lr,
              "num_train_examples": n, "batch_size": b, "momentum": m,
              "noise_scale": None if m is None else curvature.smith_le_noise_scale(lr, n, b, m)}
    lr_at_step = None
    if os.path.exists(metrics_path):
        for row in logbook.read_jsonl(metrics_path):
            if row.get("step", math.inf) <= step and "learning_rate" in row:
                lr_at_step = float(row["learning_rate"])
    record["learning_rate_at_step"] = lr_at_step
    record["noise_scale_at_step"] = (curvature.smith_le_noise_scale(lr_at_step, n, b, m)
                                     if m is not None and lr_at_step and lr_at_step > 0 else None)
    return record


def plot_density(path: str, density: dict, top_eigs: dict | None, title: str) -> None:
    """The SLQ density on a linear and a log axis, with the top eigenvalue(s) marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    grid, values = np.asarray(density["grid"]), np.asarray(density["density"])
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, log in zip(axes, (False, True)):
        if log:
            ax.semilogy(grid, np.maximum(values, 1e-12))
            ax.set_ylim(bottom=max(1e-12, values[values > 0].min() if np.any(values > 0) else 1e-12))
        else:
            ax.plot(grid, values)
        if top_eigs is not None:
            for i, value in enumerate(top_eigs["eigenvalues"]):
                ax.axvline(value, color="tab:red", ls="--", lw=0.8,
                           label="top eigenvalue(s)" if i == 0 else None)
            ax.legend(loc="upper right", fontsize=8)
        ax.set_xlabel("eigenvalue")
        ax.set_ylabel("density (log)" if log else "density")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def measure(args: argparse.Namespace) -> str:
    """Run the CLI's work; returns the JSON path. Raises CliError for user errors."""
    metrics, epsilons, rhos = validate(args)
    config_json = _common.read_run_config(args.run)  # before any checkpoint or data is read
    _common.quiet_libraries()

    import jax
    import numpy as np

    from bsgap import curvature

    run = _common.load_run_checked(args.run, args.step, with_data=True, data_dir=args.data_dir)
    config, resolved = run.config, run.resolved
    bn = _common.has_batch_norm(config)
    bn_group = _common.bn_group_for(config, resolved, args.bn_mode)
    if bn_group and args.batch_size % bn_group:
        raise CliError(f"--batch_size={args.batch_size} is not a multiple of the run's BN group "
                       f"of {bn_group} examples (resolved layout bn_group), which "
                       "--bn_mode=train needs; pass a multiple of it or --bn_mode=eval")
    train_bn = args.bn_mode == "train" and bn
    recorded_mode = args.bn_mode if bn else None
    model = _common.analysis_model(config, resolved, args.bn_mode)
    arrays, examples = _common.select_examples(
        _common.split_arrays(run.data, "train"), args.num_examples, args.subset, args.seed,
        multiple_of=bn_group)
    batches = _common.make_batches(arrays, args.batch_size)
    examples.update(batch_size=args.batch_size, num_batches=len(batches), split="train",
                    bn_group=bn_group)
    loss_fn, accuracy_fn = _common.loss_and_accuracy_fns(model, run.batch_stats,
                                                         resolved["num_classes"], train_bn)
    params = run.params
    num_params = int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))
    if "top_eigs" in metrics and args.k > num_params:
        raise CliError(f"--k={args.k} exceeds the model's {num_params} parameters")
    if "eps_sharpness" in metrics and args.eps_subspace_dim > num_params:
        raise CliError(f"--eps_subspace_dim={args.eps_subspace_dim} exceeds the model's "
                       f"{num_params} parameters")

    settings = {k: v for k, v in vars(args).items() if k != "progress"}
    settings.update(metrics=metrics, eps=epsilons, sam_rho=rhos,
                    eps_subspace_dim=args.eps_subspace_dim or None)
    record = {
        "complete": False, "settings": settings,
        "run": {"workdir": os.path.abspath(args.run), "step": run.step,
                **{k: config_json["config"][k] for k in _RUN_FIELDS},
                "num_classes": resolved["num_classes"], "layout": resolved["layout"],
                "num_parameters": num_params},
        "loss": "mean softmax cross-entropy (no label smoothing, no weight decay, dropout off)",
        "bn_mode": recorded_mode, "examples": examples, "environment": _common.environment(),
        "smith_le": smith_le(config, resolved, os.path.join(args.run, "metrics.jsonl"), run.step),
        "metrics": {}, "num_hvps": {"total": 0}, "seconds": {},
    }
    # Claimed only once the first record is ready, so that a failure before it leaves no file.
    path = _common.claim_result_path(os.path.join(args.run, "analysis"), f"curvature_{run.step}")
    png_path = path[:-len(".json")] + ".png"
    _common.write_json(path, record)
    progress = _Progress(bool(args.progress))

    start = time.perf_counter()
    eval_loss = jax.jit(loss_fn)
    eval_acc = jax.jit(accuracy_fn)
    record["train_loss"] = _common.weighted_mean(lambda b: eval_loss(params, b), batches)
    record["train_accuracy"] = _common.weighted_mean(lambda b: eval_acc(params, b), batches)
    record["seconds"]["train_loss"] = time.perf_counter() - start
    _common.write_json(path, record)

    kw = dict(bn_mode=recorded_mode)
    for name in metrics:
        start = time.perf_counter()
        if name == "top_eigs":
            total = args.eig_max_iters * (args.k if args.eig_method == "power" else 1)
            with progress.bar(name, total, "hvp", "HVP"):
                result = curvature.top_eigenvalues(
                    loss_fn, params, batches, k=args.k, method=args.eig_method, tol=args.eig_tol,
                    max_iters=args.eig_max_iters, seed=args.seed, **kw).to_json()
        elif name == "trace":
            with progress.bar(name, args.trace_max_probes, "hvp", "HVP"):
                result = curvature.hessian_trace(
                    loss_fn, params, batches, tol=args.trace_tol,
                    max_probes=args.trace_max_probes, seed=args.seed, **kw).to_json()
        elif name == "density":
            with progress.bar(name, args.density_steps * args.density_probes, "hvp", "HVP"):
                result = curvature.spectral_density(
                    loss_fn, params, batches, num_steps=args.density_steps,
                    num_probes=args.density_probes, seed=args.seed, **kw).to_json()
        elif name == "eps_sharpness":
            result = {"result": "EpsSharpnessList", "values": []}
            for eps in epsilons:
                with progress.bar(f"{name} eps={eps:g}", None, "grad", "grad"):
                    result["values"].append(curvature.eps_sharpness(
                        loss_fn, params, batches, epsilon=eps,
                        subspace_dim=args.eps_subspace_dim or None,
                        max_iters=args.eps_max_iters, num_starts=args.eps_starts,
                        seed=args.seed, **kw).to_json())
        elif name == "sam":
            result = {"result": "SamSharpnessList", "values": []}
            for rho in rhos:
                with progress.bar(f"{name} rho={rho:g}", args.sam_steps or args.sam_max_steps,
                                  "grad", "grad"):
                    result["values"].append(curvature.sam_sharpness(
                        loss_fn, params, batches, rho=rho, num_steps=args.sam_steps or None,
                        tol=args.sam_tol, max_steps=args.sam_max_steps, **kw).to_json())
        else:  # noise_scale: per-example gradients, running averages on a BN model
            noise_loss = loss_fn
            if train_bn:
                noise_loss, _ = _common.loss_and_accuracy_fns(
                    _common.analysis_model(config, resolved, "eval"), run.batch_stats,
                    resolved["num_classes"], False)
            with progress.bar(name, examples["num_examples"], "examples", "ex"):
                result = curvature.gradient_noise(
                    noise_loss, params, batches, with_b_noise=args.b_noise_probes > 0,
                    b_noise_probes=args.b_noise_probes or None,
                    chunk_size=args.noise_chunk_size, seed=args.seed,
                    population_size=max(int(examples["num_available"]),
                                        int(examples["num_examples"])),
                    bn_mode="eval" if bn else None).to_json()
            if train_bn:
                result["note"] = ("per-example gradients need running-average BN: measured "
                                  "with bn_mode='eval', not the requested 'train'")
        record["seconds"][name] = time.perf_counter() - start
        record["metrics"][name] = result
        record["num_hvps"][name] = int(result.get("num_hvps", 0))
        record["num_hvps"]["total"] = sum(v for k, v in record["num_hvps"].items()
                                          if k != "total")
        _, record["warnings"], record["converged"] = curvature_summary.summarize(record)
        _common.write_json(path, record)
    if "density" in record["metrics"]:
        plot_density(png_path, record["metrics"]["density"], record["metrics"].get("top_eigs"),
                     f"{os.path.basename(os.path.abspath(args.run))} step {run.step}: "
                     f"Hessian spectral density (SLQ, {args.density_steps} steps x "
                     f"{args.density_probes} probes, {examples['num_examples']} examples, "
                     f"{'no batch norm' if recorded_mode is None else 'bn_mode=' + recorded_mode})")
        record["density_plot"] = os.path.basename(png_path)
    record["complete"] = True
    _common.write_json(path, record)
    return path


def report(path: str) -> None:
    """The table of every value (stdout) and a warning per unconverged one (stderr)."""
    import json

    with open(path) as f:
        record = json.load(f)
    rows, warnings, _ = curvature_summary.summarize(record)
    print(curvature_summary.format_table(rows))
    for warning in warnings:
        print(f"{PROG}: warning: {warning}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        path = measure(args)
    except CliError as err:
        return _common.fail(PROG, err)
    report(path)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
